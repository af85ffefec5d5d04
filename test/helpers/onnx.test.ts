// The test model builder itself: what later tests rely on (fixed batch dimensions, several outputs,
// int64 outputs) gives a folder whose model onnxruntime loads, with golden outputs from onnxruntime.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readManifest } from '../../models/manifest.js';
import { sha256File } from '../../models/load.js';
import { runModel, writeModelVersion } from './onnx.js';

test('a symbolic-batch model: its folder passes the manifest schema, sha256 and golden outputs match onnxruntime', { timeout: 60_000 }, async (t) => {
  const v = await writeModelVersion(t, {
    graph: {
      inputs: [{ name: 'x', dims: ['N', 2] }],
      outputs: [{ name: 'y', dims: ['N', 2] }],
      initializers: [{ name: 'k', dims: [2], values: [2, -1] }],
      nodes: [{ op: 'Mul', in: ['x', 'k'], out: 'y' }],
    },
    features: [{ name: 'a', min: -5, max: 5 }, { name: 'b', min: -5, max: 5 }],
    output: { kind: 'classification', tensor: 'y', labels: ['no', 'yes'] },
    golden: [[1, 2], [3, -4]],
  });
  const m = readManifest(v.dir);
  assert.equal(m.file.sha256, sha256File(join(v.dir, 'model.onnx')));
  assert.deepEqual(m.golden.map((g) => g.output), [[2, -2], [6, 4]]);
});

test('a fixed-batch model with a float and an int64 output: golden run in batches of the fixed size', { timeout: 60_000 }, async (t) => {
  const v = await writeModelVersion(t, {
    graph: {
      inputs: [{ name: 'x', dims: [2, 3] }],
      outputs: [{ name: 'scores', dims: [2, 3] }, { name: 'best', dims: [2, 1], type: 'int64' }],
      nodes: [
        { op: 'Softmax', in: ['x'], out: 'scores', attrs: { axis: 1 } },
        { op: 'ArgMax', in: ['x'], out: 'best', attrs: { axis: 1, keepdims: 1 } },
      ],
    },
    features: [{ name: 'a', min: -9, max: 9 }, { name: 'b', min: -9, max: 9 }, { name: 'c', min: -9, max: 9 }],
    output: { kind: 'classification', tensor: 'scores', labels: ['a', 'b', 'c'] },
    golden: [[0, 0, 5], [5, 0, 0], [0, 5, 0], [1, 2, 3]],
  });
  const manifest = JSON.parse(readFileSync(join(v.dir, 'manifest.json'), 'utf8')) as { input: { shape: unknown[] }; golden: unknown[] };
  assert.deepEqual(manifest.input.shape, [2, 3]);
  assert.equal(manifest.golden.length, 4);
  const out = await runModel(readFileSync(v.modelPath), 'x', [[0, 0, 5], [5, 0, 0]]);
  assert.deepEqual(out.best, [[2], [0]]);
});
