// Graceful stop under load: SIGTERM while a QoS 1 stream is flowing. The agent stops taking
// messages, finishes the batches in flight, commits, disconnects keeping its session and exits 0;
// what it had not acknowledged the broker keeps, so after a restart every reading is stored once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import {
  agentConfig, countRows, mqttClient, publishSequence, readingPayload, runUntilStored, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const N = 6000;

test('SIGTERM under load: exit 0, nothing in flight lost, the rest delivered after restart', async (t) => {
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

test('SIGTERM under a QoS 0 flood: the agent stops taking messages, commits what it took and exits 0', async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, ingest: { subscriptions: [{ topic: 'plant/+/fast', qos: 0 }] }, publish: { topic: 'plant/{asset}/predictions/{model}', qos: 0 }, shutdown: { deadlineMs: 8000 } }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url);
  let flooding = true;
  const payload = readingPayload(1);
  const flood = (async () => {
    // Bounded: at most 200k messages or 20 s, whichever comes first.
    const end = Date.now() + 20000;
    for (let i = 0; flooding && i < 200000 && Date.now() < end; i += 200) {
      for (let k = 0; k < 200; k++) gateway.publish('plant/press-9/fast', payload, { qos: 0 });
      await new Promise((r) => setImmediate(r));
    }
  })();
  await waitFor('some predictions', () => countRows(dbPath).predictions >= 2000);
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  flooding = false;
  await flood;
  assert.deepEqual(exit, { code: 0, signal: null });
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped');
  assert.ok(stopped, 'logged "agent stopped"');
  assert.equal(countRows(dbPath).predictions, stopped.predictions, 'every reading taken was committed');
  t.diagnostic(`committed ${String(stopped.predictions)}; refused while stopping: ${String(stopped.refusedWhileStopping)}`);
});
