// Tags on separate topics, end to end: the agent as a child process on a real mosquitto, tags published by
// mosquitto_pub (a third-party client) as bare numbers and as JSON objects, one topic per tag. A trigger tag
// makes one row per asset from the newest value of each feature; a superseded value is not used; a row
// missing a feature is a dead letter. Then kill -9 while tags wait in the join: after the restart the row
// the trigger makes holds the values acknowledged before the kill, and nothing is stored twice.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { callControl, controlSocketPath } from '../../agent/control.js';
import type { StatusSnapshot } from '../../agent/observe/status.js';
import { agentConfig, openDb, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const run = promisify(execFile);
const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;

/** One message by mosquitto_pub: it exits once the broker acknowledged it (QoS 1). */
async function pub(port: number, topic: string, message: string): Promise<void> {
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', topic, '-m', message], { timeout: 10_000 });
}

/** A feature's tag: bare numbers for the first three, JSON objects with a time for the rest. */
function tagPayload(feature: string, value: number, ts: number): string {
  return FEATURES.indexOf(feature as (typeof FEATURES)[number]) < 3 ? String(value) : JSON.stringify({ value, ts });
}

async function publishTags(port: number, asset: string, values: Record<string, number>, ts: number): Promise<void> {
  for (const [feature, v] of Object.entries(values)) await pub(port, `plant/line3/${asset}/${feature}`, tagPayload(feature, v, ts));
}

function query<T>(dbPath: string, sql: string): T[] {
  const db = openDb(dbPath);
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

function setup(dir: string, url: string) {
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url, dbPath,
    ingest: { subscriptions: [{ topic: 'plant/line3/+/+', qos: 1 }] },
    mapping: undefined,
    payload: { style: 'tags', tags: { assetLevel: 2 }, join: { trigger: 'cycle_end', maxAgeMs: 600_000 } },
  }));
  return { dbPath, path };
}

const base = { rms_g: 0.4, peak_g: 1.4, kurtosis: 3.0, crest_factor: 3.5, temperature_c: 45, speed_rpm: 1500 };

test('tags per topic: a trigger makes one row per asset of the newest values; a missing feature is a dead letter', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const { dbPath, path } = setup(dir, broker.url);
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const now = Date.now();
  await publishTags(broker.port, 'press-1', base, now);
  await publishTags(broker.port, 'press-2', { ...base, temperature_c: 60, speed_rpm: 2200 }, now);
  // press-1's temperature again: the newer value supersedes the first before any row used it.
  await pub(broker.port, 'plant/line3/press-1/temperature_c', JSON.stringify({ value: 47.5, ts: now + 1 }));
  // press-3 never sends speed_rpm.
  const { speed_rpm: _, ...noSpeed } = base;
  await publishTags(broker.port, 'press-3', noSpeed, now);
  for (const a of ['press-1', 'press-2', 'press-3']) await pub(broker.port, `plant/line3/${a}/cycle_end`, '1');

  await waitFor('two rows and a dead letter', () =>
    query<{ n: number }>(dbPath, 'SELECT (SELECT count(*) FROM predictions) + (SELECT count(*) FROM dead_letters) AS n')[0]?.n === 3, 30_000);
  const rows = query<{ asset: string; features: string; topic: string }>(dbPath, 'SELECT asset, features, topic FROM predictions ORDER BY asset');
  assert.deepEqual(rows.map((r) => ({ asset: r.asset, features: JSON.parse(r.features) as number[], topic: r.topic })), [
    { asset: 'press-1', features: FEATURES.map((f) => ({ ...base, temperature_c: 47.5 })[f]), topic: 'plant/line3/press-1/cycle_end' },
    { asset: 'press-2', features: FEATURES.map((f) => ({ ...base, temperature_c: 60, speed_rpm: 2200 })[f]), topic: 'plant/line3/press-2/cycle_end' },
  ]);
  const dead = query<{ reason_code: string; reason: string; topic: string }>(dbPath, 'SELECT reason_code, reason, topic FROM dead_letters');
  assert.equal(dead.length, 1);
  assert.equal(dead[0]?.reason_code, 'REJECT_MISSING_FIELD');
  assert.match(dead[0]?.reason ?? '', /speed_rpm/);
  assert.equal(dead[0]?.topic, 'plant/line3/press-3/cycle_end');
  // Held: the newest value of each tag (6 + 6 + 5); the superseded value and the triggers are gone.
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM inbox')[0]?.n, 17);
  // The status counts the superseded value the model never saw, and the three assets.
  const status = (await callControl(controlSocketPath(dbPath), 'status', {}, 10_000))?.result as StatusSnapshot;
  const tags = status.ingest[0] as unknown as { style: string; assets: number; supersededUnused: Record<string, number> };
  assert.equal(tags.style, 'tags');
  assert.equal(tags.assets, 3);
  assert.deepEqual(Object.entries(tags.supersededUnused).filter(([, n]) => n > 0), [['temperature_c', 1]]);
  assert.equal(await stopChild(agent), 0);
});

