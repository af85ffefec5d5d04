// Probation: takes the committed batches of a freshly activated version (the "batch committed" event);
// gives a verdict once it has served enough predictions: committed, or failed with the reason, which
// makes the agent roll back to the previous version by itself. It watches what a bad model does on a
// real line: failed batches, NaN or infinite outputs, a p99 batch time over the manifest's budget, and
// predicted labels far from the training baseline's shares.

import { z } from 'zod';
import type { CommittedBatch } from '../agent/infer/predict.js';

export const probationOptionsSchema = z
  .strictObject({
    /** Predictions (and dead letters of the model's making) before a version is committed. 0: no probation. */
    predictions: z.number().int().nonnegative().default(500),
    /** Longest probation: a version still serving after this long is committed on what it has served. */
    maxMinutes: z.number().positive().default(60),
    /** Share of readings the model failed on or gave a NaN/infinite output for, above which it fails. */
    maxBadShare: z.number().min(0).max(1).default(0.01),
    /**
     * PSI of the predicted labels against the training baseline's shares above which it fails. Off by
     * default: a healthy line predicts "healthy" far more often than balanced training data did, and a
     * good model must not be rolled back for that. Set it where the line's traffic resembles training.
     */
    maxLabelPsi: z.number().positive().nullable().default(null),
  })
  .prefault({});

export type ProbationOptions = z.infer<typeof probationOptionsSchema>;

export type Verdict = { ok: true; summary: string } | { ok: false; reason: string };

const BAD = new Set(['REJECT_INFERENCE_FAILED', 'REJECT_NONFINITE_OUTPUT']);

/** Population stability index of observed label counts against expected shares (a floor keeps empty bins finite). */
export function labelPsi(counts: Record<string, number>, expected: Record<string, number>): number {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (!total) return 0;
  let psi = 0;
  for (const label of Object.keys(expected)) {
    const e = Math.max(expected[label] ?? 0, 1e-4);
    const o = Math.max((counts[label] ?? 0) / total, 1e-4);
    psi += (o - e) * Math.log(o / e);
  }
  return psi;
}

/** Watches one version; `observe` gives a verdict when probation ends, null while it goes on. */
export function createProbation(options: ProbationOptions, budgetMs: number, baseline: Record<string, number> | undefined, startedAt = performance.now()) {
  let good = 0;
  let bad = 0;
  const badReasons: Record<string, number> = {};
  const labels: Record<string, number> = {};
  const batchMs: number[] = [];
  let done = false;

  function verdict(final: boolean): Verdict | null {
    const seen = good + bad;
    if (seen === 0 && !final) return null;
    const badShare = seen ? bad / seen : 0;
    if (badShare > options.maxBadShare && (seen >= 20 || final || bad >= 5)) {
      return { ok: false, reason: `${bad} of ${seen} readings failed or gave NaN/infinite outputs (${Object.entries(badReasons).map(([k, v]) => `${k} ${v}`).join(', ')}); the limit is ${options.maxBadShare * 100} %` };
    }
    if (seen < options.predictions && !final) return null;
    const sorted = [...batchMs].sort((a, b) => a - b);
    const p99 = sorted.length ? (sorted[Math.floor(0.99 * (sorted.length - 1))] as number) : 0;
    if (p99 > budgetMs) return { ok: false, reason: `batch time p99 ${p99.toFixed(2)} ms over the manifest's budget of ${budgetMs} ms` };
    const psi = baseline ? labelPsi(labels, baseline) : 0;
    if (options.maxLabelPsi !== null && psi > options.maxLabelPsi) return { ok: false, reason: `predicted labels ${JSON.stringify(labels)} are far from the training baseline ${JSON.stringify(baseline)} (PSI ${psi.toFixed(2)}, limit ${options.maxLabelPsi})` };
    return { ok: true, summary: `${seen} readings, ${bad} bad, batch p99 ${p99.toFixed(2)} ms, label PSI ${psi.toFixed(3)}` };
  }

  return {
    observe(b: CommittedBatch): Verdict | null {
      if (done) return null;
      good += b.predictions.length;
      for (const p of b.predictions) if (p.label !== null) labels[p.label] = (labels[p.label] ?? 0) + 1;
      for (const d of b.deadLetters) {
        if (!BAD.has(d.reasonCode)) continue;
        bad++;
        badReasons[d.reasonCode] = (badReasons[d.reasonCode] ?? 0) + 1;
      }
      if (b.modelMs > 0) batchMs.push(b.modelMs);
      const timeUp = performance.now() - startedAt > options.maxMinutes * 60_000;
      const v = verdict(timeUp);
      if (v) done = true;
      return v;
    },
  };
}
