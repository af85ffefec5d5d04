// Models: the inference contract. A version folder holds model.onnx and manifest.json;
// this file takes the manifest's bytes (capped) and gives a validated, typed Manifest, or an EdgeError
// (EDGE_ERR_MANIFEST) that names every problem with its path, or the limit a hostile manifest exceeds.

import { join } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { formatZodIssues } from '../agent/zod-format.js';
import { PLAIN_FILE_NAME, readVersionFile } from './read.js';
import { releaseSchema } from './release.js';

/**
 * Caps on a manifest, checked before (bytes) and right after JSON parsing (counts), so a hostile or
 * broken manifest is refused in milliseconds instead of costing seconds and gigabytes in validation.
 */
export const MANIFEST_LIMITS = {
  bytes: 4 * 1024 * 1024,
  features: 4096,
  /** Numbers in one row of a windowed input (channels × samples), and so in one golden input. */
  windowValues: 65536,
  outputs: 64,
  labels: 1024,
  golden: 1024,
  errorModes: 256,
  histogramEdges: 1025,
  quantiles: 101,
  /** Free text (descriptions, error modes). */
  textChars: 4096,
  /** Names, units, labels, versions. */
  nameChars: 256,
} as const;

/** The largest finite float32: the model sees every feature as float32, so ranges and inputs must fit. */
export const FLOAT32_MAX = 3.4028234663852886e38;

const L = MANIFEST_LIMITS;
const finite = z.number().finite();
const float32 = z.number().min(-FLOAT32_MAX, 'must fit in float32 (±3.4028234663852886e38)').max(FLOAT32_MAX, 'must fit in float32 (±3.4028234663852886e38)');
/**
 * A long list of numbers, checked in one loop: per-element number schemas with bounds cost about three
 * times as much, and golden inputs and histograms are where a big manifest's numbers are.
 */
function numbers(max: number, bound: number, what: string) {
  return z
    .array(z.number())
    .max(max)
    .superRefine((a, ctx) => {
      for (let i = 0; i < a.length; i++) {
        if (!(Math.abs(a[i] as number) <= bound)) {
          ctx.addIssue({ code: 'custom', path: [i], message: what });
          return;
        }
      }
    });
}
const float32s = (max: number) => numbers(max, FLOAT32_MAX, 'must fit in float32 (±3.4028234663852886e38)');
const finites = (max: number) => numbers(max, Number.MAX_VALUE, 'must be a finite number');
const name = z.string().max(L.nameChars);
const text = z.string().max(L.textChars);

const featureSchema = z.strictObject({
  name: name.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a feature name is letters, digits and _'),
  unit: name,
  description: text.optional(),
  /** Valid range: a value outside [min, max] is rejected as a dead letter (REJECT_OUT_OF_RANGE). Within float32. */
  min: float32,
  max: float32,
});

const histogramSchema = z.strictObject({
  edges: finites(L.histogramEdges).min(2),
  counts: z.array(z.number().int().nonnegative()).max(L.histogramEdges),
});

const featureBaselineSchema = z.strictObject({
  mean: finite,
  std: finite,
  min: finite,
  max: finite,
  quantiles: z.record(name, finite).refine((q) => Object.keys(q).length <= L.quantiles, `at most ${L.quantiles} quantiles`),
  histogram: histogramSchema,
});

const batchSize = z.union([name.min(1), z.literal(-1), z.number().int().positive().max(65536)]);
const dim = z.union([z.number().int().positive(), name.min(1)]);

const outputSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('classification'),
    /** Output tensor holding one probability per label, shape [N, labels.length]. */
    tensor: name,
    labels: z.array(name).min(2).max(L.labels),
  }),
  z.strictObject({
    kind: z.literal('score'),
    /** Output tensor holding one score per row, shape [N, 1]. */
    tensor: name,
    threshold: finite,
    above: name,
    below: name,
  }),
  z.strictObject({
    kind: z.literal('regression'),
    tensor: name,
    unit: name,
  }),
]);