test('kill -9 while tags wait in the join: the row after the restart holds the values acknowledged before it, nothing twice', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const { dbPath, path } = setup(dir, broker.url);
  const first = spawnAgent(t, path);
  await first.waitForLog('agent ready');
  const now = Date.now();
  await publishTags(broker.port, 'press-1', base, now);
  await pub(broker.port, 'plant/line3/press-1/cycle_end', '1');
  await waitFor('the first row', () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n === 1, 30_000);
  // Acknowledged by the agent (mosquitto_pub waited for the broker's PUBACK; the agent stores before its own).
  await publishTags(broker.port, 'press-1', { temperature_c: 71, speed_rpm: 2900 }, now + 1000);
  // Stored in the inbox (before the agent's PUBACK) and the values they supersede gone: six held, two of them new.
  await waitFor('the new tags held', () =>
    query<{ n: number; fresh: number }>(dbPath, `SELECT count(*) AS n, sum(CAST(payload AS TEXT) LIKE '%"value":71,%' OR CAST(payload AS TEXT) LIKE '%"value":2900,%') AS fresh FROM inbox`)[0]?.fresh === 2
    && query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM inbox')[0]?.n === 6, 30_000);
  first.proc.kill('SIGKILL');
  await first.exited;

  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  await pub(broker.port, 'plant/line3/press-1/cycle_end', '2');
  await waitFor('the second row', () => (query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n ?? 0) >= 2, 30_000);
  const rows = query<{ features: string }>(dbPath, 'SELECT features FROM predictions ORDER BY id');
  assert.deepEqual(rows.map((r) => JSON.parse(r.features) as number[]), [
    FEATURES.map((f) => base[f]),
    FEATURES.map((f) => ({ ...base, temperature_c: 71, speed_rpm: 2900 })[f]),
  ]);
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM dead_letters')[0]?.n, 0);
  assert.equal(await stopChild(second), 0);
});

test('rows on a period: one row per asset with new values; after kill -9 the held values are restored, not made into a row again', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url: broker.url, dbPath,
    ingest: { subscriptions: [{ topic: 'plant/line3/+/+', qos: 1 }] },
    payload: { style: 'tags', tags: { assetLevel: 2 }, join: { periodMs: 300, maxAgeMs: 600_000 } },
  }));
  const rowsOf = (asset: string) => query<{ n: number }>(dbPath, `SELECT count(*) AS n FROM predictions WHERE asset = '${asset}'`)[0]?.n ?? 0;
  const first = spawnAgent(t, path);
  await first.waitForLog('agent ready');
  await publishTags(broker.port, 'press-1', base, Date.now());
  await waitFor('press-1 row', () => rowsOf('press-1') >= 1, 30_000);
  // Quiet: no new value, so no second row however many periods pass (seen when press-2's row comes after it).
  first.proc.kill('SIGKILL');
  await first.exited;
  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  // The replay gave press-1's six held tags back: had they counted as new, the first period would make a row.
  await publishTags(broker.port, 'press-2', base, Date.now());
  await waitFor('press-2 row', () => rowsOf('press-2') >= 1, 30_000);
  assert.equal(rowsOf('press-1'), 1);
  assert.equal(rowsOf('press-2'), 1);
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM dead_letters')[0]?.n, 0);
  // press-1 gets a new temperature: its next period's row holds it with the restored values.
  await pub(broker.port, 'plant/line3/press-1/temperature_c', JSON.stringify({ value: 88, ts: Date.now() }));
  await waitFor('press-1 second row', () => rowsOf('press-1') >= 2, 30_000);
  const last = query<{ features: string }>(dbPath, "SELECT features FROM predictions WHERE asset = 'press-1' ORDER BY id DESC LIMIT 1")[0];
  assert.deepEqual(JSON.parse(last?.features ?? '[]'), FEATURES.map((f) => ({ ...base, temperature_c: 88 })[f]));
  assert.equal(await stopChild(second), 0);
});

test('a gateway inventing assets: beyond join.maxAssets each new asset is a counted, logged REJECT_LIMIT dead letter; known assets go on', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url: broker.url, dbPath,
    ingest: { subscriptions: [{ topic: 'plant/line3/+/+', qos: 1 }] },
    payload: { style: 'tags', tags: { assetLevel: 2 }, join: { trigger: 'cycle_end', maxAssets: 2 } },
  }));
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  for (const a of ['press-1', 'press-2']) await publishTags(broker.port, a, base, Date.now());
  for (let i = 3; i <= 5; i++) await pub(broker.port, `plant/line3/press-${i}/temperature_c`, '45');
  await pub(broker.port, 'plant/line3/press-1/cycle_end', '1');
  await waitFor('a row for press-1 and three refusals', () =>
    query<{ n: number }>(dbPath, 'SELECT (SELECT count(*) FROM predictions) + (SELECT count(*) FROM dead_letters) AS n')[0]?.n === 4, 30_000);
  assert.deepEqual(query(dbPath, 'SELECT asset FROM predictions'), [{ asset: 'press-1' }]);
  const dead = query<{ reason_code: string; topic: string }>(dbPath, 'SELECT reason_code, topic FROM dead_letters ORDER BY id');
  assert.deepEqual(dead, [3, 4, 5].map((i) => ({ reason_code: 'REJECT_LIMIT', topic: `plant/line3/press-${i}/temperature_c` })));
  const logged = agent.logs.find((l) => l.msg === 'message rejected' && l.reason === 'REJECT_LIMIT');
  assert.match(String(logged?.detail), /maxAssets/);
  const status = (await callControl(controlSocketPath(dbPath), 'status', {}, 10_000))?.result as StatusSnapshot;
  assert.equal((status.ingest[0] as unknown as { refusedAssets: number; assets: number }).refusedAssets, 3);
  assert.equal((status.ingest[0] as unknown as { assets: number }).assets, 2);
  assert.equal(await stopChild(agent), 0);
});
