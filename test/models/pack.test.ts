// `edge-agent model pack` on real ONNX files: the manifest comes from the model itself (input, outputs,
// golden vectors run through onnxruntime, baseline and predicted shares from training rows), and the
// packed folder passes the agent's own checks (`config check` runs its golden vectors); a model that
// cannot be served as exported is refused with how to export it instead.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import { readManifest } from '../../models/manifest.js';
import { onnxModel, type GraphSpec } from '../helpers/onnx.js';
import { agentConfig, runCli, tempDir, writeConfig } from '../helpers/parts.js';

/** x [batch, 3] → Softmax(x · W + B) [batch, 2]: "hot" when the first feature dominates. */
function classifier(batch: number | string): GraphSpec {
  return {
    inputs: [{ name: 'onnx::Gemm_0', dims: [batch, 3] }],
    outputs: [{ name: '7', dims: [batch, 2] }],
    initializers: [
      { name: 'W', dims: [3, 2], values: [0.5, -0.5, -0.2, 0.2, -0.1, 0.1] },
      { name: 'B', dims: [2], values: [0, 0] },
    ],
    nodes: [
      { op: 'Gemm', in: ['onnx::Gemm_0', 'W', 'B'], out: 'z' },
      { op: 'Softmax', in: ['z'], out: '7', attrs: { axis: 1 } },
    ],
  };
}

