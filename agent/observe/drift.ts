// Drift and data quality (observe side): takes committed batches ("batch committed", never the per-message
// path) and each model's training baseline from its manifest; gives, per model version, the PSI of every
// input feature and of the predicted labels over a rolling window against that baseline, the share of
// window values outside the training range, the dead letters' shares by reason, and a log line when a
// figure crosses its threshold and when it clears.

import { z } from 'zod';
import type { Manifest } from '../../models/manifest.js';
import type { CommittedBatch } from '../infer/predict.js';
import { createRateLimitedLog, type Logger } from '../log.js';

export const driftOptionsSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /**
     * Predictions per model in the rolling window. PSI's sampling noise on a 10-bin histogram is about
     * 9 / windowRows (a chi-square with 9 degrees of freedom over n): ~0.01 at 1000, far below the 0.1 at
     * which a warning clears, so a line that has not drifted does not warn; and 1000 rows cost
     * 10 bytes per feature each.
     */
    windowRows: z.number().int().min(20).max(100_000).default(1000),
    /** Predictions in the window before a PSI is reported (below this, its noise is too large to judge). */
    minRows: z.number().int().min(10).default(500),
    /**
     * PSI of a feature above which it warns. The rule of thumb comes from credit-risk scorecard monitoring
     * (Siddiqi, "Credit Risk Scorecards", 2006): below 0.1 stable, 0.1–0.25 some shift, above 0.25 a major
     * one; 0.2 is the usual single "look at it" line in model monitoring.
     */
    psiWarn: z.number().positive().default(0.2),
    /** A warned feature clears below this (hysteresis: a PSI hovering at psiWarn logs once, not at every batch). */
    psiClear: z.number().nonnegative().default(0.1),
    /** The same pair for the predicted labels' shares against the baseline's. */
    predictionPsiWarn: z.number().positive().default(0.2),
    predictionPsiClear: z.number().nonnegative().default(0.1),
  })
  .superRefine((o, ctx) => {
    if (o.minRows > o.windowRows) ctx.addIssue({ code: 'custom', path: ['minRows'], message: `at most drift.windowRows (${o.windowRows})` });
    if (o.psiClear >= o.psiWarn) ctx.addIssue({ code: 'custom', path: ['psiClear'], message: `below drift.psiWarn (${o.psiWarn})` });
    if (o.predictionPsiClear >= o.predictionPsiWarn) ctx.addIssue({ code: 'custom', path: ['predictionPsiClear'], message: `below drift.predictionPsiWarn (${o.predictionPsiWarn})` });
  })
  .prefault({});

export type DriftOptions = z.infer<typeof driftOptionsSchema>;

/**
 * The floor under every share before PSI takes its logarithm, so an empty bin gives a finite figure: a
 * window wholly in a bin the baseline never saw gives (1 − 1e-4)·ln(1e4) ≈ 9.2, clearly over any threshold.
 * The same floor as probation's label PSI (models/probation.ts), so the two figures agree.
 */
export const PSI_EPSILON = 1e-4;

/** Population stability index Σ (o − e)·ln(o / e) of observed against expected counts, each turned into shares. */
export function psi(expected: ArrayLike<number>, observed: ArrayLike<number>): number {
  let et = 0;
  let ot = 0;
  for (let b = 0; b < expected.length; b++) et += expected[b] as number;
  for (let b = 0; b < observed.length; b++) ot += observed[b] as number;
  if (!et || !ot) return 0;
  let sum = 0;
  for (let b = 0; b < expected.length; b++) {
    const e = Math.max((expected[b] as number) / et, PSI_EPSILON);
    const o = Math.max(((observed[b] as number | undefined) ?? 0) / ot, PSI_EPSILON);
    sum += (o - e) * Math.log(o / e);
  }
  return sum;
}

