// Sparkplug B STATE end to end: the agent as a child process with sparkplug.hostId on a real mosquitto. What a
// SCADA or an edge node would see, read with mosquitto_sub (a third-party client): the retained STATE birth once
// the agent is up, the Will (offline, the birth's timestamp) after a SIGKILL, the death (offline, the time of the
// stop) after a clean stop. Readings come on the host's own connection (<clientId>-spb) and make rows.
// And the config refuses a QoS 1 subscription for a model with a host id, naming the key.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { callControl, controlSocketPath } from '../../agent/control.js';
import type { SparkplugStatus } from '../../agent/ingest/sparkplug.js';
import type { StatusSnapshot } from '../../agent/observe/status.js';
import { agentConfig, openDb, repoRoot, runCli, spawnAgent, spawnChild, startMosquitto, stopChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const run = promisify(execFile);
const HOST = 'edge-agent-test';
const STATE = `spBv1.0/STATE/${HOST}`;
const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;
const edgeNodePath = join(repoRoot, 'dist', 'test', 'helpers', 'edge-node.js');
interface State { online: boolean; timestamp: number }

function sparkplugConfig(url: string, dbPath: string, qos: 0 | 1 = 0) {
  return agentConfig({
    url, dbPath,
    ingest: { subscriptions: [{ topic: 'spBv1.0/plant/#', qos }] },
    mapping: undefined,
    payload: {
      style: 'sparkplug',
      sparkplug: { hostId: HOST, metrics: [...FEATURES.map((f) => ({ metric: f, feature: f })), { metric: 'cycle', feature: 'cycle' }] },
      join: { trigger: 'cycle', maxAgeMs: 600_000 },
    },
  });
}

/** The retained STATE as a new subscriber gets it: [retained flag, payload]. */
async function retainedState(port: number): Promise<[string, State]> {
  const { stdout } = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', STATE, '-C', '1', '-W', '10', '-F', '%r %p'], { timeout: 15_000 });
  const line = stdout.trim();
  const space = line.indexOf(' ');
  return [line.slice(0, space), JSON.parse(line.slice(space + 1)) as State];
}

/** A mosquitto_sub that stays subscribed to STATE, line-buffered: every STATE message as it comes. */
function stateWatcher(t: Teardown, port: number) {
  const child = spawnChild(t, 'stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-t', STATE, '-q', '1'], { stopSignal: 'SIGTERM' });
  const states = (): State[] => child.stdout().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as State);
  return {
    states,
    async until(what: string, pred: (s: State) => boolean): Promise<State> {
      let hit: State | undefined;
      await waitFor(what, () => (hit = states().find(pred)) !== undefined, 30_000);
      return hit as State;
    },
  };
}

