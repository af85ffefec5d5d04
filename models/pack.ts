// Pack: takes an ONNX file as an exporter wrote it, the features it reads (names, units, ranges), how
// to read its output, and optionally a CSV of training rows; gives a version folder (model.onnx +
// manifest.json) whose manifest is built from the model's real inputs and outputs, with golden vectors
// and a training baseline computed by running the model. The engineer never writes a manifest by hand.
// A 3-d input [batch, channels, samples] (or a 2-d one with `window`) is a sliding window of the features'
// samples: the training CSV is then read as a time series (one sample per line) cut into windows.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import * as ort from 'onnxruntime-node';
import { EdgeError } from '../agent/errors.js';
import { featureBaseline, predictedShares, sig } from './baseline.js';
import { servable, type TensorInfo } from './exporters.js';
import { chunks } from './chunks.js';
import { manifestSchema, type Manifest, type OutputSpec } from './manifest.js';
import { readVersionFile } from './read.js';

export interface FeatureSpec { name: string; unit: string; min: number; max: number; description?: string }

export type OutputChoice =
  | { kind: 'classification'; labels: string[] }
  | { kind: 'score'; threshold: number; above: string; below: string }
  | { kind: 'regression'; unit: string };

export interface PackOptions {
  modelPath: string;
  name: string;
  version: string;
  /** The folder under which NAME/VERSION/ is written. */
  outDir: string;
  /** In input order; absent: the training CSV's columns, ranges widened from the data. */
  features?: FeatureSpec[];
  output: OutputChoice;
  /** The output tensor to read; default: the first float32 [batch, k] output. */
  tensor?: string;
  trainCsv?: string;
  latencyBudgetMs?: number;
  /** The 2-d input [batch, N] is one feature's window of N samples (a 3-d input is always a window). */
  window?: boolean;
  description?: string;
  maxModelBytes: number;
}

export interface Packed {
  dir: string;
  manifest: Manifest;
  /** What was measured and decided, for the engineer to read. */
  report: string[];
}

const GOLDEN_PER_LABEL = 2;
const GOLDEN_SPREAD = 8;
const LATENCY_RUNS = 50;

const fail = (msg: string): never => {
  throw new EdgeError('EDGE_ERR_MODEL_CONTRACT', msg);
};

function info(m: ort.InferenceSession.ValueMetadata): TensorInfo {
  return m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] };
}

/** Runs rows through the session in chunks of its fixed batch (or all at once); gives one output row per input row. */
async function runRows(session: ort.InferenceSession, input: string, output: string, x: number[][], row: readonly number[], fixed: number | null): Promise<number[][]> {
  const cols = row.reduce((a, b) => a * b, 1);
  const data = new Float32Array(x.length * cols);
  x.forEach((r, i) => data.set(r, i * cols));
  const out: number[][] = [];
  for (const c of chunks(data, x.length, cols, fixed)) {
    const res = await session.run({ [input]: new ort.Tensor('float32', c.data, [c.batch, ...row]) }, [output]);
    const t = res[output] as ort.Tensor;
    const width = t.dims[1] ?? 1;
    const values = t.data as Float32Array;
    for (let r = 0; r < c.real; r++) out.push(Array.from(values.subarray(r * width, (r + 1) * width)));
  }
  return out;
}

