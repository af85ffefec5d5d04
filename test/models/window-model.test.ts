// A windowed model ([batch, 3, N] -> RMS per axis -> 2-class softmax) through the agent's real model path:
// the loader's contract check and golden vectors, the verification child, inference on windows cut by
// agent/ingest/window.ts from real payloads, and `model pack` building the manifest of a windowed input.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createWindows, windowOptionsSchema, windowShapeOf } from '../../agent/ingest/window.js';
import { inferenceOptionsSchema } from '../../agent/infer/infer.js';
import { isEdgeError } from '../../agent/errors.js';
import { loadModel } from '../../models/load.js';
import { interpret, parseManifest, readManifest, rowShape, rowSize } from '../../models/manifest.js';
import { packModel } from '../../models/pack.js';
import { verifyInChild } from '../../models/verify.js';
import { onnxModel } from '../helpers/onnx.js';
import { runCli, tempDir } from '../helpers/parts.js';
import { windowGraph, writeWindowModel } from '../helpers/window-model.js';

const N = 32;

test('a windowed model loads through the real loader: contract and golden vectors pass, and its windows give the expected classes', { timeout: 120_000 }, async (t) => {
  const v = await writeWindowModel(t, N);
  const model = await loadModel(v.dir, inferenceOptionsSchema.parse({}));
  t.after(() => model.inference.close());
  const m = model.manifest;
  assert.deepEqual([m.input.shape, m.input.window, rowShape(m), rowSize(m)], [['B', 3, N], { length: N }, [3, N], 3 * N]);
  const label = (row: ArrayLike<number>) => (interpret(m.output, row) as { label: string }).label;
  assert.deepEqual(m.golden.map((g) => label(g.output)), ['low', 'high', 'low']);

  // Two machines: one quiet (amplitude 0.5 g, RMS 0.35), one shaking (2 g, RMS 1.41); 8 samples per message, 100 Hz.
  const shape = windowShapeOf(m);
  assert.ok(shape);
  const windows = createWindows<number>(windowOptionsSchema.parse({ signals: ['ax', 'ay', 'az'], hop: 16 }), shape);
  const rows: { asset: string; data: Float32Array }[] = [];
  let handle = 0;
  for (let k = 0; k < 8; k++) {
    for (const [asset, amp] of [['quiet', 0.5], ['shaking', 2]] as const) {
      const axis = (c: number) => Array.from({ length: 8 }, (_, i) => amp * Math.sin((2 * Math.PI * (k * 8 + i)) / 8 + c));
      const payload = Buffer.from(JSON.stringify({ ts: 1_700_000_000_000 + k * 80, dtMs: 10, ax: axis(0), ay: axis(1), az: axis(2) }));
      const r = windows.take(handle++, `line/${asset}/acc`, payload, 0);
      assert.equal(r.reject, undefined);
      rows.push(...r.rows);
    }
  }
  // 64 samples each: windows at samples 32, 48, 64 → 3 per machine.
  assert.deepEqual(rows.map((r) => r.asset), ['quiet', 'shaking', 'quiet', 'shaking', 'quiet', 'shaking']);
  // How the batch path calls it: rows × rowSize numbers, and the row shape [channels, samples].
  const data = new Float32Array(rows.length * rowSize(m));
  rows.forEach((r, i) => data.set(r.data, i * rowSize(m)));
  const result = await model.inference.run(m.input.name, data, rows.length, rowSize(m), rowShape(m));
  const out = result.outputs[m.output.tensor];
  assert.deepEqual(out?.dims, [rows.length, 2]);
  const labels = rows.map((_, i) => label(out!.data.subarray(i * 2, i * 2 + 2)));
  assert.deepEqual(labels, ['low', 'high', 'low', 'high', 'low', 'high']);

  // The verification child (install, push, pull) runs the same checks and times a full batch of windows.
  const verified = await verifyInChild({ dir: v.dir, keys: [], allowUnsigned: true, highestTrusted: null, clockSlackMs: 0, maxModelBytes: 1 << 20, batchRows: 64 }, 60_000);
  assert.equal(verified.name, 'vibration-window');
});