/** The baseline bin of `x`: [edges[b], edges[b+1]), below the first edge in the first bin, from the last interior edge on in the last (as models/baseline.ts counts). */
export function binOf(edges: ArrayLike<number>, x: number): number {
  let lo = 1;
  let hi = edges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((edges[mid] as number) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export interface FeatureDrift {
  name: string;
  /** null until the window holds minRows predictions. */
  psi: number | null;
  rows: number;
  /** Share of the window's values outside the training range (the baseline's min/max; values outside the manifest's valid range are REJECT_OUT_OF_RANGE dead letters). */
  outOfRangeShare: number | null;
  mean: number | null;
  baselineMean: number;
  over: boolean;
}

export interface ModelDrift {
  name: string;
  version: string;
  /** false: the manifest has no (usable) baseline; only the dead letters are watched. */
  available: boolean;
  /** Predictions in the window, and its length (drift.windowRows unless shortened for a model with very many features). */
  rows: number;
  windowRows: number;
  features: FeatureDrift[];
  /** null for a model without labels (regression) or a baseline without predicted shares. */
  predictions: { psi: number | null; shares: Record<string, number>; baseline: Record<string, number>; over: boolean } | null;
  /** The window of messages (predictions and dead letters): dead letters' share, and each reason's share of all messages. */
  deadLetters: { messages: number; share: number; byReason: Record<string, number> };
  over: { features: string[]; predictions: boolean };
}

export interface DriftStatus {
  enabled: boolean;
  thresholds: { psiWarn: number; psiClear: number; predictionPsiWarn: number; predictionPsiClear: number; minRows: number; windowRows: number };
  models: ModelDrift[];
}

export interface DriftMonitor {
  observe(batch: CommittedBatch): void;
  status(): DriftStatus;
}

/** One model version's window. */
interface Track {
  name: string;
  version: string;
  available: boolean;
  /** This version's window (windowRows, or fewer for a model with very many features: MAX_WINDOW_BYTES) and minRows. */
  w: number;
  minRows: number;
  /**
   * Threshold checks every 1 % of the window (and at status()): a crossing is seen within a few rows, and a
   * model with thousands of features does not take thousands of logarithms per one-row batch.
   */
  evalEvery: number;
  features: { name: string; edges: Float64Array; expected: Float64Array; counts: Uint32Array; min: number; max: number; baselineMean: number; out: number; sum: number; over: boolean }[];
  /** Per row and feature: bin index, high bit set when outside the training range. */
  bins: Uint16Array;
  values: Float64Array;
  labelIndex: Map<string, number>;
  labelNames: string[];
  labelExpected: Float64Array | null;
  labelRing: Int16Array;
  labelCounts: Uint32Array;
  predictionsOver: boolean;
  rows: number;
  head: number;
  sinceEval: number;
  sinceResum: number;
  /** The messages' window: 0 a prediction, k a dead letter of reasons[k − 1]. */
  messageRing: Uint16Array;
  messageRows: number;
  messageHead: number;
  reasons: string[];
  reasonCounts: number[];
}

/** The most one model version's window may take (10 bytes per feature and row): 6,700 features at 1000 rows. */
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;

/** The high bit of a row's bin index: the value is outside the training range (a histogram has at most 1024 bins: MANIFEST_LIMITS). */
const OUT = 0x8000;

export function createDriftMonitor(options: DriftOptions, deps: { log: Logger }): DriftMonitor {
  const { log } = deps;
  const tracks = new Map<string, Track>();
  const errorLog = createRateLimitedLog(60_000);

  function usable(m: Manifest): string | null {
    if (!m.baseline) return 'the model has no training baseline';
    for (const f of m.features) {
      const h = m.baseline.features[f.name]?.histogram;
      if (!h || h.counts.length !== h.edges.length - 1 || h.counts.every((c) => c === 0)) return `the baseline histogram of feature ${f.name} is not edges (n + 1) and counts (n, not all 0)`;
    }
    return null;
  }

  function trackFor(m: Manifest): Track {
    const old = tracks.get(m.name);
    if (old && old.version === m.version) return old;
    const problem = usable(m);
    if (problem) log.info({ model: m.name, version: m.version, problem }, 'drift unavailable for this model version');
    else if (old) log.info({ model: m.name, version: m.version, previous: old.version }, 'drift window reset for a new model version');
    const F = problem ? 0 : m.features.length;
    const W = Math.max(1, Math.min(options.windowRows, Math.floor(MAX_WINDOW_BYTES / (10 * Math.max(F, 1)))));
    if (W < options.windowRows) log.warn({ model: m.name, version: m.version, features: F, windowRows: W }, 'drift window shortened to bound its memory');
    const out = m.output;
    const labelNames = out.kind === 'classification' ? [...out.labels] : out.kind === 'score' ? [out.below, out.above] : [];
    const shares = m.baseline?.predictions;
    const t: Track = {
      name: m.name, version: m.version, available: !problem, w: W, minRows: Math.min(options.minRows, W), evalEvery: Math.max(1, Math.floor(W / 100)),
      features: problem ? [] : m.features.map((f) => {
        const b = (m.baseline as NonNullable<Manifest['baseline']>).features[f.name] as NonNullable<Manifest['baseline']>['features'][string];
        return { name: f.name, edges: Float64Array.from(b.histogram.edges), expected: Float64Array.from(b.histogram.counts), counts: new Uint32Array(b.histogram.counts.length), min: b.min, max: b.max, baselineMean: b.mean, out: 0, sum: 0, over: false };
      }),
      bins: new Uint16Array(W * F), values: new Float64Array(W * F),
      labelIndex: new Map(labelNames.map((l, i) => [l, i])), labelNames,
      labelExpected: !problem && shares && labelNames.length ? Float64Array.from(labelNames, (l) => shares[l] ?? 0) : null,
      labelRing: new Int16Array(W).fill(-1), labelCounts: new Uint32Array(labelNames.length), predictionsOver: false,
      rows: 0, head: 0, sinceEval: 0, sinceResum: 0,
      messageRing: new Uint16Array(W), messageRows: 0, messageHead: 0, reasons: [], reasonCounts: [],
    };
    tracks.set(m.name, t);
    return t;
  }

  function addRow(t: Track, features: readonly number[], label: string | null): void {
    const F = t.features.length;
    const W = t.w;
    const at = t.head * F;
    const full = t.rows === W;
    for (let f = 0; f < F; f++) {
      const s = t.features[f] as Track['features'][number];
      if (full) {
        const old = t.bins[at + f] as number;
        s.counts[old & ~OUT] = (s.counts[old & ~OUT] as number) - 1;
        if (old & OUT) s.out--;
        s.sum -= t.values[at + f] as number;
      }
      const x = features[f] as number;
      const outside = x < s.min || x > s.max;
      const b = binOf(s.edges, x);
      s.counts[b] = (s.counts[b] as number) + 1;
      if (outside) s.out++;
      s.sum += x;
      t.bins[at + f] = outside ? b | OUT : b;
      t.values[at + f] = x;
    }
    const was = t.labelRing[t.head] as number;
    if (full && was >= 0) t.labelCounts[was] = (t.labelCounts[was] as number) - 1;
    const li = label === null ? -1 : (t.labelIndex.get(label) ?? -1);
    t.labelRing[t.head] = li;
    if (li >= 0) t.labelCounts[li] = (t.labelCounts[li] as number) + 1;
    t.head = (t.head + 1) % W;
    if (!full) t.rows++;
    // Running sums gather rounding error as values come and go: add them up afresh once per window.
    if (++t.sinceResum >= W) {
      t.sinceResum = 0;
      for (let f = 0; f < F; f++) {
        let sum = 0;
        for (let r = 0; r < t.rows; r++) sum += t.values[r * F + f] as number;
        (t.features[f] as Track['features'][number]).sum = sum;
      }
    }
  }

  function addMessage(t: Track, reason: string | null): void {
    const W = t.w;
    let code = 0;
    if (reason !== null) {
      let k = t.reasons.indexOf(reason);
      if (k < 0) k = t.reasons.push(reason) - 1;
      code = k + 1;
    }
    if (t.messageRows === W) {
      const old = t.messageRing[t.messageHead] as number;
      if (old) t.reasonCounts[old - 1] = (t.reasonCounts[old - 1] ?? 0) - 1;
    } else {
      t.messageRows++;
    }
    t.messageRing[t.messageHead] = code;
    if (code) t.reasonCounts[code - 1] = (t.reasonCounts[code - 1] ?? 0) + 1;
    t.messageHead = (t.messageHead + 1) % W;
  }

  const featurePsi = (t: Track, s: Track['features'][number]) => (t.rows >= t.minRows ? psi(s.expected, s.counts) : null);
  const labelPsiOf = (t: Track) => (t.labelExpected && t.rows >= t.minRows ? psi(t.labelExpected, t.labelCounts) : null);

  /** Checks every figure against its thresholds; logs a crossing either way. */
  function evaluate(t: Track): void {
    t.sinceEval = 0;
    const where = { model: t.name, version: t.version, rows: t.rows };
    for (const s of t.features) {
      const p = featurePsi(t, s);
      if (p === null) continue;
      if (!s.over && p > options.psiWarn) {
        s.over = true;
        log.warn({ ...where, feature: s.name, psi: round(p), threshold: options.psiWarn, mean: round(s.sum / t.rows), baselineMean: s.baselineMean, outOfRangeShare: round(s.out / t.rows) }, 'input drift over threshold');
      } else if (s.over && p < options.psiClear) {
        s.over = false;
        log.info({ ...where, feature: s.name, psi: round(p), threshold: options.psiClear }, 'input drift back under threshold');
      }
    }
    const p = labelPsiOf(t);
    if (p === null) return;
    if (!t.predictionsOver && p > options.predictionPsiWarn) {
      t.predictionsOver = true;
      log.warn({ ...where, psi: round(p), threshold: options.predictionPsiWarn, shares: labelShares(t), baseline: baselineShares(t) }, 'prediction drift over threshold');
    } else if (t.predictionsOver && p < options.predictionPsiClear) {
      t.predictionsOver = false;
      log.info({ ...where, psi: round(p), threshold: options.predictionPsiClear, shares: labelShares(t) }, 'prediction drift back under threshold');
    }
  }

  const labelShares = (t: Track) => Object.fromEntries(t.labelNames.map((l, i) => [l, t.rows ? round((t.labelCounts[i] as number) / t.rows) : 0]));
  const baselineShares = (t: Track) => Object.fromEntries(t.labelNames.map((l, i) => [l, (t.labelExpected as Float64Array)[i] as number]));

  function observe(batch: CommittedBatch): void {
    // A windowed model's row is a window of samples, not one value per feature: not judged here yet.
    if (batch.model.manifest.input.window) return;
    try {
      const t = trackFor(batch.model.manifest);
      for (const d of batch.deadLetters) addMessage(t, d.reasonCode);
      for (const r of batch.predictions) {
        addMessage(t, null);
        if (t.available) addRow(t, r.features, r.label);
      }
      if (t.available && (t.sinceEval += batch.predictions.length) >= t.evalEvery) evaluate(t);
    } catch (err) {
      // A monitor must never stop the agent serving: its fault is logged, the batch is stored and published.
      errorLog('observe', (suppressed) => log.error({ err: (err as Error).message, suppressedSinceLast: suppressed }, 'drift monitor failed on a batch'));
    }
  }

  function modelStatus(t: Track): ModelDrift {
    if (t.available) evaluate(t);
    const dead = t.reasonCounts.reduce((a, b) => a + b, 0);
    return {
      name: t.name, version: t.version, available: t.available, rows: t.rows, windowRows: t.w,
      features: t.features.map((s) => {
        const p = featurePsi(t, s);
        return { name: s.name, psi: p === null ? null : round(p), rows: t.rows, outOfRangeShare: t.rows ? round(s.out / t.rows) : null, mean: t.rows ? round(s.sum / t.rows) : null, baselineMean: s.baselineMean, over: s.over };
      }),
      predictions: t.labelExpected ? { psi: ((p) => (p === null ? null : round(p)))(labelPsiOf(t)), shares: labelShares(t), baseline: baselineShares(t), over: t.predictionsOver } : null,
      deadLetters: {
        messages: t.messageRows,
        share: t.messageRows ? round(dead / t.messageRows) : 0,
        byReason: Object.fromEntries(t.reasons.flatMap((r, k) => ((t.reasonCounts[k] ?? 0) > 0 ? [[r, round((t.reasonCounts[k] as number) / t.messageRows)]] : []))),
      },
      over: { features: t.features.filter((s) => s.over).map((s) => s.name), predictions: t.predictionsOver },
    };
  }

  const thresholds = { psiWarn: options.psiWarn, psiClear: options.psiClear, predictionPsiWarn: options.predictionPsiWarn, predictionPsiClear: options.predictionPsiClear, minRows: options.minRows, windowRows: options.windowRows };
  if (!options.enabled) return { observe: () => undefined, status: () => ({ enabled: false, thresholds, models: [] }) };
  return { observe, status: () => ({ enabled: true, thresholds, models: [...tracks.values()].map(modelStatus) }) };
}

/** Figures to 4 decimals in logs and status: PSI's noise is far above that. */
const round = (x: number): number => Math.round(x * 1e4) / 1e4;
