// Ingest, data-quality gate: the dead letter's reason text for one bad value. Takes the reason, the
// feature, where its value came from and the limits it broke; gives one line naming the feature and the
// value. The texts of the first four reasons are those the JSON decoder gave before the gate existed.

import type { QualityReason } from './quality-options.js';

export interface DetailContext {
  min: number; max: number; bmin: number; bmax: number;
  age: number | undefined; maxAgeMs: number;
  run: number; stuckSamples: number;
  above: boolean; bound: number; mean: number; std: number; window: number; sigmas: number;
}

export function qualityDetail(reason: QualityReason, feature: string, source: string, v: unknown, c: DetailContext): string {
  const at = `feature ${feature}:`;
  switch (reason) {
    case 'missing':
      return `${at} ${source} is absent`;
    case 'wrong_type':
      return `${at} ${source} is ${v === null ? 'null' : typeof v}, expected a number`;
    case 'not_finite':
      return typeof v === 'number' && !Number.isFinite(v)
        ? `${at} ${source} is ${v}`
        : `${at} ${source} is ${String(v)}, beyond float32 (±3.4028234663852886e38)`;
    case 'out_of_range':
      return `${at} ${String(v)} is outside the valid range [${c.min}, ${c.max}]`;
    case 'out_of_training_range':
      return `${at} ${String(v)} is outside the training range [${c.bmin}, ${c.bmax}]`;
    case 'stale':
      return `${at} ${String(v)} is ${c.age} ms old, older than its maximum age of ${c.maxAgeMs} ms`;
    case 'stuck':
      return `${at} ${String(v)} came ${c.run} times in a row (stuckSamples ${c.stuckSamples}): a frozen sensor or gateway?`;
    case 'scale_change':
      return `${at} ${String(v)}; over half of the asset's last ${c.window} values lie ${c.above ? 'above' : 'below'} ${c.bound} `
        + `(training mean ${c.mean} ${c.above ? '+' : '−'} ${c.sigmas} × std ${c.std}): a unit or scale change?`;
  }
}
