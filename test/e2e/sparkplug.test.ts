// Sparkplug B end to end: the agent as a child process on a real mosquitto, serving the demo model from a
// Sparkplug B edge node in its own process (test/helpers/edge-node.ts). What is checked is what a user sees:
// rows in the SQLite file, the NCMDs the edge node and a separate subscriber receive, and the status the
// control socket gives. The edge node's device carries the six features and a `cycle` metric (the trigger).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sparkplug from 'sparkplug-payload';
import { callControl, controlSocketPath } from '../../agent/control.js';
import type { SparkplugStatus } from '../../agent/ingest/sparkplug.js';
import type { StatusSnapshot } from '../../agent/observe/status.js';
import { agentConfig, mqttClient, openDb, repoRoot, spawnAgent, spawnChild, startMosquitto, stopChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const codec = sparkplug.get('spBv1.0')!;
const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;
type Values = Record<(typeof FEATURES)[number], number>;
const base: Values = { rms_g: 0.4, peak_g: 1.4, kurtosis: 3.0, crest_factor: 3.5, temperature_c: 45, speed_rpm: 1500 };
const CYCLE = 7; // the trigger's alias; features are aliases 1..6 in FEATURES order
const ASSET = 'gw1.bearing1';
const edgeNodePath = join(repoRoot, 'dist', 'test', 'helpers', 'edge-node.js');

interface Line { event: string; id?: number; topic?: string; metrics?: { name: string; value: unknown }[] }
const isRebirth = (l: Line) => l.event === 'ncmd' && !!l.metrics?.some((m) => m.name === 'Node Control/Rebirth' && m.value === true);

function query<T>(dbPath: string, sql: string): T[] {
  const db = openDb(dbPath);
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}
const count = (dbPath: string, table: string) => query<{ n: number }>(dbPath, `SELECT count(*) AS n FROM ${table}`)[0]?.n ?? 0;
const rows = (dbPath: string) => query<{ asset: string; features: string; topic: string }>(dbPath, 'SELECT asset, features, topic FROM predictions ORDER BY id')
  .map((r) => ({ asset: r.asset, features: JSON.parse(r.features) as number[], topic: r.topic }));
const row = (v: Values, topic = 'spBv1.0/plant/DDATA/gw1/bearing1') => ({ asset: ASSET, features: FEATURES.map((f) => v[f]), topic });

function setup(dir: string, url: string) {
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url, dbPath,
    ingest: { subscriptions: [{ topic: 'spBv1.0/plant/#', qos: 0 }] },
    mapping: undefined,
    payload: {
      style: 'sparkplug',
      sparkplug: {
        reorderTimeoutMs: 300, rebirthMinIntervalMs: 60_000,
        metrics: [...FEATURES.map((f) => ({ metric: `Bearing/${f}`, feature: f })), { metric: 'Bearing/cycle', feature: 'cycle' }],
      },
      join: { trigger: 'cycle', maxAgeMs: 600_000 },
    },
  }));
  return { dbPath, path };
}

async function sparkplugStatus(dbPath: string): Promise<SparkplugStatus> {
  const status = (await callControl(controlSocketPath(dbPath), 'status', {}, 10_000))?.result as StatusSnapshot;
  const model = status.ingest[0] as unknown as { style: string; sparkplug: SparkplugStatus };
  assert.equal(model.style, 'sparkplug');
  return model.sparkplug;
}

