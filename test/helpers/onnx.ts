// Test models: takes a small ONNX graph described in a few lines (nodes, initializers, inputs, outputs)
// and the features it reads; gives a complete model version folder (model.onnx + manifest.json with its
// sha256, feature ranges, golden vectors computed by onnxruntime, a baseline) in a temp folder.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { encodeModel, graphProto, io, node, tensor, type AttrValue, type Dim, type ElemType } from '../../models/demo/onnx.js';
import type { Manifest } from '../../models/manifest.js';
import { tempDir, type Teardown } from './parts.js';

export interface TensorSpec { name: string; dims: Dim[]; type?: ElemType }
export interface NodeSpec { op: string; in: string[]; out: string | string[]; attrs?: Record<string, AttrValue> }
export interface InitSpec { name: string; dims: number[]; values: readonly number[]; type?: ElemType }

export interface GraphSpec {
  /** The graph's inputs; the agent serves models with one float32 input [batch, features]. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  nodes: NodeSpec[];
  initializers?: InitSpec[];
  name?: string;
}

/** The model bytes for a graph (IR 8, opset 13). */
export function onnxModel(g: GraphSpec): Uint8Array {
  return encodeModel(
    graphProto({
      name: g.name ?? 'test_model',
      node: g.nodes.map((n) => node(n.op, n.in, n.out, n.attrs ?? {})),
      initializer: (g.initializers ?? []).map((i) => tensor(i.name, i.dims, i.values, i.type)),
      input: g.inputs.map((i) => io(i.name, i.dims, i.type)),
      output: g.outputs.map((o) => io(o.name, o.dims, o.type)),
    }),
    { name: 'edge-agent test/helpers/onnx', version: '1' },
  );
}

export interface FeatureSpec { name: string; min: number; max: number; unit?: string }

export interface VersionSpec {
  graph: GraphSpec;
  features: FeatureSpec[];
  /** How the agent reads the result; its tensor must be one of graph.outputs. */
  output: Manifest['output'];
  /**
   * Inputs of the golden vectors; their outputs are computed by running the model in onnxruntime, in one
   * batch (in batches of the input's fixed batch size, if it has one). The manifest's input shape copies the
   * graph input's (a fixed batch needs a manifest schema that allows it: use `edit` until then).
   */
  golden: number[][];
  tolerance?: number;
  name?: string;
  version?: string;
  /**
   * A windowed input: the graph input is [batch, channels, length] (or [batch, length] for one feature), one
   * channel per feature; golden inputs are channels × length values, channels first.
   */
  window?: { length: number };
  /** A last change to the manifest before it is written (e.g. to break it on purpose). */
  edit?: (manifest: Record<string, unknown>) => void;
}

export interface ModelVersion { dir: string; modelPath: string; manifest: Record<string, unknown>; sha256: string }

/**
 * Runs the model bytes on rows and gives each output tensor as rows of numbers (int64 as numbers).
 * `batch`: rows per run (a fixed-batch model's batch size); all rows in one run if omitted.
 */
export async function runModel(bytes: Uint8Array, inputName: string, rows: number[][], batch = rows.length, rowShape?: number[]): Promise<Record<string, number[][]>> {
  if (rows.length % batch !== 0) throw new Error(`${rows.length} rows do not fill batches of ${batch}`);
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const cols = rows[0]?.length ?? 0;
    const row = rowShape ?? [cols];
    const result: Record<string, number[][]> = {};
    for (let start = 0; start < rows.length; start += batch) {
      const chunk = rows.slice(start, start + batch);
      const out = await session.run({ [inputName]: new ort.Tensor('float32', Float32Array.from(chunk.flat()), [chunk.length, ...row]) });
      for (const [name, t] of Object.entries(out)) {
        const flat = Array.from(t.data as ArrayLike<number | bigint>, Number);
        const width = flat.length / chunk.length;
        (result[name] ??= []).push(...chunk.map((_, r) => flat.slice(r * width, (r + 1) * width)));
      }
    }
    return result;
  } finally {
    await session.release();
  }
}

function baselineFor(f: FeatureSpec) {
  const mid = (f.min + f.max) / 2;
  const q = (p: number) => f.min + (f.max - f.min) * p;
  return {
    mean: mid,
    std: (f.max - f.min) / 4,
    min: f.min,
    max: f.max,
    quantiles: { p05: q(0.05), p50: mid, p95: q(0.95) },
    histogram: { edges: [f.min, mid, f.max], counts: [50, 50] },
  };
}

/** Writes a model version folder into `parent` (a fresh temp folder if omitted). */
export async function writeModelVersion(t: Teardown, spec: VersionSpec, parent?: string): Promise<ModelVersion> {
  const bytes = onnxModel(spec.graph);
  const input = spec.graph.inputs[0];
  if (!input) throw new Error('a test model needs an input');
  const rowShape = spec.window ? (input.dims.slice(1) as number[]) : undefined;
  const outputs = await runModel(bytes, input.name, spec.golden, typeof input.dims[0] === 'number' ? input.dims[0] : spec.golden.length, rowShape);
  const goldenOut = outputs[spec.output.tensor];
  if (!goldenOut) throw new Error(`the model has no output "${spec.output.tensor}"`);
  const name = spec.name ?? 'test-model';
  const version = spec.version ?? '1.0.0';
  const dir = join(parent ?? tempDir(t, 'edge-agent-model-'), name, version);
  mkdirSync(dir, { recursive: true });
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifest: Record<string, unknown> = {
    schemaVersion: 1,
    name,
    version,
    file: { name: 'model.onnx', sha256 },
    input: spec.window
      ? { name: input.name, dtype: 'float32', shape: input.dims, window: spec.window }
      : { name: input.name, dtype: 'float32', shape: [input.dims[0], spec.features.length] },
    features: spec.features.map((f) => ({ name: f.name, unit: f.unit ?? '1', min: f.min, max: f.max })),
    outputs: spec.graph.outputs.map((o) => ({ name: o.name, dtype: o.type ?? 'float32', shape: o.dims })),
    output: spec.output,
    latencyBudgetMs: 50,
    golden: spec.golden.map((x, r) => ({ input: x, output: goldenOut[r], tolerance: spec.tolerance ?? 1e-5 })),
    baseline: { rows: 100, features: Object.fromEntries(spec.features.map((f) => [f.name, baselineFor(f)])) },
  };
  spec.edit?.(manifest);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return { dir, modelPath, manifest, sha256 };
}
