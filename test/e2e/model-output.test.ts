// What a model gives back, end to end on a real broker with the agent as a child process: a NaN or
// infinite output never becomes a published verdict (REJECT_NONFINITE_OUTPUT dead letter), and a batch
// the model fails on becomes REJECT_INFERENCE_FAILED dead letters while the worker keeps serving.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FLOAT32_MAX } from '../../models/manifest.js';
import { writeModelVersion, type VersionSpec } from '../helpers/onnx.js';
import { agentConfig, countRows, mqttClient, openDb, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

/** Starts mosquitto, writes the model, runs the agent on plant/+/probe, and counts results on a subscriber. */
async function agentWithModel(t: TestContext, spec: VersionSpec) {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const model = await writeModelVersion(t, spec, dir);
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({ url: broker.url, dbPath, model: { dir: model.dir }, mapping: { asset: { topicLevel: 1 } }, ingest: { subscriptions: [{ topic: 'plant/+/probe', qos: 1 }] } });
  const agent = spawnAgent(t, writeConfig(dir, config));
  await agent.waitForLog('subscribed');
  const results: { asset: string; body: Record<string, unknown> }[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic, payload) => results.push({ asset: topic.split('/')[1] ?? '', body: JSON.parse(payload.toString()) as Record<string, unknown> }));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const gateway = await mqttClient(t, broker.url);
  const db = () => {
    const d = openDb(dbPath);
    teardown(t, () => d.close());
    return d;
  };
  return { agent, results, gateway, dbPath, db };
}

// probabilities = Log(x): log of a negative number is NaN, log(0) is -Infinity. Before the fix,
// [NaN, 0] was published as "healthy" (interpret() kept the first label when a comparison with NaN failed).
const logModel: VersionSpec = {
  name: 'log-probe',
  graph: {
    inputs: [{ name: 'x', dims: ['N', 2] }],
    outputs: [{ name: 'probabilities', dims: ['N', 2] }],
    nodes: [{ op: 'Log', in: ['x'], out: 'probabilities' }],
  },
  features: [{ name: 'a', min: -10, max: 10 }, { name: 'b', min: -FLOAT32_MAX, max: FLOAT32_MAX }],
  output: { kind: 'classification', tensor: 'probabilities', labels: ['healthy', 'fault'] },
  golden: [[2, 1], [1, 3]],
};

test('NaN and infinite outputs become REJECT_NONFINITE_OUTPUT dead letters, never published; good readings between them are', { timeout: 120_000 }, async (t) => {
  const { agent, results, gateway, dbPath, db } = await agentWithModel(t, logModel);
  const readings: { asset: string; a: number; b: number; nonFinite?: RegExp }[] = [
    { asset: 'good-1', a: 2, b: 1 },
    { asset: 'nan', a: -1, b: 1, nonFinite: /\[NaN, 0\]/ },
    { asset: 'good-2', a: 3, b: 1 },
    { asset: 'minus-inf', a: 0, b: 1, nonFinite: /\[-Infinity, 0\]/ },
    { asset: 'good-3', a: 2, b: 5 },
    { asset: 'nan-nan', a: -1, b: -1, nonFinite: /\[NaN, NaN\]/ },
    { asset: 'good-4', a: 4, b: 1e30 },
  ];
  for (const r of readings) await gateway.publishAsync(`plant/${r.asset}/probe`, JSON.stringify({ a: r.a, b: r.b }), { qos: 1 });
  // b beyond float32 (fits a double): refused at the door, it would reach the model as +Infinity.
  await gateway.publishAsync('plant/overflow/probe', JSON.stringify({ a: 1, b: 3.5e38 }), { qos: 1 });
  const good = readings.filter((r) => !r.nonFinite);
  await waitFor('every reading stored', () => {
    const c = countRows(dbPath);
    return c.predictions + c.deadLetters >= readings.length + 1;
  });
  await waitFor('results of the good readings', () => results.length >= good.length);
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);

  // Exactly the good readings were published, each with a finite verdict.
  assert.deepEqual(results.map((r) => r.asset).sort(), good.map((r) => r.asset).sort());
  for (const r of results) assert.ok(Object.values(r.body.probabilities as Record<string, number>).every(Number.isFinite), JSON.stringify(r.body));
  assert.deepEqual(countRows(dbPath), { predictions: good.length, deadLetters: readings.length - good.length + 1, inbox: 0 });
  const d = db();
  const dead = d.prepare('SELECT topic, reason_code, reason, payload FROM dead_letters').all() as { topic: string; reason_code: string; reason: string; payload: Buffer }[];
  for (const r of readings.filter((x) => x.nonFinite)) {
    const row = dead.find((x) => x.topic === `plant/${r.asset}/probe`);
    assert.ok(row, `dead letter for ${r.asset}`);
    assert.equal(row.reason_code, 'REJECT_NONFINITE_OUTPUT');
    assert.match(row.reason, r.nonFinite as RegExp);
    assert.deepEqual(JSON.parse(row.payload.toString()), { a: r.a, b: r.b }, 'raw payload kept');
  }
  const overflow = dead.find((x) => x.topic === 'plant/overflow/probe');
  assert.ok(overflow, 'dead letter for the float32 overflow');
  assert.equal(overflow.reason_code, 'REJECT_NOT_FINITE');
  assert.match(overflow.reason, /3\.5e\+38, beyond float32/);
  const stored = d.prepare('SELECT asset, outputs FROM predictions').all() as { asset: string; outputs: string }[];
  assert.deepEqual(stored.map((r) => r.asset).sort(), good.map((r) => r.asset).sort());
  assert.ok(agent.logs.some((l) => l.msg === 'message rejected' && l.reason === 'REJECT_NONFINITE_OUTPUT'), 'the rejection is logged');
});

