// Demo model build: takes the synthetic bearing generator (bearing.ts) and a fixed seed, trains a small MLP
// (6 → 16 ReLU → 3 softmax) in plain TypeScript, and gives models/demo/bearing-health/1.0.0/{model.onnx,manifest.json}
// (byte-identical on every run), then checks the written model with onnxruntime-node against the golden vectors.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { featureBaseline, meanOf, predictedShares, sig, stdOf } from '../baseline.js';
import { manifestSchema } from '../manifest.js';
import { encodeModel, graphProto, io, node, tensor } from './onnx.js';
import { FEATURES, LABELS, SPEED_RANGE_RPM, gaussian, labelFor, mulberry32, sampleReading } from './bearing.js';

const SEED = 20240611;
const ROWS = 6000;
const TRAIN_SHARE = 0.8;
const HIDDEN = 16;
const EPOCHS = 40;
const BATCH = 32;
const LR = 0.005;
const TOLERANCE = 1e-4;
const CREATED_AT = '2025-01-01T00:00:00Z';
const NF = FEATURES.length;
const NC = LABELS.length;

// dist/models/demo/build.js → repo root is three folders up; the output goes to the source tree.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
if (!existsSync(join(ROOT, 'models', 'manifest.ts'))) throw new Error(`repo root not found from ${import.meta.url}`);
const OUT = join(ROOT, 'models', 'demo', 'bearing-health', '1.0.0');

type Row = { x: number[]; y: 0 | 1 | 2 };
type Net = { w1: number[][]; b1: number[]; w2: number[][]; b2: number[] };
const at = (a: readonly number[], i: number): number => a[i] ?? Number.NaN;
const zeros = (n: number): number[] => new Array<number>(n).fill(0);
const argmax = (p: readonly number[]): number => p.reduce((b, v, i) => (v > at(p, b) ? i : b), 0);

// ---- data: health uniform in [0, 1], labelled by threshold; shuffled, split train / validation
const rand = mulberry32(SEED);
const rows: Row[] = [];
for (let i = 0; i < ROWS; i++) {
  const health = rand();
  const r = sampleReading(health, rand);
  rows.push({ x: FEATURES.map((f) => r[f.name]), y: labelFor(health) });
}
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [rows[i], rows[j]] = [rows[j] as Row, rows[i] as Row];
}
const nTrain = Math.round(ROWS * TRAIN_SHARE);
const train = rows.slice(0, nTrain);
const valid = rows.slice(nTrain);

// ---- standardisation by training mean / std, stored (and applied) as float32
const column = (data: Row[], j: number): number[] => data.map((r) => at(r.x, j));
const mean = FEATURES.map((_, j) => Math.fround(meanOf(column(train, j))));
const std = FEATURES.map((_, j) => Math.fround(stdOf(column(train, j)) || 1));
const standardise = (x: readonly number[]): number[] => x.map((v, j) => (v - at(mean, j)) / at(std, j));

// ---- MLP training: Adam on mini-batch cross-entropy, float64 math
function logits(net: Net, z: number[]): { h: number[]; o: number[] } {
  const h = net.w1.map((w, k) => Math.max(0, w.reduce((a, wi, j) => a + wi * at(z, j), at(net.b1, k))));
  const o = net.w2.map((w, c) => w.reduce((a, wi, k) => a + wi * at(h, k), at(net.b2, c)));
  return { h, o };
}
function softmax(o: number[]): number[] {
  const m = Math.max(...o);
  const e = o.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function trainNet(data: Row[], r: () => number): Net {
  const net: Net = {
    w1: Array.from({ length: HIDDEN }, () => Array.from({ length: NF }, () => gaussian(r, 0, Math.sqrt(2 / NF)))),
    b1: zeros(HIDDEN),
    w2: Array.from({ length: NC }, () => Array.from({ length: HIDDEN }, () => gaussian(r, 0, Math.sqrt(1 / HIDDEN)))),
    b2: zeros(NC),
  };
  const params: number[][] = [...net.w1, net.b1, ...net.w2, net.b2];
  const m1 = params.map((p) => zeros(p.length));
  const m2 = params.map((p) => zeros(p.length));
  const zs = data.map((d) => standardise(d.x));
  const order = data.map((_, i) => i);
  let step = 0;
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    for (let start = 0; start < order.length; start += BATCH) {
      const batch = order.slice(start, start + BATCH);
      const gw1 = net.w1.map((w) => zeros(w.length));
      const gb1 = zeros(HIDDEN);
      const gw2 = net.w2.map((w) => zeros(w.length));
      const gb2 = zeros(NC);
      for (const idx of batch) {
        const z = zs[idx] ?? [];
        const { h, o } = logits(net, z);
        const dO = softmax(o).map((p, c) => (p - (c === data[idx]?.y ? 1 : 0)) / batch.length);
        const dH = h.map((hk, k) => (hk > 0 ? dO.reduce((a, d, c) => a + d * at(net.w2[c] ?? [], k), 0) : 0));
        dO.forEach((d, c) => {
          gb2[c] = at(gb2, c) + d;
          const g = gw2[c] ?? [];
          h.forEach((hk, k) => (g[k] = at(g, k) + d * hk));
        });
        dH.forEach((d, k) => {
          gb1[k] = at(gb1, k) + d;
          const g = gw1[k] ?? [];
          z.forEach((zj, j) => (g[j] = at(g, j) + d * zj));
        });
      }
      const grads: number[][] = [...gw1, gb1, ...gw2, gb2];
      step++;
      const [c1, c2] = [1 - 0.9 ** step, 1 - 0.999 ** step];
      params.forEach((p, t) => {
        const [g, a, b] = [grads[t] ?? [], m1[t] ?? [], m2[t] ?? []];
        for (let i = 0; i < p.length; i++) {
          a[i] = 0.9 * at(a, i) + 0.1 * at(g, i);
          b[i] = 0.999 * at(b, i) + 0.001 * at(g, i) ** 2;
          p[i] = at(p, i) - (LR * (at(a, i) / c1)) / (Math.sqrt(at(b, i) / c2) + 1e-8);
        }
      });
    }
  }
  // Round every weight to float32: this is the model the ONNX file holds.
  const f32 = (a: number[]): number[] => a.map(Math.fround);
  return { w1: net.w1.map(f32), b1: f32(net.b1), w2: net.w2.map(f32), b2: f32(net.b2) };
}

