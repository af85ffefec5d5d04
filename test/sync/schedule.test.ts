// The sync schedule across daylight-saving changes, in Europe/Berlin, with fake timers (days cannot pass in
// a test otherwise) around the real node-cron, the real sync loop and a real SQLite store: on the day the
// clocks spring forward, 02:30 does not exist and node-cron skips it; the agent catches that day's run up
// (its watchdog), so every local day has exactly one run; on the day they fall back, 02:30 comes twice
// and the agent still runs once. The target only counts: nothing is sent in these runs.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mock, test, type TestContext } from 'node:test';
import { createLogger } from '../../agent/log.js';
import { openStore, storeOptionsSchema } from '../../agent/store/store.js';
import type { Target } from '../../sync/http.js';
import { longestGapMs, startSync, syncOptionsSchema, type RunReport } from '../../sync/upstream.js';
import { teardown, tempDir } from '../helpers/parts.js';

const berlinDay = (ms: number) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' }).format(ms);

async function runsBetween(t: TestContext, from: string, to: string, schedule: string, timezone: string) {
  const store = openStore(storeOptionsSchema.parse({ path: join(tempDir(t), 'a.db') }));
  teardown(t, () => store.close());
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: Date.parse(from) });
  teardown(t, () => mock.timers.reset());
  const runs: { reason: string; at: number }[] = [];
  const target: Target = { name: 'count', send: async () => ({ type: 'ok', status: 200 }), close: () => undefined };
  const sync = startSync({ ...syncOptionsSchema.parse({ schedule, timezone }), kinds: ['model_events'] }, {
    store, targets: [target], agentId: 'a', log: createLogger({ level: 'silent' }),
    afterRun: (r: RunReport) => void runs.push({ reason: r.reason, at: Date.now() }),
  });
  const end = Date.parse(to);
  const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
  // A run reads in the sync reader's thread: let it finish (a real wait, bounded) before time moves on.
  const settle = async () => {
    for (let i = 0; i < 3 || (sync.running && i < 200_000); i++) await flush();
    assert.equal(sync.running, false, 'a run finished');
  };
  await settle();
  while (Date.now() < end) {
    mock.timers.tick(60_000);
    await settle();
  }
  await sync.close();
  return runs.filter((r) => r.reason !== 'start');
}

test('the longest gap of a schedule is read in UTC', { timeout: 10000 }, () => {
  assert.equal(longestGapMs('30 2 * * *'), 24 * 3_600_000);
  assert.equal(longestGapMs('*/5 * * * *'), 5 * 60_000);
  assert.equal(longestGapMs('0 9 * * 1-5'), 3 * 24 * 3_600_000, 'over a weekend');
});

test('spring forward in Europe/Berlin: 02:30 does not exist on 29 March; that day still gets its one run', { timeout: 60_000 }, async (t) => {
  const runs = await runsBetween(t, '2026-03-27T12:00:00Z', '2026-03-31T12:00:00Z', '30 2 * * *', 'Europe/Berlin');
  assert.deepEqual(runs.map((r) => berlinDay(r.at)), ['2026-03-28', '2026-03-29', '2026-03-30', '2026-03-31'], JSON.stringify(runs.map((r) => [r.reason, new Date(r.at).toISOString()])));
  assert.deepEqual(runs.map((r) => r.reason), ['schedule', 'missed', 'schedule', 'schedule']);
});

test('fall back in Europe/Berlin: 02:30 comes twice on 25 October; the agent runs once', { timeout: 60_000 }, async (t) => {
  const runs = await runsBetween(t, '2026-10-23T12:00:00Z', '2026-10-27T12:00:00Z', '30 2 * * *', 'Europe/Berlin');
  assert.deepEqual(runs.map((r) => berlinDay(r.at)), ['2026-10-24', '2026-10-25', '2026-10-26', '2026-10-27'], JSON.stringify(runs.map((r) => [r.reason, new Date(r.at).toISOString()])));
  assert.ok(runs.every((r) => r.reason === 'schedule'));
});

test('in UTC (the default) a 30-minute schedule runs every 30 minutes through the night the clocks fall back', { timeout: 60_000 }, async (t) => {
  const runs = await runsBetween(t, '2026-10-24T22:00:00Z', '2026-10-25T04:00:00Z', '*/30 * * * *', 'UTC');
  const gaps = runs.slice(1).map((r, i) => r.at - (runs[i] as { at: number }).at);
  assert.equal(runs.length, 12);
  assert.ok(gaps.every((g) => g === 30 * 60_000), JSON.stringify(gaps));
});