// value = table[int(x[:, 0])] with a 4-entry table: an index of 4 or more fails inside onnxruntime
// ("indices element out of data bounds") for the whole batch; the golden vectors (0 and 3) pass.
const gatherModel: VersionSpec = {
  name: 'gather-probe',
  graph: {
    inputs: [{ name: 'x', dims: ['N', 1] }],
    outputs: [{ name: 'value', dims: ['N', 1] }],
    initializers: [
      { name: 'col', dims: [], values: [0], type: 'int64' },
      { name: 'table', dims: [4], values: [10, 20, 30, 40] },
      { name: 'axes', dims: [1], values: [1], type: 'int64' },
    ],
    nodes: [
      { op: 'Gather', in: ['x', 'col'], out: 'first', attrs: { axis: 1 } },
      { op: 'Cast', in: ['first'], out: 'index', attrs: { to: 7 } },
      { op: 'Gather', in: ['table', 'index'], out: 'looked_up', attrs: { axis: 0 } },
      { op: 'Unsqueeze', in: ['looked_up', 'axes'], out: 'value' },
    ],
  },
  features: [{ name: 'i', min: 0, max: 10 }],
  output: { kind: 'regression', tensor: 'value', unit: 'mm' },
  golden: [[0], [3]],
};

test('a batch the model fails on becomes REJECT_INFERENCE_FAILED dead letters; the worker lives on and serves later readings', { timeout: 120_000 }, async (t) => {
  const { agent, results, gateway, dbPath, db } = await agentWithModel(t, gatherModel);
  const send = (asset: string, i: number) => gateway.publishAsync(`plant/${asset}/probe`, JSON.stringify({ i }), { qos: 1 });
  const rows = () => {
    const c = countRows(dbPath);
    return c.predictions + c.deadLetters;
  };
  // One reading at a time (each waits for the previous one's row), so the failing reading is a batch of its own.
  const sequence: [string, number][] = [['before', 1], ['broken', 7], ['after-1', 2], ['broken-2', 9], ['after-2', 3]];
  for (const [n, [asset, i]] of sequence.entries()) {
    await send(asset, i);
    await waitFor(`row ${n + 1} (${asset})`, () => rows() >= n + 1);
  }
  await waitFor('3 results', () => results.length >= 3);
  assert.equal(agent.proc.exitCode, null, 'the agent is still running');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);

  assert.deepEqual(results.map((r) => [r.asset, r.body.value]), [['before', 20], ['after-1', 30], ['after-2', 40]]);
  assert.deepEqual(countRows(dbPath), { predictions: 3, deadLetters: 2, inbox: 0 });
  const dead = db().prepare('SELECT topic, reason_code, reason, payload FROM dead_letters ORDER BY id').all() as { topic: string; reason_code: string; reason: string; payload: Buffer }[];
  assert.deepEqual(dead.map((d) => [d.topic, d.reason_code, d.payload.toString()]), [
    ['plant/broken/probe', 'REJECT_INFERENCE_FAILED', '{"i":7}'],
    ['plant/broken-2/probe', 'REJECT_INFERENCE_FAILED', '{"i":9}'],
  ]);
  assert.match(dead[0]?.reason ?? '', /model run failed: .*out of/i);
  assert.equal(agent.logs.filter((l) => l.msg === 'inference failed').length, 2);
});
