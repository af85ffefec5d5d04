// Ingest, data-quality gate: its options (zod, the config's `quality` keys), reasons, reject codes,
// flags and counters, and the check of the options against a model's manifest (unknown features, impute
// values outside the contract). The gate itself is quality.ts.

import { z } from 'zod';
import type { RejectReason } from '../errors.js';
import type { Manifest } from '../../models/manifest.js';

const policySchema = z.enum(['reject', 'impute', 'flag']);
export type QualityPolicy = z.infer<typeof policySchema>;

const stuckSchema = z
  .number()
  .int()
  .min(0)
  .max(1_000_000)
  .refine((n) => n !== 1, '0 (off) or at least 2: one sample is always "the same value once"');

const featureQualitySchema = z.strictObject({
  /** This feature's policy, instead of the gate's. */
  policy: policySchema.optional(),
  /**
   * What replaces a bad value when it is imputed: a number (within the feature's contract [min, max]) or
   * 'last', the asset's last value that passed every check. Default 'last' under `impute`; under `flag`
   * only a value configured here is imputed (for the reasons `flag` cannot let through); ignored under `reject`.
   */
  impute: z.union([z.number().finite(), z.literal('last')]).optional(),
  /** Oldest acceptable age of the value, in ms (tags joined per asset, Sparkplug B); instead of the gate's. */
  maxAgeMs: z.number().int().positive().optional(),
  /** Instead of the gate's stuckSamples. */
  stuckSamples: stuckSchema.optional(),
  /** Instead of the gate's `scale`. */
  scale: z.boolean().optional(),
  /** Instead of the gate's `trainingRange`. */
  trainingRange: z.boolean().optional(),
});

export const qualityOptionsSchema = z
  .strictObject({
    /** What happens to a value that fails a check: reject the row, impute the value, or flag it and go on. */
    policy: policySchema.default('reject'),
    /** Per model feature (by name): overrides of the keys below. */
    features: z.record(z.string(), featureQualitySchema).default({}),
    /** Check values against the training range (the manifest baseline's min and max). Off by default: rows outside it are served today. */
    trainingRange: z.boolean().default(false),
    /** Oldest acceptable age of a value in ms, when the style knows ages (tags, Sparkplug B). Absent: no age check. */
    maxAgeMs: z.number().int().positive().optional(),
    /**
     * A value repeated this many rows in a row for an asset is stuck (a frozen sensor or gateway); 0 = off.
     * Every in-contract value counts, in rows rejected for other features too; a missing or unreadable
     * value leaves the run as it was. Rows, not samples: a joined tag that updates more slowly than its
     * trigger repeats its latest value in each row.
     */
    stuckSamples: stuckSchema.default(0),
    /**
     * Watch for a unit or scale change (°F where °C was trained): a value is a scale change when the median
     * of the asset's last `scaleWindow` in-contract values of the feature lies more than `scaleSigmas`
     * training std from the training mean, i.e. more than half of them lie beyond mean ± scaleSigmas·std on
     * the same side (for an even window, both middle values). Judged once the window is full; needs the
     * manifest's baseline; a feature with std 0 in training is not watched (the training range covers it).
     */
    scale: z.boolean().default(false),
    /** How far, in training standard deviations, the recent median may sit from the training mean. */
    scaleSigmas: z.number().positive().max(1e6).default(6),
    /** How many recent values of an asset's feature the median is taken over; the check waits until it is full. */
    scaleWindow: z.number().int().min(3).max(1000).default(20),
    /** Assets the gate keeps state for (stuck runs, scale windows, last good values, per-asset counters). */
    maxAssets: z.number().int().positive().max(1_000_000).default(10_000),
    /** Count per asset too (rows, rejected rows, imputed and flagged values; at most maxAssets assets). */
    perAsset: z.boolean().default(false),
  })
  .prefault({});

export type QualityOptions = z.infer<typeof qualityOptionsSchema>;

export const QUALITY_REASONS = ['missing', 'wrong_type', 'not_finite', 'out_of_range', 'out_of_training_range', 'stale', 'stuck', 'scale_change'] as const;
export type QualityReason = (typeof QUALITY_REASONS)[number];
/** The dead-letter code of each reason, in QUALITY_REASONS order. */
export const QUALITY_REJECT_CODES = {
  missing: 'REJECT_MISSING_FIELD',
  wrong_type: 'REJECT_WRONG_TYPE',
  not_finite: 'REJECT_NOT_FINITE',
  out_of_range: 'REJECT_OUT_OF_RANGE',
  out_of_training_range: 'REJECT_OUT_OF_TRAINING_RANGE',
  stale: 'REJECT_STALE',
  stuck: 'REJECT_STUCK',
  scale_change: 'REJECT_SCALE_CHANGE',
} as const satisfies Record<QualityReason, RejectReason>;

/** One imputed or flagged value of a row that went to the model. `value`: the value received, when it was a finite number. */
export interface QualityFlag { feature: string; reason: QualityReason; action: 'imputed' | 'flagged'; value?: number }

export type Judged =
  | { ok: true; values: number[]; flags: readonly QualityFlag[] }
  | { ok: false; code: RejectReason; detail: string };

export interface ActionCounts { rejected: number; imputed: number; flagged: number }
export interface AssetCounts { rows: number; rejected: number; imputed: number; flagged: number }
export interface QualityCounters {
  /** Rows judged; passed = clean + with flags; rejected by code (REJECT_LIMIT included). */
  rows: number;
  passed: number;
  rowsWithImputed: number;
  rowsWithFlagged: number;
  rejected: Partial<Record<RejectReason, number>>;
  /** Values found bad, by feature and reason, by what happened: imputed or flagged (the row went to the model), or rejected (the row became a dead letter, by this or another feature). Only what occurred. */
  features: Record<string, Partial<Record<QualityReason, ActionCounts>>>;
  assets: number;
  refusedAssets: number;
  /** perAsset only: per tracked asset; `otherAssets` sums the rows of assets beyond maxAssets (refused, or judged without state when no check needs it). */
  byAsset?: Record<string, AssetCounts>;
  otherAssets?: AssetCounts;
}

/** Problems of the options against the model: unknown feature names, impute values outside the contract. */
export function qualityProblems(options: QualityOptions, manifest: Manifest, at = 'quality'): string[] {
  const byName = new Map(manifest.features.map((f) => [f.name, f]));
  const problems: string[] = [];
  for (const [name, o] of Object.entries(options.features)) {
    const f = byName.get(name);
    if (!f) problems.push(`${at}.features.${name}: got options for "${name}" — expected one of the model's features: ${[...byName.keys()].join(', ')}`);
    else if (typeof o.impute === 'number' && (o.impute < f.min || o.impute > f.max)) {
      problems.push(`${at}.features.${name}.impute: got ${o.impute} — expected a value within the feature's valid range [${f.min}, ${f.max}]`);
    }
  }
  return problems;
}
