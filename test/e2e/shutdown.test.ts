// Graceful stop under load: SIGTERM while a QoS 1 stream is flowing. The agent stops taking
// messages, finishes the batches in flight, commits, disconnects keeping its session and exits 0;
// what it had not acknowledged the broker keeps, so after a restart every reading is stored once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, seqPayload, spawnAgent, startMosquitto, storedSeqs, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const N = 6000;

test('SIGTERM under load: exit 0, nothing in flight lost, the rest delivered after restart', { timeout: 180000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-sigterm-test' }, shutdown: { deadlineMs: 8000 } }));
  const first = spawnAgent(t, config);
  await first.waitForLog('subscribed');

  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-sigterm-test' });
  const publishing = publishSequence(gateway, 'plant/press-2/bearing', N);

  await waitFor('some predictions', () => countRows(dbPath).predictions >= 1000);
  const t0 = Date.now();
  first.proc.kill('SIGTERM');
  const exit = await first.exited;
  const stopMs = Date.now() - t0;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(publishing.published < N, `SIGTERM landed while the stream was flowing (${publishing.published} of ${N} published)`);
  const afterStop = countRows(dbPath);
  assert.equal(afterStop.inbox, 0, 'every acknowledged message was processed before exit');
  const stopped = first.logs.find((l) => l.msg === 'agent stopped');
  assert.ok(stopped, 'logged "agent stopped"');
  assert.equal(afterStop.predictions, stopped.predictions, 'every prediction counted was committed');
  t.diagnostic(`stopped in ${stopMs} ms with ${afterStop.predictions} predictions; ${String(stopped.refusedWhileStopping)} left unacknowledged for redelivery`);

  await publishing.done;
  const { exit: secondExit, seqs } = await runUntilStored(t, config, dbPath, N);
  assert.equal(secondExit.code, 0);
  assert.equal(seqs.length, N);
  assert.equal(new Set(seqs).size, N, 'no reading stored twice');
});

test('SIGTERM under a QoS 0 flood: the agent stops taking messages, commits every one it took, none lost in memory', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, ingest: { subscriptions: [{ topic: 'plant/+/fast', qos: 0 }] }, publish: { topic: 'plant/{asset}/predictions/{model}', qos: 0 }, shutdown: { deadlineMs: 8000 } }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url);
  // Sequence-numbered readings (seqPayload encodes 0..19999), paced so the flood outlasts the stop.
  const TOTAL = 19000;
  let sent = 0;
  let flooding = true;
  const flood = (async () => {
    const end = Date.now() + 30000; // bounded in count and time
    while (flooding && sent < TOTAL && Date.now() < end) {
      for (let k = 0; k < 100 && sent < TOTAL; k++) gateway.publish('plant/press-9/fast', seqPayload(sent++), { qos: 0 });
      await new Promise((r) => setTimeout(r, 20)); // at most 5,000/s: the flood lasts well beyond the stop on a busy machine
    }
  })();
  await waitFor('some predictions', () => countRows(dbPath).predictions >= 2000);
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  const sentAtExit = sent;
  flooding = false;
  await flood;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(sentAtExit < TOTAL, `the flood was still going when the agent exited (${sentAtExit} of ${TOTAL} sent)`);
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped');
  assert.ok(stopped, 'logged "agent stopped"');

  // mosquitto delivers one publisher's messages on one topic at one QoS to a subscriber in the order it
  // received them, and nothing here makes it drop QoS 0 (queue limits far above the flood). So the agent
  // read 0, 1, 2, ... in order and took a prefix of them before it paused: the stored sequence numbers
  // must be exactly 0..stored-1. A message taken into memory and lost would leave a gap; one stored twice
  // a repeat.
  const seqs = storedSeqs(dbPath).sort((a, b) => a - b);
  const stored = seqs.length;
  assert.ok(stored >= 2000);
  assert.equal(new Set(seqs).size, stored, 'nothing stored twice');
  const gaps = seqs.filter((q, i) => q !== i).slice(0, 5);
  assert.deepEqual(gaps, [], `stored sequence numbers form one run from 0 (first out of place: ${gaps.join(', ')})`);
  assert.deepEqual(countRows(dbPath), { predictions: stored, deadLetters: 0, inbox: 0 });
  // What it read while stopping it refused; taken + refused cannot exceed what was sent.
  const refused = Number(stopped.refusedWhileStopping);
  assert.ok(Number.isInteger(refused) && refused >= 0);
  assert.ok(stored + refused <= sentAtExit, `stored ${stored} + refused ${refused} <= sent ${sentAtExit}`);
  t.diagnostic(`sent ${sentAtExit} before the exit; stored 0..${stored - 1}; refused while stopping: ${refused}`);
});
