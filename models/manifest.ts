// Models: the inference contract. A version folder holds model.onnx and manifest.json;
// this file takes the manifest's JSON text and gives a validated, typed Manifest, or an EdgeError
// (EDGE_ERR_MANIFEST) that names every problem with its path.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { formatZodIssues } from '../agent/zod-format.js';

const finite = z.number().finite();

const featureSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a feature name is letters, digits and _'),
  unit: z.string(),
  description: z.string().optional(),
  /** Valid range: a value outside [min, max] is rejected as a dead letter (REJECT_OUT_OF_RANGE). */
  min: finite,
  max: finite,
});

const histogramSchema = z.strictObject({
  edges: z.array(finite).min(2),
  counts: z.array(z.number().int().nonnegative()),
});

const featureBaselineSchema = z.strictObject({
  mean: finite,
  std: finite,
  min: finite,
  max: finite,
  quantiles: z.record(z.string(), finite),
  histogram: histogramSchema,
});

const dim = z.union([z.number().int().positive(), z.string().min(1)]);

const outputSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('classification'),
    /** Output tensor holding one probability per label, shape [N, labels.length]. */
    tensor: z.string(),
    labels: z.array(z.string()).min(2),
  }),
  z.strictObject({
    kind: z.literal('score'),
    /** Output tensor holding one score per row, shape [N, 1]. */
    tensor: z.string(),
    threshold: finite,
    above: z.string(),
    below: z.string(),
  }),
  z.strictObject({
    kind: z.literal('regression'),
    tensor: z.string(),
    unit: z.string(),
  }),
]);

export const manifestSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'a model name is lower-case letters, digits, . _ -'),
    version: z.string().regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/, 'a version is letters, digits, . + _ -'),
    description: z.string().optional(),
    createdAt: z.string().optional(),
    file: z.strictObject({ name: z.string().default('model.onnx'), sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits') }),
    input: z.strictObject({
      name: z.string(),
      dtype: z.literal('float32'),
      /** [batch, features]: the batch dimension is symbolic (a string) or -1. */
      shape: z.tuple([z.union([z.string().min(1), z.literal(-1)]), z.number().int().positive()]),
    }),
    features: z.array(featureSchema).min(1),
    outputs: z.array(z.strictObject({ name: z.string(), dtype: z.literal('float32'), shape: z.array(z.union([dim, z.literal(-1)])) })).min(1),
    output: outputSchema,
    latencyBudgetMs: z.number().positive(),
    errorModes: z.array(z.strictObject({ when: z.string(), effect: z.string() })).default([]),
    golden: z
      .array(z.strictObject({ input: z.array(finite), output: z.array(finite), tolerance: z.number().nonnegative().default(1e-4) }))
      .min(1),
    baseline: z.strictObject({
      rows: z.number().int().positive(),
      features: z.record(z.string(), featureBaselineSchema),
      predictions: z.record(z.string(), finite).optional(),
    }),
    signature: z.strictObject({ keyId: z.string(), ed25519: z.string() }).optional(),
  })
  .superRefine((m, ctx) => {
    const n = m.features.length;
    if (m.input.shape[1] !== n) {
      ctx.addIssue({ code: 'custom', path: ['input', 'shape', 1], message: `must equal the number of features (${n})` });
    }
    const names = new Set<string>();
    m.features.forEach((f, i) => {
      if (names.has(f.name)) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `duplicate feature "${f.name}"` });
      names.add(f.name);
      if (!(f.min < f.max)) ctx.addIssue({ code: 'custom', path: ['features', i], message: `min (${f.min}) must be below max (${f.max})` });
      if (!m.baseline.features[f.name]) ctx.addIssue({ code: 'custom', path: ['baseline', 'features'], message: `no baseline for feature "${f.name}"` });
    });
    if (!m.outputs.some((o) => o.name === m.output.tensor)) {
      ctx.addIssue({ code: 'custom', path: ['output', 'tensor'], message: `"${m.output.tensor}" is not one of outputs[].name` });
    }
    const width = outputWidth(m.output);
    m.golden.forEach((g, i) => {
      if (g.input.length !== n) ctx.addIssue({ code: 'custom', path: ['golden', i, 'input'], message: `has ${g.input.length} values, the model takes ${n}` });
      if (g.output.length !== width) ctx.addIssue({ code: 'custom', path: ['golden', i, 'output'], message: `has ${g.output.length} values, the output has ${width}` });
    });
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type OutputSpec = Manifest['output'];

/** How many numbers one row of the interpreted output tensor holds. */
export function outputWidth(o: OutputSpec): number {
  return o.kind === 'classification' ? o.labels.length : 1;
}

export function parseManifest(text: string, where: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: not valid JSON (${(err as Error).message})`);
  }
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const details = formatZodIssues(result.error.issues, json);
    throw new EdgeError('EDGE_ERR_MANIFEST', `${where}: invalid manifest\n  ${details.join('\n  ')}`, { details });
  }
  return result.data;
}

export function readManifest(versionDir: string): Manifest {
  const path = join(versionDir, 'manifest.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new EdgeError('EDGE_ERR_MANIFEST', `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseManifest(text, path);
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
