// The inference worker dies mid-stream (as a crash in native code would): the agent stops with
// EDGE_ERR_INFERENCE (exit 70) without turning the queued readings into dead letters; after a restart
// every reading has exactly one prediction.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, tempDir, writeConfig,
} from '../helpers/parts.js';

const N = 3000;

test('worker crash: exit 70, queued QoS 1 readings kept in the inbox, all stored once after restart', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-worker-crash' } }));
  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-worker-crash' });

  const crashing = spawnAgent(t, config, { EDGE_AGENT_TEST_WORKER_EXIT_AFTER: '20' });
  await crashing.waitForLog('subscribed');
  const publishing = publishSequence(gateway, 'plant/press-4/bearing', N);
  const exit = await crashing.exited;
  assert.equal(exit.code, 70, crashing.stderr());
  assert.ok(crashing.logs.some((l) => l.msg === 'fatal error' && /inference worker exited/.test(String(l.err))), 'logged the worker exit');
  const atCrash = countRows(dbPath);
  assert.equal(atCrash.deadLetters, 0, 'valid readings were not turned into dead letters');
  assert.ok(atCrash.predictions < N, `the crash came mid-stream (${atCrash.predictions} stored)`);
  await publishing.done;

  const { exit: againExit, seqs } = await runUntilStored(t, config, dbPath, N);
  assert.equal(againExit.code, 0);
  assert.equal(seqs.length, N);
  assert.equal(new Set(seqs).size, N);
  assert.deepEqual(countRows(dbPath), { predictions: N, deadLetters: 0, inbox: 0 });
  t.diagnostic(`at the crash: ${atCrash.predictions} predictions, ${atCrash.inbox} inbox rows kept for replay`);
});