/** The edge node process: commands on stdin, one "done" line each; the NCMDs it receives on stdout. */
function edgeNode(t: Teardown, url: string) {
  const child = spawnChild(t, process.execPath, [edgeNodePath, url, 'plant', 'gw1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let nextId = 1;
  let clock = 0;
  let cycles = 0;
  const lines = (): Line[] => child.stdout().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Line);
  const check = () => {
    if (child.proc.exitCode !== null) throw new Error(`edge node exited ${child.proc.exitCode}: ${child.stderr()}`);
  };
  const node = {
    lines,
    rebirths: () => lines().filter(isRebirth).length,
    async ready() {
      await waitFor('edge node ready', () => (check(), lines().some((l) => l.event === 'ready')), 30_000);
    },
    async send(cmd: Record<string, unknown>) {
      const id = nextId++;
      child.proc.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
      await waitFor(`edge node done with ${JSON.stringify(cmd)}`, () => (check(), lines().some((l) => l.event === 'done' && l.id === id)), 30_000);
    },
    async birth() {
      await node.send({
        cmd: 'birth',
        devices: { bearing1: [...FEATURES.map((f, k) => ({ name: `Bearing/${f}`, alias: k + 1, type: 'Double', value: base[f] })), { name: 'Bearing/cycle', alias: CYCLE, type: 'Int32', value: 0 }] },
      });
    },
    /** DDATA by alias; a strictly increasing timestamp (the join drops a value whose time is not newer). */
    async data(values: Partial<Values>, extra: Record<string, unknown> = {}) {
      clock = Math.max(Date.now(), clock + 1);
      const v: [number, number][] = FEATURES.flatMap((f, k) => (values[f] === undefined ? [] : [[k + 1, values[f]] as [number, number]]));
      v.push([CYCLE, ++cycles]);
      await node.send({ cmd: 'data', device: 'bearing1', values: v, ts: clock, ...extra });
      return { ts: clock, cycle: cycles };
    },
  };
  return node;
}

test('birth then DDATA by alias: rows of the values sent; an unknown alias is a dead letter and one rebirth NCMD; historical values apart; a lost seq counted', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const { dbPath, path } = setup(tempDir(t), broker.url);
  // An independent witness of what the agent publishes: its NCMDs and its results, in the order the agent sent them.
  const watcher = await mqttClient(t, broker.url, { clean: true });
  const seen: string[] = [];
  watcher.on('message', (topic, payload) => {
    if (!topic.includes('/NCMD/')) return void seen.push('result');
    const m = codec.decodePayload(payload).metrics ?? [];
    seen.push(m.some((x) => x.name === 'Node Control/Rebirth' && x.value === true) ? 'rebirth' : 'ncmd');
  });
  await watcher.subscribeAsync(['spBv1.0/plant/NCMD/#', 'plant/+/predictions/+'], { qos: 1 });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const node = edgeNode(t, broker.url);
  await node.ready();

  await node.birth();
  const first = { ...base, rms_g: 0.55, peak_g: 1.9, temperature_c: 47.25 };
  await node.data(first);
  const second = { ...first, speed_rpm: 1720 }; // DATA carries only what changed
  await node.data({ speed_rpm: 1720 });
  await waitFor('three rows', () => count(dbPath, 'predictions') >= 3, 30_000);
  assert.deepEqual(rows(dbPath), [row(base, 'spBv1.0/plant/DBIRTH/gw1/bearing1'), row(first), row(second)]);

  // An alias the birth did not declare: the whole message is a dead letter, a rebirth is asked, once.
  await node.send({ cmd: 'data', device: 'bearing1', values: [[99, 1], [1, 0.9]] });
  await node.send({ cmd: 'data', device: 'bearing1', values: [[98, 1]] });
  await waitFor('two dead letters', () => count(dbPath, 'dead_letters') >= 2, 30_000);
  const dead = query<{ reason_code: string; reason: string; topic: string }>(dbPath, 'SELECT reason_code, reason, topic FROM dead_letters ORDER BY id');
  assert.deepEqual(dead.map((d) => [d.reason_code, d.topic]), [['REJECT_SPARKPLUG_NO_BIRTH', 'spBv1.0/plant/DDATA/gw1/bearing1'], ['REJECT_SPARKPLUG_NO_BIRTH', 'spBv1.0/plant/DDATA/gw1/bearing1']]);
  assert.match(dead[0]!.reason, /alias 99 was not declared by the birth/);
  await waitFor('the rebirth NCMD at the edge node', () => node.rebirths() >= 1, 30_000);

  // A historical value goes to its table and into no row: the next live trigger's row has the live temperature.
  const h = await node.data({ temperature_c: 99 }, { historical: true });
  await waitFor('historical rows', () => count(dbPath, 'historical') >= 2, 30_000);
  const hist = query<{ model: string; asset: string; feature: string; ts: number; value: string }>(dbPath, 'SELECT model, asset, feature, ts, value FROM historical ORDER BY id');
  assert.deepEqual(hist, [
    { model: 'bearing-health', asset: ASSET, feature: 'temperature_c', ts: h.ts, value: '99' },
    { model: 'bearing-health', asset: ASSET, feature: 'cycle', ts: h.ts, value: String(h.cycle) },
  ]);
  // A seq skipped: the values after it are used; once reorderTimeoutMs has passed the number counts as lost.
  const third = { ...second, kurtosis: 4.5 };
  await node.data({ kurtosis: 4.5 }, { skip: 1 });
  await waitFor('the row after the gap', () => count(dbPath, 'predictions') >= 4, 30_000);
  assert.deepEqual(rows(dbPath).slice(3), [row(third)]);
  // That row's result came after every NCMD the agent published before it: exactly one rebirth for three reasons.
  await waitFor('four results', () => seen.filter((s) => s === 'result').length >= 4, 30_000);
  assert.deepEqual(seen.filter((s) => s !== 'result'), ['rebirth']);
  assert.equal(node.rebirths(), 1);
  await waitFor('the skipped seq counted lost', async () => (await sparkplugStatus(dbPath)).nodes[0]?.lost === 1, 30_000);
  const s = (await sparkplugStatus(dbPath)).nodes[0]!;
  assert.deepEqual([s.group, s.node, s.online, s.gaps, s.lost, s.rebirths, s.births], ['plant', 'gw1', true, 1, 1, 1, 1]);
  assert.equal(count(dbPath, 'predictions'), 4);
  assert.equal(await stopChild(agent), 0);
});