const count = (dbPath: string) => {
  const db = openDb(dbPath);
  try {
    return (db.prepare('SELECT count(*) AS n FROM predictions').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

test('sparkplug.hostId: STATE birth retained after connect, rows through the host connection, the Will after SIGKILL, the death at a clean stop', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, sparkplugConfig(broker.url, dbPath));
  const startedAt = Date.now();
  const first = spawnAgent(t, path);
  await first.waitForLog('agent ready');
  const [retained, birth] = await retainedState(broker.port);
  assert.equal(retained, '1');
  assert.equal(birth.online, true);
  assert.ok(birth.timestamp >= startedAt && birth.timestamp <= Date.now(), `birth timestamp ${birth.timestamp} is the time of the CONNECT`);
  const online = first.logs.find((l) => l.msg === 'sparkplug host online');
  assert.match(String(online?.clientId), /-spb$/);

  // The edge node's readings reach the model through the host's connection; its rebirth request too.
  const node = spawnChild(t, process.execPath, [edgeNodePath, broker.url, 'plant', 'gw1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  await waitFor('edge node ready', () => node.stdout().includes('"ready"'), 30_000);
  const birthCmd = { cmd: 'birth', devices: { b1: [...FEATURES.map((f, k) => ({ name: f, alias: k + 1, type: 'Double', value: [0.4, 1.4, 3, 3.5, 45, 1500][k] })), { name: 'cycle', alias: 7, type: 'Int32', value: 1 }] } };
  node.proc.stdin!.write(`${JSON.stringify(birthCmd)}\n`);
  await waitFor('the birth sent', () => node.stdout().includes('"cmd":"birth"'), 30_000);
  // A time after the birth's (the join keeps only newer values).
  node.proc.stdin!.write(`${JSON.stringify({ cmd: 'data', device: 'b1', values: [[1, 0.5], [7, 2]], ts: Date.now() + 1 })}\n`);
  node.proc.stdin!.write(`${JSON.stringify({ cmd: 'data', device: 'b1', values: [[42, 1]] })}\n`);
  await waitFor('two rows', () => count(dbPath) >= 2, 30_000);
  await waitFor('the rebirth NCMD at the edge node', () => node.stdout().includes('Node Control/Rebirth'), 30_000);
  assert.equal(count(dbPath), 2);

  // SIGKILL: no DISCONNECT, so the broker publishes the Will: offline, with the birth's timestamp.
  const watcher = stateWatcher(t, broker.port);
  await watcher.until('the retained birth at the watcher', (s) => s.online);
  first.proc.kill('SIGKILL');
  await first.exited;
  const will = await watcher.until('the Will', (s) => !s.online);
  assert.deepEqual(will, { online: false, timestamp: birth.timestamp });
  assert.deepEqual(await retainedState(broker.port), ['1', will]);

  // Started again: a new birth (it reads its own retained offline STATE and is online again); a clean stop
  // publishes the death with the time of the stop (the Will, which a clean DISCONNECT discards, has the birth's).
  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  const again = await watcher.until('the second birth', (s) => s.online && s.timestamp > birth.timestamp);
  assert.deepEqual((await retainedState(broker.port))[1].online, true);
  assert.equal(await stopChild(second), 0);
  const death = await watcher.until('the death', (s) => !s.online && s.timestamp > again.timestamp);
  assert.deepEqual(await retainedState(broker.port), ['1', death]);
  assert.equal(watcher.states().filter((s) => !s.online && s.timestamp === again.timestamp).length, 0, 'no Will after a clean stop');
});

test('hostId set for an agent whose main session had the Sparkplug B filters: each message comes once', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const withHost = sparkplugConfig(broker.url, dbPath) as { mqtt: object; payload: { sparkplug: { hostId?: string } } };
  const { hostId: _, ...noHost } = withHost.payload.sparkplug;
  // Run first without hostId: the main (persistent) session subscribes spBv1.0/plant/#.
  const before = spawnAgent(t, writeConfig(dir, { ...withHost, payload: { ...withHost.payload, sparkplug: noHost } }, 'before.yaml'));
  await before.waitForLog('agent ready');
  assert.equal(await stopChild(before), 0);
  const after = spawnAgent(t, writeConfig(dir, withHost, 'after.yaml'));
  await after.waitForLog('agent ready');
  const node = spawnChild(t, process.execPath, [edgeNodePath, broker.url, 'plant', 'gw1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  await waitFor('edge node ready', () => node.stdout().includes('"ready"'), 30_000);
  const send = async (cmd: object, n: number) => {
    node.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    await waitFor(`command ${n} done`, () => node.stdout().split('"event":"done"').length > n, 30_000);
  };
  await send({ cmd: 'birth', devices: { b1: [...FEATURES.map((f, k) => ({ name: f, alias: k + 1, type: 'Double', value: [0.4, 1.4, 3, 3.5, 45, 1500][k] })), { name: 'cycle', alias: 7, type: 'Int32', value: 1 }] } }, 1);
  await send({ cmd: 'data', device: 'b1', values: [[1, 0.5], [7, 2]], ts: Date.now() + 1 }, 2);
  await waitFor('two rows', () => count(dbPath) >= 2, 30_000);
  await send({ cmd: 'data', device: 'b1', values: [[1, 0.6], [7, 3]], ts: Date.now() + 2 }, 3);
  await waitFor('three rows', () => count(dbPath) >= 3, 30_000);
  assert.equal(count(dbPath), 3);
  // A second copy of each message would count a second birth and late (duplicate) seqs.
  const status = (await callControl(controlSocketPath(dbPath), 'status', {}, 10_000))?.result as StatusSnapshot;
  const n = (status.ingest[0] as unknown as { sparkplug: SparkplugStatus }).sparkplug.nodes[0]!;
  assert.deepEqual([n.births, n.late], [1, 0]);
  assert.equal(await stopChild(after), 0);
  const db = openDb(dbPath);
  try {
    assert.equal((db.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n, 0);
  } finally {
    db.close();
  }
});

test('sparkplug.hostId with a QoS 1 subscription, or two host ids: config check exits 78 naming the key', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const qos1 = await runCli(['config', 'check', writeConfig(dir, sparkplugConfig('mqtt://127.0.0.1:1883', dbPath, 1), 'qos1.yaml')]);
  assert.equal(qos1.code, 78);
  assert.match(qos1.stderr, /ingest\.subscriptions\[0\]\.qos: got 1 — 0/);
  const base = sparkplugConfig('mqtt://127.0.0.1:1883', dbPath) as { payload: { sparkplug: object }; model: { dir: string } };
  const model = (hostId: string, group: string) => ({
    dir: base.model.dir, subscriptions: [{ topic: `spBv1.0/${group}/#`, qos: 0 }], payload: { ...base.payload, sparkplug: { ...base.payload.sparkplug, hostId } },
  });
  const { ingest: _i, model: _m, payload: _p, ...rest } = base as unknown as Record<string, unknown>;
  const two = await runCli(['config', 'check', writeConfig(dir, { ...rest, models: [model(HOST, 'a'), model('another-host', 'b')] }, 'two.yaml')]);
  assert.equal(two.code, 78);
  assert.match(two.stderr, /models\[1\]\.payload\.sparkplug\.hostId: got "another-host" — the host id of models\[0\]\.payload\.sparkplug\.hostId/);
});