function trainingCsv(path: string, rows: number): void {
  const lines = ['temp_c,load_pct,vib_g'];
  for (let i = 0; i < rows; i++) lines.push(`${20 + ((i * 7) % 60)},${(i * 13) % 100},${((i * 3) % 10) / 10}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
}

test('pack builds a manifest from the model and training rows; the agent accepts the folder', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'model.onnx'), onnxModel(classifier('batch')));
  trainingCsv(join(dir, 'train.csv'), 200);
  writeFileSync(join(dir, 'features.yaml'), [
    '- { name: temp_c, unit: degC, min: -20, max: 150 }',
    '- { name: load_pct, unit: "%", min: 0, max: 100 }',
    '- { name: vib_g, unit: g, min: 0, max: 16 }',
  ].join('\n'));
  const r = await runCli(['model', 'pack', join(dir, 'model.onnx'), '--name', 'oven-guard', '--version', '0.1.0', '--out', join(dir, 'build'),
    '--features', join(dir, 'features.yaml'), '--labels', 'hot,ok', '--train', join(dir, 'train.csv')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /packed oven-guard 0\.1\.0 into .*build\/oven-guard\/0\.1\.0/);
  assert.match(r.stdout, /input onnx::Gemm_0 \[batch, 3\], reads 7 as classification/);
  const m = readManifest(join(dir, 'build', 'oven-guard', '0.1.0'));
  assert.deepEqual(m.input, { name: 'onnx::Gemm_0', dtype: 'float32', shape: ['batch', 3] });
  assert.deepEqual(m.outputs, [{ name: '7', dtype: 'float32', shape: ['batch', 2] }]);
  assert.equal(m.baseline?.rows, 200);
  assert.deepEqual(Object.keys(m.baseline?.features ?? {}), ['temp_c', 'load_pct', 'vib_g']);
  const shares = m.baseline?.predictions ?? {};
  assert.ok(Math.abs((shares.hot ?? 0) + (shares.ok ?? 0) - 1) < 1e-5, `predicted shares sum to 1: ${JSON.stringify(shares)}`);
  assert.ok(m.golden.length >= 2 && m.golden.length <= 4, `two golden rows per predicted label (${m.golden.length})`);
  // Golden outputs are what the model computes: z = x·W, softmax.
  for (const g of m.golden) {
    const z0 = 0.5 * g.input[0]! - 0.2 * g.input[1]! - 0.1 * g.input[2]!;
    const z1 = -z0;
    const p0 = 1 / (1 + Math.exp(z1 - z0));
    assert.ok(Math.abs(g.output[0]! - p0) < 1e-5, `golden ${g.input}: ${g.output[0]} vs ${p0}`);
  }

  const config = writeConfig(dir, agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(dir, 'a.db'), model: { dir: join(dir, 'build', 'oven-guard', '0.1.0') }, mapping: {} }));
  const check = await runCli(['config', 'check', config]);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, new RegExp(`oven-guard@0\\.1\\.0 \\(3 features, ${m.golden.length} golden vectors pass\\)`));

  const again = await runCli(['model', 'pack', join(dir, 'model.onnx'), '--name', 'oven-guard', '--version', '0.1.0', '--out', join(dir, 'build'), '--features', join(dir, 'features.yaml'), '--labels', 'hot,ok']);
  assert.equal(again.code, 64);
  assert.match(again.stderr, /exists; a version folder is never overwritten/);
});

test('pack without a features list takes names and widened ranges from the training rows', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'model.onnx'), onnxModel(classifier('N')));
  trainingCsv(join(dir, 'train.csv'), 50);
  const r = await runCli(['model', 'pack', join(dir, 'model.onnx'), '--name', 'm', '--version', '1.0.0', '--out', dir, '--score', '0.5:hot:ok', '--tensor', '7', '--train', join(dir, 'train.csv')]);
  assert.equal(r.code, 78, 'a score reads one value per row; this output has two');
  assert.match(r.stderr, /output "7" has 2 values per row; a score output reads 1/);
  const ok = await runCli(['model', 'pack', join(dir, 'model.onnx'), '--name', 'm', '--version', '1.0.0', '--out', dir, '--labels', 'hot,ok', '--train', join(dir, 'train.csv')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /feature ranges taken from the training data/);
  const m = readManifest(join(dir, 'm', '1.0.0'));
  assert.deepEqual(m.features.map((f) => f.name), ['temp_c', 'load_pct', 'vib_g']);
  const temp = m.features[0]!;
  assert.ok(temp.min < 20 && temp.max > 79, `widened: [${temp.min}, ${temp.max}]`);
});

/** What skl2onnx writes for a classifier by default: the probabilities as a sequence of maps (ZipMap, ai.onnx.ml). */
function zipMapModel(): Uint8Array {
  const { onnx } = onnxProto;
  const F = onnx.TensorProto.DataType.FLOAT;
  const graph = onnx.GraphProto.create({
    name: 'skl2onnx_like',
    node: [onnx.NodeProto.create({
      opType: 'ZipMap', domain: 'ai.onnx.ml', input: ['probabilities'], output: ['output_probability'],
      attribute: [{ name: 'classlabels_strings', type: onnx.AttributeProto.AttributeType.STRINGS, strings: [new TextEncoder().encode('a'), new TextEncoder().encode('b')] }],
    })],
    input: [onnx.ValueInfoProto.create({ name: 'probabilities', type: { tensorType: { elemType: F, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } })],
    output: [onnx.ValueInfoProto.create({
      name: 'output_probability',
      type: { sequenceType: { elemType: { mapType: { keyType: onnx.TensorProto.DataType.STRING, valueType: { tensorType: { elemType: F } } } } } },
    })],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }, { domain: 'ai.onnx.ml', version: 1 }], graph });
  return onnx.ModelProto.encode(model).finish();
}

test('what cannot be served is refused with how to export it instead', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const twoInputs: GraphSpec = {
    inputs: [{ name: 'a', dims: ['N', 2] }, { name: 'b', dims: ['N', 1] }],
    outputs: [{ name: 'y', dims: ['N', 3] }],
    nodes: [{ op: 'Concat', in: ['a', 'b'], out: 'y', attrs: { axis: 1 } }],
  };
  const intInput: GraphSpec = {
    inputs: [{ name: 'x', dims: ['N', 2], type: 'int64' }],
    outputs: [{ name: 'y', dims: ['N', 2] }],
    nodes: [{ op: 'Cast', in: ['x'], out: 'y', attrs: { to: 1 } }],
  };
  const doubleInput: GraphSpec = { ...intInput, inputs: [{ name: 'x', dims: ['N', 2], type: 'float64' }] };
  const cases: [string, Uint8Array, RegExp][] = [
    ['two-inputs', onnxModel(twoInputs), /the model has 2 inputs .*export with the features concatenated into one input/],
    ['int-input', onnxModel(intInput), /input "x" int64 \[N,2\] is int64; export with float32 inputs/],
    ['double-input', onnxModel(doubleInput), /input "x" float64 \[N,2\] is float64; export with float32 inputs .*FloatTensorType, not DoubleTensorType/],
    ['zipmap', zipMapModel(), /output "output_probability" is not a tensor .*ZipMap.*'zipmap': False/],
  ];
  for (const [name, bytes, message] of cases) {
    writeFileSync(join(dir, `${name}.onnx`), bytes);
    const r = await runCli(['model', 'pack', join(dir, `${name}.onnx`), '--name', name, '--version', '1.0.0', '--out', dir, '--feature', 'a:1:0:1', '--feature', 'b:1:0:1', '--labels', 'x,y']);
    assert.equal(r.code, 78, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /EDGE_ERR_MODEL_CONTRACT: .*cannot be served as it is/);
    assert.match(r.stderr, message, name);
  }
  // An operator onnxruntime does not have: its own message names it.
  const unknownOp: GraphSpec = { inputs: [{ name: 'x', dims: ['N', 2] }], outputs: [{ name: 'y', dims: ['N', 2] }], nodes: [{ op: 'FrobnicateRows', in: ['x'], out: 'y' }] };
  writeFileSync(join(dir, 'unknown-op.onnx'), onnxModel(unknownOp));
  const unknown = await runCli(['model', 'pack', join(dir, 'unknown-op.onnx'), '--name', 'u', '--version', '1.0.0', '--out', dir, '--feature', 'a:1:0:1', '--feature', 'b:1:0:1', '--labels', 'x,y']);
  assert.equal(unknown.code, 78);
  assert.match(unknown.stderr, /EDGE_ERR_MODEL_LOAD: .*FrobnicateRows/);
  writeFileSync(join(dir, 'garbage.onnx'), 'not a model');
  const garbage = await runCli(['model', 'pack', join(dir, 'garbage.onnx'), '--name', 'g', '--version', '1.0.0', '--feature', 'a:1:0:1', '--labels', 'x,y']);
  assert.equal(garbage.code, 78);
  assert.match(garbage.stderr, /EDGE_ERR_MODEL_LOAD: onnxruntime .*cannot load/);
  const usage = await runCli(['model', 'pack', join(dir, 'garbage.onnx'), '--name', 'g', '--version', '1.0.0']);
  assert.equal(usage.code, 64);
  assert.match(usage.stderr, /exactly one of --labels, --score, --regression/);
});