test('an edge node restart (new bdSeq, seq from 0) goes on making rows; a stale NDEATH is ignored; DDEATH and NDEATH stop the rows', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const { dbPath, path } = setup(tempDir(t), broker.url);
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const node = edgeNode(t, broker.url);
  await node.ready();
  await node.birth();
  await node.data({ rms_g: 0.6 });
  await waitFor('two rows', () => count(dbPath, 'predictions') >= 2, 30_000);

  // The connection drops without DISCONNECT: the broker sends the Will (NDEATH, bdSeq 0); the node births with bdSeq 1.
  await node.send({ cmd: 'restart' });
  await node.data({ rms_g: 0.7 });
  await waitFor('rows after the restart', () => count(dbPath, 'predictions') >= 4, 30_000); // the new DBIRTH's row and the data's
  assert.deepEqual(rows(dbPath).slice(2), [row(base, 'spBv1.0/plant/DBIRTH/gw1/bearing1'), row({ ...base, rms_g: 0.7 })]);
  let s = (await sparkplugStatus(dbPath)).nodes[0]!;
  assert.deepEqual([s.online, s.bdSeq, s.births, s.lost], [true, 1, 2, 0]);

  // The Will of the old connection again (bdSeq 0): not the current birth's death; rows go on.
  await node.send({ cmd: 'ndeath', bdSeq: 0 });
  await node.data({ rms_g: 0.8 });
  await waitFor('the row after the stale NDEATH', () => count(dbPath, 'predictions') >= 5, 30_000);
  assert.deepEqual(rows(dbPath)[4], row({ ...base, rms_g: 0.8 }));
  assert.equal((await sparkplugStatus(dbPath)).nodes[0]!.online, true);

  // DDEATH: the device is offline, its data makes no row (a dead letter each).
  await node.send({ cmd: 'ddeath', device: 'bearing1' });
  await node.data({ rms_g: 0.9 });
  await waitFor('a dead letter after DDEATH', () => count(dbPath, 'dead_letters') >= 1, 30_000);
  s = (await sparkplugStatus(dbPath)).nodes[0]!;
  assert.deepEqual([s.online, s.devices], [true, [{ device: 'bearing1', online: false }]]);

  // Born again: rows again; then NDEATH with the current bdSeq: node and device offline, no row.
  await node.birth();
  await node.data({ rms_g: 1.0 });
  await waitFor('rows after the new birth', () => count(dbPath, 'predictions') >= 7, 30_000);
  await node.send({ cmd: 'ndeath' });
  await node.data({ rms_g: 1.1 });
  await waitFor('a dead letter after NDEATH', () => count(dbPath, 'dead_letters') >= 2, 30_000);
  s = (await sparkplugStatus(dbPath)).nodes[0]!;
  assert.deepEqual([s.online, s.bdSeq, s.devices], [false, 1, [{ device: 'bearing1', online: false }]]);
  const dead = query<{ reason_code: string; reason: string }>(dbPath, 'SELECT reason_code, reason FROM dead_letters ORDER BY id');
  assert.deepEqual(dead.map((d) => d.reason_code), ['REJECT_SPARKPLUG_NO_BIRTH', 'REJECT_SPARKPLUG_NO_BIRTH']);
  assert.match(dead[0]!.reason, /device's birth/);
  assert.match(dead[1]!.reason, /node's birth/);
  assert.deepEqual(rows(dbPath).slice(5).map((r) => r.features[0]), [0.4, 1.0]);
  assert.equal(count(dbPath, 'predictions'), 7);
  assert.equal(await stopChild(agent), 0);
});

test('births survive an agent restart: DDATA by alias after it, without a new birth, still makes rows (and one rebirth is asked)', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const { dbPath, path } = setup(tempDir(t), broker.url);
  const first = spawnAgent(t, path);
  await first.waitForLog('agent ready');
  const node = edgeNode(t, broker.url);
  await node.ready();
  await node.birth();
  await node.data({ rms_g: 0.6 });
  await waitFor('two rows', () => count(dbPath, 'predictions') >= 2, 30_000);
  assert.deepEqual(query<{ key: string }>(dbPath, 'SELECT key FROM sparkplug_births ORDER BY key').map((r) => r.key), ['plant/gw1', 'plant/gw1/bearing1']);
  assert.equal(await stopChild(first), 0);

  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  const after = { ...base, rms_g: 0.65, peak_g: 2.1, kurtosis: 3.3, crest_factor: 3.2, temperature_c: 51.5, speed_rpm: 1810 };
  await node.data(after);
  await waitFor('the row after the restart', () => count(dbPath, 'predictions') >= 3, 30_000);
  assert.deepEqual(rows(dbPath)[2], row(after));
  assert.equal(count(dbPath, 'dead_letters'), 0);
  // The agent cannot know what it missed while down: it asks the node for a fresh birth, once.
  await waitFor('the rebirth NCMD', () => node.rebirths() >= 1, 30_000);
  const s = (await sparkplugStatus(dbPath)).nodes[0]!;
  assert.deepEqual([s.online, s.confirmed, s.bdSeq, s.rebirths], [true, true, 0, 1]);
  assert.equal(await stopChild(second), 0);
});