/** The ONNX graph's forward pass in float32 arithmetic (Sub, Div, Gemm, Relu, Gemm, Softmax). */
function forward32(net: Net, x: readonly number[]): number[] {
  const f = Math.fround;
  const z = x.map((v, j) => f(f(f(v) - at(mean, j)) / at(std, j)));
  const h = net.w1.map((w, k) => Math.max(0, f(w.reduce((a, wi, j) => f(a + f(wi * at(z, j))), 0) + at(net.b1, k))));
  const o = net.w2.map((w, c) => f(w.reduce((a, wi, k) => f(a + f(wi * at(h, k))), 0) + at(net.b2, c)));
  const m = Math.max(...o);
  const e = o.map((v) => f(Math.exp(f(v - m))));
  const s = e.reduce((a, b) => f(a + b), 0);
  return e.map((v) => f(v / s));
}

const t0 = performance.now();
const net = trainNet(train, mulberry32(SEED + 1));
const trainMs = performance.now() - t0;
const accuracy = (data: Row[]): number => data.filter((r) => argmax(forward32(net, r.x)) === r.y).length / data.length;
const validAcc = accuracy(valid);
console.log(`trained ${train.length} rows in ${(trainMs / 1000).toFixed(2)} s; train accuracy ${(accuracy(train) * 100).toFixed(2)} %, validation accuracy ${(validAcc * 100).toFixed(2)} % (${valid.length} rows)`);
if (validAcc < 0.9) throw new Error(`validation accuracy ${validAcc} is below 0.9`);

// ---- ONNX model
const graph = graphProto({
  name: 'bearing_health_mlp',
  node: [
    node('Sub', ['features', 'mean'], 'centred'),
    node('Div', ['centred', 'std'], 'scaled'),
    node('Gemm', ['scaled', 'W1', 'B1'], 'hidden_pre', { transB: 1 }),
    node('Relu', ['hidden_pre'], 'hidden'),
    node('Gemm', ['hidden', 'W2', 'B2'], 'logits', { transB: 1 }),
    node('Softmax', ['logits'], 'probabilities', { axis: 1 }),
  ],
  initializer: [
    tensor('mean', [NF], mean),
    tensor('std', [NF], std),
    tensor('W1', [HIDDEN, NF], net.w1.flat()),
    tensor('B1', [HIDDEN], net.b1),
    tensor('W2', [NC, HIDDEN], net.w2.flat()),
    tensor('B2', [NC], net.b2),
  ],
  input: [io('features', ['N', NF])],
  output: [io('probabilities', ['N', NC])],
});
const onnxBytes = encodeModel(graph, { name: 'edge-agent models/demo/build', version: '1.0.0' });
mkdirSync(OUT, { recursive: true });
const modelPath = join(OUT, 'model.onnx');
writeFileSync(modelPath, onnxBytes);
const sha256 = createHash('sha256').update(readFileSync(modelPath)).digest('hex');

