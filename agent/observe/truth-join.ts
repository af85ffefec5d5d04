// Ground truth, the rules: takes recent predictions (from committed batches) and read label messages;
// gives which prediction each label joins (or why none), and accuracy / MAE per model version over the
// last N joined labels. Pure and in memory: truth.ts stores and schedules.

import type { LabelRow, RecentPrediction } from '../store/labels.js';
import type { ParsedLabel } from '../ingest/labels.js';

/**
 * The recent active predictions per key (asset) and model, oldest first, each list at most `perKey` long
 * and no older than `keepMs`. The join looks here rather than in the predictions table: a lookup by asset
 * and time there needs an index, which every prediction insert would pay for.
 */
export function createRecentPredictions(keepMs: number, perKey: number) {
  const byKey = new Map<string, Map<string, RecentPrediction[]>>();
  function prune(list: RecentPrediction[], now: number) {
    let drop = 0;
    while (drop < list.length && (list[drop] as RecentPrediction).receivedAt < now - keepMs) drop++;
    // In bulk once past half as much again: no shift() per prediction.
    if (list.length - drop > perKey * 1.5) drop = list.length - perKey;
    if (drop) list.splice(0, drop);
  }
  return {
    /** In the order they were committed. */
    add(p: RecentPrediction, now = Date.now()): void {
      let models = byKey.get(p.asset);
      if (!models) byKey.set(p.asset, (models = new Map()));
      let list = models.get(p.model);
      if (!list) models.set(p.model, (list = []));
      list.push(p);
      if (list.length > perKey * 1.5 || (list[0] as RecentPrediction).receivedAt < now - keepMs) prune(list, now);
    },
    /** Per model (or only `model`): the newest prediction for `key` received in [at - windowMs, at] (the one with the highest id among equals). */
    newest(key: string, at: number, windowMs: number, model: string | null): RecentPrediction[] {
      const models = byKey.get(key);
      if (!models) return [];
      const out: RecentPrediction[] = [];
      for (const [name, list] of models) {
        if (model !== null && name !== model) continue;
        let best: RecentPrediction | null = null;
        for (let i = list.length - 1; i >= 0; i--) {
          const p = list[i] as RecentPrediction;
          if (p.receivedAt > at || p.receivedAt < at - windowMs) continue;
          if (!best || p.receivedAt > best.receivedAt) best = p;
        }
        if (best) out.push(best);
      }
      return out;
    },
    /** Drops what is past keepMs everywhere (keys that went quiet). */
    sweep(now = Date.now()): void {
      for (const [key, models] of byKey) {
        for (const [name, list] of models) {
          prune(list, now);
          if (!list.length) models.delete(name);
        }
        if (!models.size) byKey.delete(key);
      }
    },
    get keys(): number {
      return byKey.size;
    },
  };
}

export type Verdict =
  | { joined: Omit<LabelRow, 'receivedAt' | 'topic' | 'dedupKey'>[] }
  | { code: 'REJECT_BAD_LABEL' | 'REJECT_UNMATCHED_LABEL'; detail: string };

/**
 * Which predictions a read label joins. `candidates`: per model, the newest prediction for its key within the
 * window (createRecentPredictions.newest). A prediction takes one label: `labelled` says which have one (in
 * the store or earlier in this pass); a label whose only candidates are labelled is unmatched.
 * Classification (the prediction has a label): correct when the measured outcome, as text, is the predicted
 * label. Regression (no label, a score or value): the outcome must be a number, or text that is one.
 */
export function judge(label: Extract<ParsedLabel, { ok: true }>, candidates: readonly RecentPrediction[], labelled: (id: number) => boolean, windowMs: number): Verdict {
  const free = candidates.filter((p) => !labelled(p.id));
  if (!free.length) {
    const when = new Date(label.at).toISOString();
    if (candidates.length) return { code: 'REJECT_UNMATCHED_LABEL', detail: `the newest prediction for key ${JSON.stringify(label.key)} within ${windowMs} ms before ${when} (id ${candidates.map((p) => p.id).join(', ')}) has a label already` };
    return { code: 'REJECT_UNMATCHED_LABEL', detail: `no prediction for key ${JSON.stringify(label.key)}${label.model ? ` by model ${label.model}` : ''} within ${windowMs} ms before ${when}` };
  }
  const joined: Extract<Verdict, { joined: unknown }>['joined'] = [];
  for (const p of free) {
    const base = { predictionId: p.id, modelName: p.model, modelVersion: p.version, joinKey: label.key, labelAt: label.at, predictedLabel: p.label, predictedScore: p.score };
    if (p.label !== null) {
      const outcome = String(label.outcome);
      joined.push({ ...base, outcome, value: null, correct: outcome === p.label ? 1 : 0, absError: null });
      continue;
    }
    const value = typeof label.outcome === 'number' ? label.outcome : label.outcome.trim() === '' ? NaN : Number(label.outcome);
    if (!Number.isFinite(value)) return { code: 'REJECT_BAD_LABEL', detail: `model ${p.model} is a regression: the outcome must be a number (got ${JSON.stringify(label.outcome).slice(0, 64)})` };
    if (p.score === null) continue; // no number to compare with (cannot happen for a stored prediction)
    joined.push({ ...base, outcome: String(value), value, correct: null, absError: Math.abs(p.score - value) });
  }
  return { joined };
}

export interface VersionTruth {
  model: string;
  version: string;
  kind: 'classification' | 'regression';
  /** Labels joined to this version's predictions (all time, from the store). */
  joined: number;
  /** How many of the last labels the figure is over (at most the rolling window). */
  window: number;
  /** Classification: share of the window's labels that were predicted right. */
  accuracy?: number;
  /** Regression: mean absolute error over the window. */
  mae?: number;
}

/** Accuracy or MAE per model version over the last `size` joined labels. */
export function createRolling(size: number) {
  const versions = new Map<string, { model: string; version: string; kind: VersionTruth['kind']; ring: number[]; next: number; joined: number }>();
  return {
    /** One joined label: `correct` (0/1) for classification, `absError` for regression. */
    add(model: string, version: string, r: { correct: number | null; absError: number | null }, countJoined = true): void {
      const id = `${model}\u0000${version}`;
      const kind = r.correct !== null ? 'classification' : 'regression';
      let v = versions.get(id);
      if (!v) versions.set(id, (v = { model, version, kind, ring: [], next: 0, joined: 0 }));
      const x = (r.correct ?? r.absError) as number;
      if (v.ring.length < size) v.ring.push(x);
      else {
        v.ring[v.next] = x;
        v.next = (v.next + 1) % size;
      }
      if (countJoined) v.joined++;
    },
    /** The total joined so far (from the store at start). */
    setJoined(model: string, version: string, n: number): void {
      const v = versions.get(`${model}\u0000${version}`);
      if (v) v.joined = n;
    },
    status(): VersionTruth[] {
      return [...versions.values()].map((v) => {
        // Summed from the ring when asked (a scrape, a command): a running sum of floats drifts over millions of labels.
        const mean = v.ring.length ? v.ring.reduce((a, b) => a + b, 0) / v.ring.length : 0;
        return { model: v.model, version: v.version, kind: v.kind, joined: v.joined, window: v.ring.length, ...(v.kind === 'classification' ? { accuracy: mean } : { mae: mean }) };
      });
    },
  };
}