test('the contract check covers the 3-d shape: a window length the model does not have, a 2-d manifest for a 3-d model', { timeout: 120_000 }, async (t) => {
  const options = inferenceOptionsSchema.parse({});
  const refused = async (edit: (m: Record<string, unknown>) => void) => {
    const v = await writeWindowModel(t, N, edit);
    const err = await loadModel(v.dir, options).then(() => null, (e: unknown) => e);
    assert.ok(isEdgeError(err), String(err));
    return err;
  };
  const shorter = await refused((m) => {
    m.input = { name: 'acc', dtype: 'float32', shape: ['B', 3, 16], window: { length: 16 } };
    (m.golden as { input: number[] }[]).forEach((g) => (g.input = g.input.slice(0, 48)));
  });
  assert.equal(shorter.code, 'EDGE_ERR_MODEL_CONTRACT');
  assert.match(shorter.message, /manifest input: "acc" float32 \[B,3,16\]; the ONNX model's input: "acc" float32 \[B,3,32\]/);
  const flat = await refused((m) => {
    m.input = { name: 'acc', dtype: 'float32', shape: ['B', 3] };
    (m.golden as { input: number[] }[]).forEach((g) => (g.input = g.input.slice(0, 3)));
  });
  assert.equal(flat.code, 'EDGE_ERR_MODEL_CONTRACT');
  assert.match(flat.message, /manifest input: "acc" float32 \[B,3\]; the ONNX model's input: "acc" float32 \[B,3,32\]/);
  const golden = await refused((m) => ((m.golden as { output: number[] }[])[1]!.output = [0.9, 0.1]));
  assert.equal(golden.code, 'EDGE_ERR_MODEL_GOLDEN');
  const manifest = await refused((m) => ((m.golden as { input: number[] }[])[0]!.input.pop()));
  assert.equal(manifest.code, 'EDGE_ERR_MANIFEST');
  assert.match(manifest.message, /golden\[0\]\.input: got \[.*— has 95 values, the model takes 96 \(3 × 32, channels first\)/);
});

test('model pack reads a 3-d input as a window; training rows are a time series cut into windows; the agent loads the folder', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'model.onnx'), onnxModel(windowGraph(N)));
  // 200 samples, one per line: quiet for the first 96, shaking after (a sine of period 8).
  const lines = ['acc_x,acc_y,acc_z'];
  for (let i = 0; i < 200; i++) {
    const amp = i < 96 ? 0.3 : 2.5;
    lines.push([0, 1, 2].map((c) => (amp * Math.sin((2 * Math.PI * i) / 8 + c)).toFixed(5)).join(','));
  }
  writeFileSync(join(dir, 'train.csv'), `${lines.join('\n')}\n`);
  const features = ['x', 'y', 'z'].map((a) => ({ name: `acc_${a}`, unit: 'g', min: -16, max: 16 }));
  const packed = await packModel({ modelPath: join(dir, 'model.onnx'), name: 'vib', version: '0.1.0', outDir: join(dir, 'build'), features, output: { kind: 'classification', labels: ['low', 'high'] }, trainCsv: join(dir, 'train.csv'), maxModelBytes: 1 << 20 });
  const m = readManifest(packed.dir);
  assert.deepEqual(m.input, { name: 'acc', dtype: 'float32', shape: ['B', 3, N], window: { length: N } });
  assert.ok(packed.report.some((r) => r.includes('200 training samples (one per line, in time order) cut into 6 windows')), packed.report.join('\n'));
  assert.equal(m.baseline?.rows, 200);
  assert.deepEqual(m.baseline?.predictions, { low: 0.5, high: 0.5 }, 'windows 0-2 quiet, 3-5 shaking');
  assert.equal(m.golden.length, 4, 'two windows per predicted label');
  assert.ok(m.golden.every((g) => g.input.length === 3 * N));
  const model = await loadModel(packed.dir, inferenceOptionsSchema.parse({}));
  await model.inference.close();

  // One signal, [batch, N]: a window only when asked (--window); features from the CSV header.
  const one = { ...windowGraph(N), inputs: [{ name: 'acc', dims: ['B', N] }] };
  one.nodes = [{ op: 'Unsqueeze', in: ['acc', 'axes1'], out: 'acc3' }, { op: 'Tile', in: ['acc3', 'reps'], out: 'acc_tiled' }, ...one.nodes.map((n) => ({ ...n, in: n.in.map((x) => (x === 'acc' ? 'acc_tiled' : x)) }))];
  one.initializers = [...(one.initializers ?? []), { name: 'axes1', dims: [1], values: [1], type: 'int64' }, { name: 'reps', dims: [3], values: [1, 3, 1], type: 'int64' }];
  writeFileSync(join(dir, 'one.onnx'), onnxModel(one));
  writeFileSync(join(dir, 'one.csv'), `acc\n${lines.slice(1).map((l) => l.split(',')[0]).join('\n')}\n`);
  const r = await runCli(['model', 'pack', join(dir, 'one.onnx'), '--name', 'vib-one', '--version', '0.1.0', '--out', join(dir, 'build'), '--window', '--train', join(dir, 'one.csv'), '--labels', 'low,high']);
  assert.equal(r.code, 0, r.stderr);
  const m1 = readManifest(join(dir, 'build', 'vib-one', '0.1.0'));
  assert.deepEqual([m1.input.shape, m1.input.window, m1.features.map((f) => f.name)], [['B', N], { length: N }, ['acc']]);
  const without = await runCli(['model', 'pack', join(dir, 'one.onnx'), '--name', 'vib-one', '--version', '0.2.0', '--out', join(dir, 'build'), '--train', join(dir, 'one.csv'), '--labels', 'low,high']);
  assert.equal(without.code, 78, 'without --window, [B, 32] is 32 features and the CSV has one column');
  assert.match(without.stderr, /1 features were named; the model's input acc takes 32/);
});

test('the manifest schema: a 3-d input needs input.window, whose length and channels the shape must match', { timeout: 10_000 }, () => {
  const base = {
    schemaVersion: 1, name: 'vib', version: '1.0.0', file: { sha256: 'a'.repeat(64) },
    features: ['x', 'y'].map((name) => ({ name, unit: 'g', min: -16, max: 16 })),
    outputs: [{ name: 'p', dtype: 'float32', shape: ['N', 2] }], output: { kind: 'classification', tensor: 'p', labels: ['low', 'high'] },
    latencyBudgetMs: 10, golden: [{ input: new Array(2 * 4).fill(0), output: [1, 0] }],
  };
  const problems = (input: unknown) => {
    try {
      parseManifest(JSON.stringify({ ...base, input: { name: 'a', dtype: 'float32', ...(input as object) } }), 'm.json');
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  assert.equal(problems({ shape: ['N', 2, 4], window: { length: 4 } }), '');
  assert.match(problems({ shape: ['N', 2, 4] }), /input\.shape: .*a 3-d input \[batch, channels, samples\] is a window: give input\.window \{ length \}/);
  assert.match(problems({ shape: ['N', 2, 5], window: { length: 4 } }), /input\.shape\[2\]: .*must equal input\.window\.length \(4\)/);
  assert.match(problems({ shape: ['N', 3, 4], window: { length: 4 } }), /input\.shape\[1\]: .*must equal the number of features, one channel per signal \(2\)/);
  assert.match(problems({ shape: ['N', 8], window: { length: 8 } }), /a windowed input of 2 features is \[batch, 2, 8\]; \[batch, samples\] is for one feature/);
});