export const manifestSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    name: name.regex(/^[a-z0-9][a-z0-9._-]*$/, 'a model name is lower-case letters, digits, . _ -'),
    version: name.regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/, 'a version is letters, digits, . + _ -'),
    description: text.optional(),
    createdAt: name.optional(),
    file: z.strictObject({
      /** A plain file name inside the version folder: no path separators, no . or .. */
      name: name.regex(PLAIN_FILE_NAME, 'a plain file name inside the version folder (letters, digits, . _ -; no / and not . or ..)').default('model.onnx'),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits') }),
    input: z.strictObject({
      name,
      dtype: z.literal('float32'),
      /**
       * [batch, features], or for a windowed input [batch, channels, samples] (channels = features, one per
       * signal) or [batch, samples] (one signal). The batch dimension is symbolic (a string) or -1, or a whole
       * number when the model was exported with a fixed batch (it is then fed in chunks of that size).
       */
      shape: z.union([
        z.tuple([batchSize, z.number().int().positive().max(L.windowValues)]),
        z.tuple([batchSize, z.number().int().positive().max(L.features), z.number().int().positive().max(L.windowValues)]),
      ]),
      /**
       * A sliding window of each feature's recent samples instead of one value per feature: one row is
       * `length` samples of every feature, channels first (all of the first feature's samples, oldest first,
       * then the second's ...). Absent: one value per feature.
       */
      window: z.strictObject({ length: z.number().int().positive().max(L.windowValues) }).optional(),
    }),
    features: z.array(featureSchema).min(1).max(L.features),
    /** Every output of the model; the one `output.tensor` names is float32, others (e.g. int64 labels) are listed only. */
    outputs: z.array(z.strictObject({ name, dtype: z.enum(['float32', 'int64']), shape: z.array(z.union([dim, z.literal(-1)])).max(8) })).min(1).max(L.outputs),
    output: outputSchema,
    latencyBudgetMs: z.number().positive(),
    errorModes: z.array(z.strictObject({ when: text, effect: text })).max(L.errorModes).default([]),
    golden: z
      .array(z.strictObject({ input: float32s(L.windowValues), output: finites(L.labels), tolerance: z.number().nonnegative().default(1e-4) }))
      .min(1)
      .max(L.golden),
    /** The training baseline drift checks compare against; absent when the model was packed without training rows. */
    baseline: z
      .strictObject({
        rows: z.number().int().positive(),
        features: z.record(name, featureBaselineSchema),
        predictions: z.record(name, finite).optional(),
      })
      .optional(),
    /** Written by `edge-agent model sign`: the release's files, expiry and rollback flag (signed with the manifest). */
    release: releaseSchema.optional(),
  })
  .superRefine((m, ctx) => {
    const n = m.features.length;
    const shape = m.input.shape;
    const win = m.input.window;
    if (!win) {
      if (shape.length === 3) ctx.addIssue({ code: 'custom', path: ['input', 'shape'], message: 'a 3-d input [batch, channels, samples] is a window: give input.window { length }' });
      else if (shape[1] !== n) ctx.addIssue({ code: 'custom', path: ['input', 'shape', 1], message: `must equal the number of features (${n})` });
    } else if (shape.length === 3) {
      if (shape[1] !== n) ctx.addIssue({ code: 'custom', path: ['input', 'shape', 1], message: `must equal the number of features, one channel per signal (${n})` });
      if (shape[2] !== win.length) ctx.addIssue({ code: 'custom', path: ['input', 'shape', 2], message: `must equal input.window.length (${win.length})` });
      if (n * win.length > L.windowValues) ctx.addIssue({ code: 'custom', path: ['input', 'shape'], message: `${n} × ${win.length} values per row — the limit is ${L.windowValues}` });
    } else {
      if (n !== 1) ctx.addIssue({ code: 'custom', path: ['input', 'shape'], message: `a windowed input of ${n} features is [batch, ${n}, ${win.length}]; [batch, samples] is for one feature` });
      if (shape[1] !== win.length) ctx.addIssue({ code: 'custom', path: ['input', 'shape', 1], message: `must equal input.window.length (${win.length})` });
    }
    const size = win ? n * win.length : n;
    const names = new Set<string>();
    m.features.forEach((f, i) => {
      if (names.has(f.name)) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `duplicate feature "${f.name}"` });
      names.add(f.name);
      if (!(f.min < f.max)) ctx.addIssue({ code: 'custom', path: ['features', i], message: `min (${f.min}) must be below max (${f.max})` });
      if (m.baseline && !m.baseline.features[f.name]) ctx.addIssue({ code: 'custom', path: ['baseline', 'features'], message: `no baseline for feature "${f.name}"` });
    });
    const read = m.outputs.find((o) => o.name === m.output.tensor);
    if (!read) {
      ctx.addIssue({ code: 'custom', path: ['output', 'tensor'], message: `"${m.output.tensor}" is not one of outputs[].name` });
    } else if (read.dtype !== 'float32') {
      ctx.addIssue({ code: 'custom', path: ['output', 'tensor'], message: `"${m.output.tensor}" is ${read.dtype}; the output read must be float32` });
    }
    const width = outputWidth(m.output);
    m.golden.forEach((g, i) => {
      if (g.input.length !== size) ctx.addIssue({ code: 'custom', path: ['golden', i, 'input'], message: `has ${g.input.length} values, the model takes ${win ? `${size} (${n} × ${win.length}, channels first)` : n}` });
      if (g.output.length !== width) ctx.addIssue({ code: 'custom', path: ['golden', i, 'output'], message: `has ${g.output.length} values, the output has ${width}` });
    });
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type OutputSpec = Manifest['output'];

