// Stops that cannot finish cleanly. The broker frozen (SIGSTOP) while the agent still has QoS 1 results to
// publish: their PUBACKs never come, but the results are in the store, so the stop ends within the
// deadline with exit 0. A model stuck on a batch: exit 70 at the deadline, the log naming the part that
// hung. And a second signal stops a hung stop at once.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  agentConfig, countRows, mqttClient, publishSequence, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const N = 1000;

/** An agent with a backlog in memory and its broker frozen: whatever it commits next, it cannot get acknowledged. */
async function frozenBroker(t: TestContext, deadlineMs: number) {
  const broker = await startMosquitto(t); // its teardown sends SIGCONT before stopping it
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-hang-test' },
    inference: { maxQueuedRows: 64 }, shutdown: { deadlineMs },
  }));
  // A slow model (50 ms a batch) keeps the agent's queue full, so rows are in its memory when the broker freezes.
  const agent = spawnAgent(t, config, { EDGE_AGENT_TEST_WORKER_DELAY_MS: '50' });
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-hang-test' });
  await publishSequence(gateway, 'plant/press-5/bearing', N, 100, 0).done;
  await waitFor('the first rows', () => countRows(dbPath).predictions >= 1);
  broker.proc.kill('SIGSTOP');
  const atFreeze = countRows(dbPath).predictions;
  assert.ok(atFreeze < N, `a backlog remains at the freeze (${atFreeze} of ${N} stored)`);
  return { agent, dbPath, atFreeze };
}

test('SIGTERM with the broker frozen: results stay in the store, the stop ends within the deadline, exit 0', { timeout: 60000 }, async (t) => {
  const deadlineMs = 6000;
  const { agent, dbPath, atFreeze } = await frozenBroker(t, deadlineMs);
  const t0 = Date.now();
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  const ms = Date.now() - t0;
  assert.deepEqual(exit, { code: 0, signal: null }, `${agent.stderr()}\n${agent.logs.slice(-12).map((l) => JSON.stringify(l)).join('\n')}`);
  assert.ok(ms < deadlineMs + 1000, `within the deadline (${ms} ms)`);
  // Rows committed after the freeze: their results went to a broker that could not acknowledge them.
  const stored = countRows(dbPath);
  assert.ok(stored.predictions > atFreeze, 'the agent committed rows after the broker froze');
  const overrun = agent.logs.find((l) => l.msg === 'part did not close in time; force-closing it' && l.part === 'wait for result acknowledgements');
  assert.ok(overrun, 'logged the part that could not finish');
  assert.equal(overrun.effect, 'results not acknowledged by the broker are in the store');
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped');
  assert.ok(stopped, 'a clean stop');
  assert.equal(stopped.predictions, stored.predictions - 0, 'every prediction counted is in the store');
  t.diagnostic(`exit 0 after ${ms} ms; force-closed: ${JSON.stringify(stopped.forced)}`);
});

test('a part that cannot finish (the model stuck on a batch): exit 70 at the deadline, the log names it', { timeout: 60000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const deadlineMs = 3000;
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, shutdown: { deadlineMs } }));
  // The first batch after the golden check never finishes: it is still running when SIGTERM comes.
  const agent = spawnAgent(t, config, { EDGE_AGENT_TEST_WORKER_STUCK_AFTER: '1' });
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/press-6/bearing', 10, 10, 0).done;
  await waitFor('the readings in the inbox', () => countRows(dbPath).inbox === 10);
  const t0 = Date.now();
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  const ms = Date.now() - t0;
  assert.deepEqual(exit, { code: 70, signal: null }, agent.stderr());
  assert.ok(ms >= deadlineMs, `waited for the deadline (${ms} ms)`);
  const line = agent.logs.find((l) => l.msg === 'shutdown deadline passed; force-closing');
  assert.ok(line, 'logged the deadline');
  assert.equal(line.code, 'EDGE_ERR_SHUTDOWN_TIMEOUT');
  assert.equal(line.hung, 'finish batches in flight');
  assert.equal(countRows(dbPath).inbox, 10, 'the readings stay in the inbox for the replay');
  t.diagnostic(`exit 70 after ${ms} ms; hung: ${String(line.hung)}`);
});

test('a second signal stops a hung stop at once with exit 130', { timeout: 60000 }, async (t) => {
  const deadlineMs = 60000;
  const { agent } = await frozenBroker(t, deadlineMs);
  agent.proc.kill('SIGTERM');
  await agent.waitForLog('stopping');
  const t0 = Date.now();
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  const ms = Date.now() - t0;
  assert.deepEqual(exit, { code: 130, signal: null }, agent.stderr());
  assert.ok(ms < deadlineMs / 4, `stopped well before the deadline (${ms} ms)`);
  const line = agent.logs.find((l) => l.msg === 'second signal: stopping now');
  assert.ok(line, 'logged the second signal');
  assert.equal(line.signal, 'SIGTERM');
});
