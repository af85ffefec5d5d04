// Models: load one version folder. Takes the folder (model.onnx + manifest.json); gives a running
// inference session whose real inputs/outputs match the manifest and whose golden vectors give the
// manifest's outputs, or a startup EdgeError that names both sides of the mismatch.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { startInference, type Inference, type InferenceOptions, type TensorInfo } from '../agent/infer/infer.js';
import { servable } from './exporters.js';
import { fixedBatchOf, outputWidth, readManifest, rowShape, rowSize, type Manifest } from './manifest.js';
import { readVersionFile } from './read.js';

/** The largest model file the agent reads (checked before reading): 256 MiB. */
export const DEFAULT_MAX_MODEL_BYTES = 256 * 1024 * 1024;
/** For the config's model section: `maxModelBytes`. */
export const maxModelBytesSchema = z.number().int().positive().max(4 * 1024 * 1024 * 1024).default(DEFAULT_MAX_MODEL_BYTES);
export interface ModelFileLimits { maxModelBytes: number }

export interface LoadedModel {
  dir: string;
  manifest: Manifest;
  inference: Inference;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function showShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

const batchDim = (d: number | string | undefined) => typeof d === 'string' || d === -1;
/** The model's batch dimension is what the manifest says: symbolic, or fixed at the same size. */
const batchOk = (m: Manifest, d: number | string | undefined) => (fixedBatchOf(m) === null ? batchDim(d) : d === fixedBatchOf(m));

/** Compares what the session really has with what the manifest says. Gives one line per mismatch. */
export function contractProblems(m: Manifest, inputs: readonly TensorInfo[], outputs: readonly TensorInfo[]): string[] {
  const problems: string[] = [];
  const want = `"${m.input.name}" float32 ${showShape(m.input.shape)}`;
  const input = inputs.find((i) => i.name === m.input.name);
  if (inputs.length !== 1) {
    problems.push(`manifest input: ${want}; the ONNX model has ${inputs.length} inputs: ${inputs.map((i) => `"${i.name}"`).join(', ')}`);
  }
  if (!input) {
    problems.push(`manifest input: ${want}; the ONNX model has no input of that name (it has ${inputs.map((i) => `"${i.name}" ${i.type} ${showShape(i.shape)}`).join(', ')})`);
  } else if (input.type !== 'float32' || input.shape.length !== m.input.shape.length || !batchOk(m, input.shape[0]) || m.input.shape.some((d, i) => i > 0 && input.shape[i] !== d)) {
    problems.push(`manifest input: ${want}; the ONNX model's input: "${input.name}" ${input.type} ${showShape(input.shape)}`);
  }
  for (const o of m.outputs) {
    const real = outputs.find((x) => x.name === o.name);
    if (!real) {
      problems.push(`manifest output "${o.name}"; the ONNX model's outputs are ${outputs.map((x) => `"${x.name}"`).join(', ')}`);
      continue;
    }
    const shapeOk =
      real.shape.length === o.shape.length &&
      o.shape.every((d, i) => (batchDim(d) ? batchDim(real.shape[i]) || typeof real.shape[i] === 'number' : d === real.shape[i]));
    if (real.type !== o.dtype || !shapeOk) {
      problems.push(`manifest output: "${o.name}" ${o.dtype} ${showShape(o.shape)}; the ONNX model's output: "${real.name}" ${real.type} ${showShape(real.shape)}`);
    }
  }
  const spec = m.outputs.find((o) => o.name === m.output.tensor);
  const width = outputWidth(m.output);
  if (spec && spec.shape[1] !== undefined && spec.shape[1] !== width) {
    problems.push(`manifest output.${m.output.kind} reads ${width} values per row; outputs "${spec.name}" has ${String(spec.shape[1])}`);
  }
  return problems;
}

/** Runs every golden vector through the session. Gives one line per value outside its tolerance. */
export async function goldenProblems(m: Manifest, inference: Inference): Promise<string[]> {
  const cols = rowSize(m);
  const data = new Float32Array(m.golden.length * cols);
  m.golden.forEach((g, r) => data.set(g.input, r * cols));
  const result = await inference.run(m.input.name, data, m.golden.length, cols, rowShape(m));
  const out = result.outputs[m.output.tensor];
  if (!out) return [`golden: the model gave no output "${m.output.tensor}"`];
  const width = outputWidth(m.output);
  const problems: string[] = [];
  m.golden.forEach((g, r) => {
    const got = Array.from(out.data.subarray(r * width, (r + 1) * width));
    const off = got.findIndex((v, i) => !(Math.abs(v - (g.output[i] ?? Number.NaN)) <= g.tolerance));
    if (off >= 0) {
      problems.push(`golden[${r}]: manifest expects [${g.output.join(', ')}]; the model gave [${got.join(', ')}] (tolerance ${g.tolerance})`);
    }
  });
  return problems;
}

export async function loadModel(dir: string, options: InferenceOptions, limits: ModelFileLimits = { maxModelBytes: DEFAULT_MAX_MODEL_BYTES }): Promise<LoadedModel> {
  const abs = resolve(dir);
  const manifest = readManifest(abs);
  const modelPath = join(abs, manifest.file.name);
  // The verified bytes go to the worker, not the path: what onnxruntime loads is what was hashed,
  // and a model cannot pull in other files (external data) by path.
  const bytes = readVersionFile(abs, manifest.file.name, limits.maxModelBytes, 'EDGE_ERR_MODEL_FILE');
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== manifest.file.sha256) {
    throw new EdgeError('EDGE_ERR_MODEL_FILE', `${modelPath}: sha256 is ${actual}, the manifest says ${manifest.file.sha256}`);
  }
  // Fetch only the output read: a model's other outputs (an int64 label next to the probabilities) cost nothing.
  const inference = await startInference({ bytes, label: modelPath, fixedBatch: fixedBatchOf(manifest), fetch: [manifest.output.tensor] }, options);
  try {
    const s = servable(inference.inputs, inference.outputs);
    if ('problems' in s) {
      throw new EdgeError('EDGE_ERR_MODEL_CONTRACT', `${abs}: the model cannot be served as it is exported\n  ${s.problems.join('\n  ')}`, { details: s.problems });
    }
    const contract = contractProblems(manifest, inference.inputs, inference.outputs);
    if (contract.length) {
      throw new EdgeError('EDGE_ERR_MODEL_CONTRACT', `${abs}: the model does not match its manifest\n  ${contract.join('\n  ')}`, { details: contract });
    }
    const golden = await goldenProblems(manifest, inference);
    if (golden.length) {
      throw new EdgeError('EDGE_ERR_MODEL_GOLDEN', `${abs}: golden vectors fail\n  ${golden.join('\n  ')}`, { details: golden });
    }
  } catch (err) {
    await inference.close();
    throw err;
  }
  return { dir: abs, manifest, inference };
}