/** How many numbers one row of the interpreted output tensor holds. */
export function outputWidth(o: OutputSpec): number {
  return o.kind === 'classification' ? o.labels.length : 1;
}

/** The counts that make validation expensive, checked on the parsed JSON before zod walks it. */
function countProblems(json: unknown): string[] {
  if (json === null || typeof json !== 'object') return [];
  const m = json as Record<string, unknown>;
  const over = (path: string, v: unknown, limit: number): string[] => {
    const n = Array.isArray(v) ? v.length : v !== null && typeof v === 'object' ? Object.keys(v).length : 0;
    return n > limit ? [`${path}: has ${n} entries — the limit is ${limit}`] : [];
  };
  const baseline = (m.baseline ?? {}) as Record<string, unknown>;
  return [
    ...over('features', m.features, L.features),
    ...over('golden', m.golden, L.golden),
    ...over('outputs', m.outputs, L.outputs),
    ...over('errorModes', m.errorModes, L.errorModes),
    ...over('baseline.features', baseline.features, L.features),
    ...over('baseline.predictions', baseline.predictions, L.labels),
  ];
}

const MAX_LISTED = 50;

export function parseManifest(text: string, where: string): Manifest {
  if (text.length > L.bytes) {
    throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: ${text.length} characters — the limit is ${L.bytes} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: not valid JSON (${(err as Error).message})`);
  }
  const counts = countProblems(json);
  if (counts.length) throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: manifest too large\n  ${counts.join('\n  ')}`, { details: counts });
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues;
    const details = formatZodIssues(issues.slice(0, MAX_LISTED), json);
    if (issues.length > MAX_LISTED) details.push(`… and ${issues.length - MAX_LISTED} more problems`);
    throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: invalid manifest\n  ${details.join('\n  ')}`, { details });
  }
  return result.data;
}

/** Reads <versionDir>/manifest.json: a regular file of at most MANIFEST_LIMITS.bytes, never a link, FIFO or device. */
export function readManifest(versionDir: string): Manifest {
  const path = join(versionDir, 'manifest.json');
  const bytes = readVersionFile(versionDir, 'manifest.json', L.bytes, 'EDGE_ERR_MANIFEST');
  return parseManifest(new TextDecoder('utf-8').decode(bytes), path);
}

/** What a manifest says the model answers for one row of output numbers. */
export type Verdict =
  | { kind: 'classification'; label: string; probabilities: Record<string, number> }
  | { kind: 'score'; label: string; score: number }
  | { kind: 'regression'; value: number; unit: string };

export function interpret(o: OutputSpec, row: ArrayLike<number>): Verdict {
  switch (o.kind) {
    case 'classification': {
      let best = 0;
      const probabilities: Record<string, number> = {};
      o.labels.forEach((label, i) => {
        probabilities[label] = row[i] ?? Number.NaN;
        if ((row[i] ?? -Infinity) > (row[best] ?? -Infinity)) best = i;
      });
      return { kind: 'classification', label: o.labels[best] ?? '', probabilities };
    }
    case 'score': {
      const score = row[0] ?? Number.NaN;
      return { kind: 'score', label: score >= o.threshold ? o.above : o.below, score };
    }
    case 'regression':
      return { kind: 'regression', value: row[0] ?? Number.NaN, unit: o.unit };
  }
}

/** The dimensions of one input row after the batch: [features], or [channels, samples] / [samples] for a window. */
export function rowShape(m: Manifest): number[] {
  return m.input.shape.slice(1) as number[];
}

/** How many numbers one input row holds: features, or channels × samples for a window. */
export function rowSize(m: Manifest): number {
  return m.input.window ? m.features.length * m.input.window.length : m.features.length;
}

/** The batch size a manifest's model is fixed at, or null when its batch dimension is symbolic. */
export function fixedBatchOf(m: Manifest): number | null {
  const b = m.input.shape[0];
  return typeof b === 'number' && b > 0 ? b : null;
}
