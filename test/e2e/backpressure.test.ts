// Backpressure end to end: a slow model (EDGE_AGENT_TEST_WORKER_DELAY_MS) and a QoS 1 backlog of
// thousands. The agent holds mqtt.js's callback once inference.maxQueuedRows rows wait, so the messages
// it has taken (its inbox rows, counted through a read-only connection) never exceed that bound, the
// broker keeps the rest, and every reading is stored once in the end.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, mqttClient, openDb, publishSequence, runUntilStored, spawnAgent, startMosquitto, teardown, tempDir, writeConfig,
} from '../helpers/parts.js';

const N = 3000;
const MAX_QUEUED = 64;

test('a backlog against a slow model: the inbox never holds more than maxQueuedRows, all stored once', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-backpressure-test' }, inference: { maxQueuedRows: MAX_QUEUED },
  }));
  const env = { EDGE_AGENT_TEST_WORKER_DELAY_MS: '20' };
  const agent = spawnAgent(t, config, env);
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-backpressure-test' });
  await publishSequence(gateway, 'plant/press-7/bearing', N, 200, 0).done; // the broker holds the backlog

  // Bound: the batcher counts queued and in-flight rows together and refuses the next message at
  // maxQueuedRows; a batch's inbox rows are deleted in the commit that stores it, before its rows leave
  // that count. So the committed inbox never holds more than maxQueuedRows rows.
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const inbox = db.prepare('SELECT count(*) AS n FROM inbox');
  const stored = db.prepare('SELECT count(*) AS n FROM predictions');
  let peak = 0;
  let samples = 0;
  const end = Date.now() + 90000;
  for (;;) {
    const n = (inbox.get() as { n: number }).n;
    peak = Math.max(peak, n);
    samples++;
    if ((stored.get() as { n: number }).n >= N || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
  t.diagnostic(`inbox peak ${peak} rows over ${samples} samples (bound ${MAX_QUEUED})`);
  assert.ok(peak <= MAX_QUEUED, `inbox peak ${peak} <= maxQueuedRows ${MAX_QUEUED}`);
  assert.ok(peak >= MAX_QUEUED / 2, `the sampler saw the agent's queue fill (${peak})`);
  assert.deepEqual(countRows(dbPath), { predictions: N, deadLetters: 0, inbox: 0 });
  const again = await runUntilStored(t, config, dbPath, N); // nothing left for a next session either
  assert.equal(again.seqs.length, N);
  assert.deepEqual([...again.seqs].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i), 'every reading stored once');
});