function readCsv(path: string, names: readonly string[] | null): { names: string[]; rows: number[][] } {
  let records: Record<string, string>[];
  try {
    records = parseCsv(readVersionFile(dirname(path), basename(path), 1 << 30, 'EDGE_ERR_CLI_USAGE'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (err) {
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `--train ${path}: not a CSV file with a header row (${(err as Error).message})`);
  }
  if (!records.length) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--train ${path}: no rows below the header`);
  const header = Object.keys(records[0] as object);
  const cols = names ?? header;
  const missing = cols.filter((c) => !header.includes(c));
  if (missing.length) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--train ${path}: no column for feature${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (columns: ${header.join(', ')})`);
  const rows = records.map((rec, i) =>
    cols.map((c) => {
      const v = Number(rec[c]);
      if (rec[c] === '' || !Number.isFinite(v)) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--train ${path}: row ${i + 2}, column ${c}: "${rec[c]}" is not a number`);
      return v;
    }),
  );
  return { names: [...cols], rows };
}

const argmax = (r: readonly number[]) => r.reduce((b, v, i) => (v > (r[b] ?? -Infinity) ? i : b), 0);

/**
 * Training windows from a time series (one sample per row, a column per feature): consecutive, not
 * overlapping, `length` samples each, channels first; the last incomplete one is left out.
 */
function windowsOf(samples: readonly number[][], channels: number, length: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start + length <= samples.length; start += length) {
    const w = new Array<number>(channels * length);
    for (let c = 0; c < channels; c++) for (let i = 0; i < length; i++) w[c * length + i] = (samples[start + i] as number[])[c] as number;
    out.push(w);
  }
  return out;
}

/** Golden inputs: per predicted label the first rows, or rows spread over the data; without data, points inside the ranges. */
function goldenInputs(features: readonly FeatureSpec[], rows: number[][] | null, predicted: number[] | null, windowLength: number | null): number[][] {
  if (rows && predicted) {
    const labels = [...new Set(predicted)].sort((a, b) => a - b);
    return labels.flatMap((l) => rows.filter((_, i) => predicted[i] === l).slice(0, GOLDEN_PER_LABEL));
  }
  if (rows) return Array.from({ length: Math.min(GOLDEN_SPREAD, rows.length) }, (_, k) => rows[Math.floor((k * rows.length) / Math.min(GOLDEN_SPREAD, rows.length))] as number[]);
  if (windowLength === null) return [0.25, 0.5, 0.75].map((q) => features.map((f) => sig(f.min + (f.max - f.min) * q)));
  // Windows: each feature swings around the point q of its range (a tenth of the range either way).
  return [0.25, 0.5, 0.75].map((q) =>
    features.flatMap((f) => Array.from({ length: windowLength }, (_, i) => sig(f.min + (f.max - f.min) * (q + 0.1 * Math.sin((2 * Math.PI * i) / 8))))),
  );
}

export async function packModel(o: PackOptions): Promise<Packed> {
  const bytes = readVersionFile(dirname(o.modelPath), basename(o.modelPath), o.maxModelBytes, 'EDGE_ERR_MODEL_FILE');
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (err) {
    throw new EdgeError('EDGE_ERR_MODEL_LOAD', `onnxruntime ${ort.env.versions.node ?? ''} cannot load ${o.modelPath}: ${(err as Error).message}`);
  }
  try {
    const inputs = session.inputMetadata.map(info);
    const outputs = session.outputMetadata.map(info);
    const s = servable(inputs, outputs);
    if ('problems' in s) return fail(`${o.modelPath} cannot be served as it is:\n  ${s.problems.join('\n  ')}`);
    const tensor = o.tensor ? s.readable.find((t) => t.name === o.tensor) : s.readable[0];
    if (!tensor) return fail(`--tensor ${o.tensor}: not a float32 [batch, k] output of the model (those are: ${s.readable.map((t) => t.name).join(', ')})`);
    const width = tensor.shape[1];
    const wants = o.output.kind === 'classification' ? o.output.labels.length : 1;
    if (typeof width === 'number' && width !== wants) {
      return fail(`output "${tensor.name}" has ${width} values per row; ${o.output.kind === 'classification' ? `${wants} labels were given` : `a ${o.output.kind} output reads 1`}`);
    }

    const report: string[] = [];
    // A window: [channels, samples] after the batch, or [samples] for one feature when asked.
    const windowed = s.row.length === 2 || o.window === true;
    const channels = s.row.length === 2 ? (s.row[0] as number) : windowed ? 1 : (s.row[0] as number);
    const windowLength = windowed ? (s.row[s.row.length - 1] as number) : null;
    const csv = o.trainCsv ? readCsv(o.trainCsv, o.features?.map((f) => f.name) ?? null) : null;
    let features = o.features;
    if (!features) {
      if (!csv) throw new EdgeError('EDGE_ERR_CLI_USAGE', 'name the features (--features FILE or --feature name:unit:min:max …), or give --train CSV to take them from its header');
      features = csv.names.map((name, j) => {
        const col = csv.rows.map((r) => r[j] as number);
        const lo = Math.min(...col);
        const hi = Math.max(...col);
        const margin = (hi - lo) * 0.1 || Math.abs(lo) * 0.1 || 1;
        return { name, unit: '', min: sig(lo - margin), max: sig(hi + margin) };
      });
      report.push(`feature ranges taken from the training data, widened by 10 % of each span: ${features.map((f) => `${f.name} [${f.min}, ${f.max}]`).join(', ')}; check them, and the units (empty)`);
    }
    if (features.length !== channels) {
      return fail(`${features.length} features were named; the model's input ${s.input.name} takes ${channels}${windowed ? ` (a window of ${windowLength} samples of ${channels === 1 ? 'one feature' : `${channels} features`})` : ''}`);
    }
    // Training rows: one per sample for a window, cut into windows for golden vectors and predicted shares.
    const trainRows = csv && windowLength !== null ? windowsOf(csv.rows, channels, windowLength) : (csv?.rows ?? null);
    if (csv && trainRows && !trainRows.length) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--train ${o.trainCsv}: ${csv.rows.length} samples do not make one window of ${windowLength}`);
    if (windowed) {
      report.push(`windowed input: ${channels} × ${windowLength} samples per row, channels first${csv ? `; ${csv.rows.length} training samples (one per line, in time order) cut into ${trainRows?.length} windows` : ''}`);
    }

    const spec: OutputSpec =
      o.output.kind === 'classification'
        ? { kind: 'classification', tensor: tensor.name, labels: o.output.labels }
        : o.output.kind === 'score'
          ? { kind: 'score', tensor: tensor.name, threshold: o.output.threshold, above: o.output.above, below: o.output.below }
          : { kind: 'regression', tensor: tensor.name, unit: o.output.unit };
    const run = (x: number[][]) => runRows(session, s.input.name, tensor.name, x, s.row, s.fixedBatch);

    // The training rows: what the model predicts on them is the prediction baseline.
    let predicted: number[] | null = null;
    let baseline: Manifest['baseline'];
    if (csv && trainRows) {
      const out = await run(trainRows);
      if (spec.kind === 'classification') predicted = out.map(argmax);
      const predictions =
        spec.kind === 'classification'
          ? predictedShares(spec.labels, predicted as number[])
          : spec.kind === 'score'
            ? predictedShares([spec.below, spec.above], out.map((r) => ((r[0] ?? 0) >= spec.threshold ? 1 : 0)))
            : undefined;
      baseline = {
        rows: csv.rows.length,
        features: Object.fromEntries(features.map((f, j) => [f.name, featureBaseline(csv.rows.map((r) => r[j] as number))])),
        ...(predictions ? { predictions } : {}),
      };
      report.push(`baseline from ${csv.rows.length} training ${windowed ? 'samples' : 'rows'}${predictions ? `; predicted shares ${Object.entries(predictions).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`);
    }
    const gIn = goldenInputs(features, trainRows, predicted, windowLength).map((r) => r.map((v) => Math.fround(v)));
    const gOut = await run(gIn);
    const golden = gIn.map((input, i) => {
      const output = gOut[i] as number[];
      return { input, output, tolerance: sig(1e-4 * Math.max(1, ...output.map(Math.abs))) };
    });

    // Latency of one full batch (the fixed batch, or 64 rows), to set the budget against.
    const probeRows = Array.from({ length: s.fixedBatch ?? 64 }, (_, i) => gIn[i % gIn.length] as number[]);
    const times: number[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const t0 = performance.now();
      await run(probeRows);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const p99 = times[Math.floor(0.99 * (times.length - 1))] as number;
    const latencyBudgetMs = o.latencyBudgetMs ?? Math.max(5, Math.ceil(p99 * 10));
    report.push(`latency of a batch of ${probeRows.length}: p99 ${p99.toFixed(3)} ms here; latencyBudgetMs ${latencyBudgetMs}${o.latencyBudgetMs ? '' : ' (ten times that, at least 5)'}`);
    if (s.fixedBatch) report.push(`the model's batch is fixed at ${s.fixedBatch}: the agent feeds it in chunks of ${s.fixedBatch} (export with dynamic_axes={'${s.input.name}': {0: 'N'}} to batch freely)`);

    const manifest = {
      schemaVersion: 1 as const,
      name: o.name,
      version: o.version,
      ...(o.description ? { description: o.description } : {}),
      createdAt: new Date().toISOString(),
      file: { name: 'model.onnx', sha256: createHash('sha256').update(bytes).digest('hex') },
      input: {
        name: s.input.name,
        dtype: 'float32' as const,
        shape: [s.fixedBatch ?? (typeof s.input.shape[0] === 'string' ? s.input.shape[0] : 'N'), ...s.row] as [string | number, number] | [string | number, number, number],
        ...(windowLength !== null ? { window: { length: windowLength } } : {}),
      },
      features,
      outputs: outputs.filter((t) => t.type === 'float32' || t.type === 'int64').map((t) => ({ name: t.name, dtype: t.type as 'float32' | 'int64', shape: t.shape })),
      output: spec,
      latencyBudgetMs,
      errorModes: [],
      golden,
      ...(baseline ? { baseline } : {}),
    };
    const checked = manifestSchema.safeParse(manifest);
    if (!checked.success) return fail(`the manifest pack built does not validate (a bug, or an argument out of range): ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const dir = join(o.outDir, o.name, o.version);
    if (existsSync(dir)) throw new EdgeError('EDGE_ERR_CLI_USAGE', `${dir} exists; a version folder is never overwritten`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), bytes);
    writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return { dir, manifest: checked.data, report };
  } finally {
    await session.release();
  }
}
