// Retention and the disk budget, with the agent as a child process, real mosquitto and real HTTP receivers:
// rows past their age are deleted only once every sync target has them; at the budget the oldest unsynced
// rows are dropped and each drop is a gap that reaches upstream (never silent), or intake holds and the
// broker keeps the readings until sync made room, after which every one of them arrives.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startReceiver } from '../helpers/receiver.js';
import { agentConfig, freePort, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const count = (dbPath: string, sql: string) => {
  const db = openDb(dbPath);
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
};

async function agentWith(t: TestContext, targets: { name: string; url: string }[], retention: Record<string, unknown>) {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, log: { level: 'info' },
    store: { path: dbPath, retention: { everyMs: 200, ...retention } },
    sync: { schedule: '* * * * * *', runDeadlineMs: 1500, batchRows: 500, retry: { minMs: 50, maxMs: 200 }, targets: targets.map((x) => ({ type: 'http', ...x })) },
  }));
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  return { agent, dbPath, path, gateway };
}

test('rows past their age are deleted once every sync target has them, not before', { timeout: 120_000 }, async (t) => {
  const a = await startReceiver(t);
  const bPort = await freePort(); // target b is down
  const { agent, dbPath, gateway } = await agentWith(t, [{ name: 'a', url: a.url }, { name: 'b', url: `http://127.0.0.1:${bPort}/ingest` }], { maxAgeHours: 1 / 3600, minFreeDiskBytes: Number.MAX_SAFE_INTEGER });
  // No disk has that much free: the warning comes at the first retention pass.
  const warned = await agent.waitForLog('the disk holding the store is nearly full');
  assert.ok(typeof warned.freeDiskBytes === 'number' && warned.freeDiskBytes > 0);
  const N = 300;
  await publishSequence(gateway, 'plant/press-1/bearing', N, 50, 5).done;
  await waitFor('target a has every prediction', () => a.rows('prediction').length === N, 30_000);
  // Well past their age (1 s) and many retention passes later, b still lacks them: they stay.
  await waitFor('retention passes', () => agent.logs.filter((l) => l.msg === 'sync target unavailable; trying again at the next run').length >= 2, 30_000);
  assert.equal(count(dbPath, 'SELECT count(*) AS n FROM predictions'), N, 'not deleted while target b lacks them');
  const b = await startReceiver(t, bPort);
  await waitFor('target b has every prediction', () => b.rows('prediction').length === N, 30_000);
  await waitFor('the synced rows deleted', () => count(dbPath, 'SELECT count(*) AS n FROM predictions') === 0, 30_000);
  assert.equal(await stopChild(agent), 0);
});

test('at the budget with drop-oldest: the oldest unsynced rows are dropped, each drop a gap that reaches upstream', { timeout: 120_000 }, async (t) => {
  const port = await freePort(); // upstream down while the store fills
  const { agent, dbPath, gateway, path } = await agentWith(t, [{ name: 'up', url: `http://127.0.0.1:${port}/ingest` }], { maxBytes: 1024 * 1024 });
  const N = 6000;
  await publishSequence(gateway, 'plant/press-1/bearing', N, 100, 5).done;
  await waitFor('a drop', () => agent.logs.some((l) => l.msg === 'disk budget reached: oldest unsynced rows dropped (recorded as a gap)'), 60_000);
  await waitFor('every reading taken', () => count(dbPath, "SELECT coalesce(max(id), 0) AS n FROM predictions") >= N, 60_000);
  const status = await runCli(['sync', 'status', '--config', path]);
  assert.match(status.stdout, /\d+ unsynced dropped in [1-9]\d* gaps/);
  const receiver = await startReceiver(t, port);
  // Every reading is accounted for upstream: a prediction row, or inside a gap.
  await waitFor('every row or its gap upstream', () => {
    const ids = new Set(receiver.rows('prediction').map((r) => r.id as number));
    const gaps = receiver.rows('gap').filter((g) => g.of === 'predictions');
    const covered = (id: number) => ids.has(id) || gaps.some((g) => id >= (g.firstId as number) && id <= (g.lastId as number));
    return Array.from({ length: N }, (_, i) => i + 1).every(covered);
  }, 60_000);
  const gaps = receiver.rows('gap');
  assert.ok(gaps.length > 0, 'gaps reached upstream');
  assert.ok(gaps.every((g) => /disk budget/.test(String(g.reason)) && (g.rows as number) > 0));
  const inGaps = gaps.reduce((n, g) => n + (g.rows as number), 0);
  assert.equal(new Set(receiver.rows('prediction').map((r) => r.id)).size + inGaps, N, 'each reading either arrived or was counted in a gap, never both, never neither');
  assert.equal(await stopChild(agent), 0);
});

test('at the budget with hold-intake: the broker keeps the readings until sync made room, then every one arrives', { timeout: 150_000 }, async (t) => {
  const port = await freePort();
  const { agent, dbPath, gateway } = await agentWith(t, [{ name: 'up', url: `http://127.0.0.1:${port}/ingest` }], { maxBytes: 1024 * 1024, onFull: 'hold-intake' });
  const N = 6000;
  const sending = publishSequence(gateway, 'plant/press-1/bearing', N, 100, 5);
  await waitFor('intake on hold', () => agent.logs.some((l) => l.msg === 'disk budget reached: intake holds until sync makes room'), 60_000);
  await sending.done; // the broker took every reading: it holds what the agent does not take yet
  const held = count(dbPath, 'SELECT count(*) AS n FROM predictions');
  assert.ok(held < N, `the agent stopped taking readings at the budget (${held} of ${N})`);
  const receiver = await startReceiver(t, port);
  await waitFor('every reading upstream', () => new Set(receiver.rows('prediction').map((r) => r.id)).size === N, 120_000);
  assert.equal(receiver.rows('gap').length, 0, 'nothing dropped');
  assert.ok(agent.logs.some((l) => l.msg === 'disk budget: room again'));
  assert.equal(await stopChild(agent), 0);
});
