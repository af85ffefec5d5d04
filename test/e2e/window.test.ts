// Sliding windows end to end: the agent as a child process on a real mosquitto serving a windowed model
// ([batch, 3, 32]: three vibration axes; "high" when the mean RMS is above 1 g), chunks of 8 samples per axis
// published by mqtt.js at QoS 1. A window every 16 samples once 32 are there, labelled as the amplitude says;
// a chunk sent again is a dead letter; kill -9 between windows: after the restart the windows go on at their
// cadence, none twice and none missing, and the inbox holds exactly the messages still in a window.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AXES, writeWindowModel } from '../helpers/window-model.js';
import { agentConfig, mqttClient, query, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const LENGTH = 32;
const HOP = 16;
const CHUNK = 8;
const T0 = 1_764_180_000_000;

/** Chunk k of an asset's signal: CHUNK samples per axis of a sine of amplitude `amp`, 1 ms apart. */
function chunk(k: number, amp: number): string {
  const axis = (c: number) => Array.from({ length: CHUNK }, (_, i) => Number((amp * Math.sin((2 * Math.PI * (k * CHUNK + i)) / 8 + c)).toFixed(6)));
  return JSON.stringify({ ts: T0 + k * CHUNK, dtMs: 1, x: axis(0), y: axis(1), z: axis(2) });
}

async function setup(t: Parameters<typeof tempDir>[0], url: string) {
  const model = await writeWindowModel(t, LENGTH);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url, dbPath,
    ingest: { subscriptions: [{ topic: 'line/+/acc', qos: 1 }] },
    model: { dir: model.dir },
    mapping: undefined,
    payload: { style: 'window', window: { signals: [...AXES], hop: HOP, asset: { topicLevel: 1 } } },
  }));
  return { dbPath, path };
}

/** Windows made from `chunks` chunks of one asset: the first at LENGTH samples, then one every HOP. */
const windowsAfter = (chunks: number) => Math.max(0, Math.floor((chunks * CHUNK - LENGTH) / HOP) + 1);

test('windows every hop samples, labelled by amplitude; a chunk sent again is a dead letter', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const { dbPath, path } = await setup(t, broker.url);
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  const N = 12;
  for (let k = 0; k < N; k++) {
    await gateway.publishAsync('line/press-1/acc', chunk(k, 3), { qos: 1 });
    await gateway.publishAsync('line/press-2/acc', chunk(k, 0.2), { qos: 1 });
  }
  await gateway.publishAsync('line/press-1/acc', chunk(5, 3), { qos: 1 });
  const expected = windowsAfter(N);
  assert.equal(expected, 5);
  await waitFor('the windows and the dead letter', () =>
    query<{ n: number }>(dbPath, 'SELECT (SELECT count(*) FROM predictions) + (SELECT count(*) FROM dead_letters) AS n')[0]?.n === 2 * expected + 1, 30_000);
  const rows = query<{ asset: string; label: string; features: string }>(dbPath, 'SELECT asset, label, features FROM predictions ORDER BY id');
  assert.deepEqual(rows.filter((r) => r.asset === 'press-1').map((r) => r.label), Array(expected).fill('high'));
  assert.deepEqual(rows.filter((r) => r.asset === 'press-2').map((r) => r.label), Array(expected).fill('low'));
  // A stored row holds its window: three axes of LENGTH samples, channels first.
  assert.equal((JSON.parse(rows[0]?.features ?? '[]') as number[]).length, AXES.length * LENGTH);
  assert.deepEqual(query(dbPath, 'SELECT reason_code, topic FROM dead_letters'), [{ reason_code: 'REJECT_WINDOW_SAMPLES', topic: 'line/press-1/acc' }]);
  // Held: per asset the messages with a sample still in the newest LENGTH samples.
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM inbox')[0]?.n, 2 * (LENGTH / CHUNK));
  assert.equal(await stopChild(agent), 0);
});

test('kill -9 between windows: after the restart the windows go on at their cadence, none twice, none missing', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const { dbPath, path } = await setup(t, broker.url);
  const count = () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n ?? 0;
  const first = spawnAgent(t, path);
  await first.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  // 7 chunks: windows at 32 and 48 samples; the 7th chunk (samples 48..55) is on its way to the next.
  // The amplitude grows a little per chunk, so that each window's samples tell which window it is.
  const amp = (k: number) => 3 + 0.05 * k;
  for (let k = 0; k < 7; k++) await gateway.publishAsync('line/press-1/acc', chunk(k, amp(k)), { qos: 1 });
  await waitFor('two windows', () => count() === windowsAfter(7), 30_000);
  await waitFor('the seventh chunk held', () => query<{ n: number }>(dbPath, 'SELECT max(id) AS n FROM inbox')[0]?.n === 7, 30_000);
  first.proc.kill('SIGKILL');
  await first.exited;

  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  for (let k = 7; k < 12; k++) await gateway.publishAsync('line/press-1/acc', chunk(k, amp(k)), { qos: 1 });
  await waitFor('every window', () => count() >= windowsAfter(12), 30_000);
  // Each window's newest sample: at LENGTH, LENGTH + HOP, ... samples; each once.
  const ats = query<{ features: string }>(dbPath, 'SELECT features FROM predictions ORDER BY id').map((r) => (JSON.parse(r.features) as number[])[LENGTH - 1]);
  const lastSample = (w: number) => LENGTH - 1 + w * HOP;
  const expectedLast = Array.from({ length: windowsAfter(12) }, (_, w) => Number((amp(Math.floor(lastSample(w) / CHUNK)) * Math.sin((2 * Math.PI * lastSample(w)) / 8)).toFixed(6)));
  assert.equal(ats.length, expectedLast.length);
  ats.forEach((v, i) => assert.ok(Math.abs((v as number) - (expectedLast[i] as number)) < 1e-5, `window ${i}: last x sample ${v}, expected ${expectedLast[i]}`));
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM dead_letters')[0]?.n, 0);
  assert.equal(await stopChild(second), 0);
});