// ---- golden vectors: the first two correctly classified validation rows of each class (inputs to 6 digits)
const golden = LABELS.flatMap((_, c) =>
  valid
    .map((r) => r.x.map(sig))
    .filter((x, i) => valid[i]?.y === c && argmax(forward32(net, x)) === c)
    .slice(0, 2)
    .map((input) => ({ input, output: forward32(net, input), tolerance: TOLERANCE })),
);

const manifest = {
  schemaVersion: 1,
  name: 'bearing-health',
  version: '1.0.0',
  description:
    'Demo: rolling-bearing condition of an electric motor (healthy / wear / fault) from vibration RMS, peak, kurtosis, ' +
    'crest factor, housing temperature and shaft speed. MLP 6-16-3 trained on synthetic data (models/demo/bearing.ts).',
  createdAt: CREATED_AT,
  file: { name: 'model.onnx', sha256 },
  input: { name: 'features', dtype: 'float32', shape: ['N', NF] },
  features: FEATURES.map((f) => ({ name: f.name, unit: f.unit, description: f.description, min: f.min, max: f.max })),
  outputs: [{ name: 'probabilities', dtype: 'float32', shape: ['N', NC] }],
  output: { kind: 'classification', tensor: 'probabilities', labels: [...LABELS] },
  latencyBudgetMs: 20,
  errorModes: [
    {
      when: `speed_rpm outside the training range ${SPEED_RANGE_RPM[0]}–${SPEED_RANGE_RPM[1]} rpm (run-up, coast-down, standstill, VFD extremes)`,
      effect: 'RMS and temperature scale with speed, so slow shafts read too healthy and fast shafts can be called wear/fault; treat the prediction as unreliable',
    },
    {
      when: 'accelerometer saturation or clipping (peak_g stuck at the sensor range, crest_factor and kurtosis capped)',
      effect: 'impacts are flattened: incipient wear is under-reported as healthy and a fault may look like wear',
    },
    {
      when: 'housing temperature driven by something other than the bearing (hot ambient, sun, nearby process heat, sensor loose)',
      effect: 'the model saw ambient 10–40 °C: extra heat pushes towards fault, a cold or detached sensor hides a fault',
    },
    {
      when: 'other vibration sources (misalignment, unbalance, loose mounting, structural resonance)',
      effect: 'trained on bearing damage only: high RMS from other causes is reported as a bearing fault',
    },
  ],
  golden,
  baseline: {
    rows: train.length,
    features: Object.fromEntries(FEATURES.map((f, j) => [f.name, featureBaseline(column(train, j))])),
    // What the model predicts on its training rows (not the training labels): prediction drift compares against this.
    predictions: predictedShares(LABELS, train.map((r) => argmax(forward32(net, r.x)))),
  },
};
const checked = manifestSchema.safeParse(manifest);
if (!checked.success) throw new Error(`manifest does not satisfy manifestSchema: ${JSON.stringify(checked.error.issues)}`);
writeFileSync(join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`wrote ${OUT}/model.onnx (sha256 ${sha256}) and manifest.json`);
for (const g of golden) console.log(`  golden ${LABELS[argmax(g.output)]}: [${g.input.join(', ')}] → [${g.output.map((p) => p.toFixed(4)).join(', ')}]`);

// ---- check the written model with onnxruntime-node: golden vectors within tolerance, and all validation rows
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
async function runOrt(xs: number[][]): Promise<number[][]> {
  const feeds = { features: new ort.Tensor('float32', Float32Array.from(xs.flat()), [xs.length, NF]) };
  const out = (await session.run(feeds))['probabilities'];
  if (!out) throw new Error('onnxruntime returned no "probabilities" output');
  const data = Array.from(out.data as Float32Array);
  return xs.map((_, i) => data.slice(i * NC, (i + 1) * NC));
}
const failures: string[] = [];
const ortGolden = await runOrt(golden.map((g) => g.input));
golden.forEach((g, i) => {
  const got = ortGolden[i] ?? [];
  const diff = Math.max(...g.output.map((v, c) => Math.abs(v - at(got, c))));
  if (!(diff <= g.tolerance)) failures.push(`golden ${i}: expected [${g.output.join(', ')}], onnxruntime gave [${got.join(', ')}] (max diff ${diff})`);
});
const ortValid = await runOrt(valid.map((r) => r.x));
const maxDiff = Math.max(...valid.map((r, i) => Math.max(...forward32(net, r.x).map((v, c) => Math.abs(v - at(ortValid[i] ?? [], c))))));
if (!(maxDiff <= TOLERANCE)) failures.push(`validation rows: TypeScript and onnxruntime differ by up to ${maxDiff}`);
if (failures.length > 0) {
  console.error(`onnxruntime check FAILED:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`onnxruntime check passed: ${golden.length} golden vectors within ${TOLERANCE}; max |TS − ORT| over ${valid.length} validation rows ${maxDiff.toExponential(2)}`);
