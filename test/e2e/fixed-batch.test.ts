// Models as exporters write them, served end to end: a PyTorch-style export with its batch fixed at 1,
// generated tensor names and an int64 label output beside the probabilities. Packed with `model pack`,
// served by the agent in chunks of its batch, every reading's stored outputs match onnxruntime's own.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { onnxModel, runModel, type GraphSpec } from '../helpers/onnx.js';
import { agentConfig, countRows, mqttClient, openDb, runCli, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

// torch.onnx.export without dynamic_axes: input "onnx::Gemm_0" [1, 3]; outputs "probs" [1, 2] and "label" int64 [1].
const fixedBatch: GraphSpec = {
  inputs: [{ name: 'onnx::Gemm_0', dims: [1, 3] }],
  outputs: [{ name: 'probs', dims: [1, 2] }, { name: 'label', dims: [1], type: 'int64' }],
  initializers: [
    { name: 'W', dims: [3, 2], values: [0.05, -0.05, -0.02, 0.02, -1, 1] },
    { name: 'B', dims: [2], values: [0.1, -0.1] },
  ],
  nodes: [
    { op: 'Gemm', in: ['onnx::Gemm_0', 'W', 'B'], out: 'z' },
    { op: 'Softmax', in: ['z'], out: 'probs', attrs: { axis: 1 } },
    { op: 'ArgMax', in: ['probs'], out: 'label', attrs: { axis: 1, keepdims: 0 } },
  ],
};

test('a fixed-batch model with an int64 output is packed, served in chunks, and matches its reference outputs', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const bytes = onnxModel(fixedBatch);
  writeFileSync(join(dir, 'model.onnx'), bytes);
  const packed = await runCli(['model', 'pack', join(dir, 'model.onnx'), '--name', 'press-guard', '--version', '2.0.0', '--out', dir,
    '--feature', 'force_kn:kN:0:500', '--feature', 'stroke_mm:mm:0:200', '--feature', 'temp_c:degC:-20:120', '--labels', 'ok,hot', '--tensor', 'probs']);
  assert.equal(packed.code, 0, packed.stderr);
  assert.match(packed.stdout, /batch is fixed at 1: the agent feeds it in chunks of 1/);
  const modelDir = join(dir, 'press-guard', '2.0.0');

  const broker = await startMosquitto(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({
    url: broker.url, dbPath, model: { dir: modelDir }, mapping: { asset: { topicLevel: 1 } },
    ingest: { subscriptions: [{ topic: 'plant/+/press', qos: 1 }] },
  })));
  await agent.waitForLog('subscribed');
  const N = 300;
  const inputs = Array.from({ length: N }, (_, i) => [(i * 37) % 500, (i * 11) % 200, -20 + ((i * 7) % 140)]);
  const gateway = await mqttClient(t, broker.url);
  // Published without waiting for each ack: readings queue up, so batches of many rows meet a batch-1 model.
  await Promise.all(inputs.map((x, i) => gateway.publishAsync(`plant/p${i}/press`, JSON.stringify({ force_kn: x[0], stroke_mm: x[1], temp_c: x[2] }), { qos: 1 })));
  await waitFor(`${N} predictions`, () => countRows(dbPath).predictions === N, 60_000);
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);

  const reference = (await runModel(bytes, 'onnx::Gemm_0', inputs, 1)).probs as number[][];
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const rows = db.prepare('SELECT asset, outputs, label FROM predictions').all() as { asset: string; outputs: string; label: string }[];
  assert.equal(rows.length, N);
  for (const r of rows) {
    const i = Number(r.asset.slice(1));
    const got = JSON.parse(r.outputs) as number[];
    const want = reference[i] as number[];
    assert.ok(got.every((v, k) => Math.abs(v - (want[k] as number)) < 1e-6), `${r.asset}: ${got} vs ${want}`);
    assert.equal(r.label, (want[1] as number) > (want[0] as number) ? 'hot' : 'ok');
  }
  const batches = agent.logs.find((l) => l.msg === 'agent stopped')?.batches as number;
  t.diagnostic(`${N} readings in ${batches} batches (each fed to the model in chunks of 1)`);
  assert.ok(batches < N, `batches held several rows (${batches} batches for ${N} readings), so chunking was exercised`);
});
