// Ingest, data-quality gate: takes one row of raw values per asset in the manifest's feature order (as a
// payload style read them, with their ages when known) and the model's contract and training profile;
// gives the numbers the model gets plus the flags of what was imputed or let through, or the reject reason.
//
// Checks per value, in this order; the first that fails is the value's one reason:
//   missing (undefined) · wrong_type (not a number: string, boolean, null, object; a bigint counts as its
//   nearest double) · not_finite (NaN, ±Infinity, or beyond float32) · out_of_range (outside the manifest
//   feature's [min, max], the contract) · out_of_training_range (outside the baseline's [min, max]; opt-in)
//   · stale (age > maxAgeMs) · stuck (the same value stuckSamples rows in a row for the asset) ·
//   scale_change (the median of the asset's last scaleWindow values lies more than scaleSigmas training std
//   from the training mean; opt-in). No baseline in the manifest: no training-range and no scale checks.
// Policies, per feature: reject (the row is a dead letter with the reason's code, first failing feature in
// manifest order) · impute (the value is replaced by the configured number, or by the asset's last good
// value with 'last', the default; none yet -> rejected with the original reason) · flag (the value goes to
// the model as it is, with a flag) — except that `flag` never gives the model a value that is missing, not
// a number, not finite or outside the contract: those are imputed when the feature has an `impute` value,
// else rejected. Every value of every row is checked and updates the asset's state (stuck runs, scale
// windows, last good values), so one feature's state never depends on another's failures.
// Pure and synchronous; state per (asset, feature) in typed arrays allocated once per asset, at most
// maxAssets assets (a new one beyond that is refused with REJECT_LIMIT when a stateful check needs it).

import { EdgeError, type RejectReason } from '../errors.js';
import type { Manifest } from '../../models/manifest.js';
import { qualityDetail } from './quality-detail.js';
import {
  QUALITY_REASONS, QUALITY_REJECT_CODES, qualityProblems,
  type ActionCounts, type AssetCounts, type Judged, type QualityCounters, type QualityFlag, type QualityOptions, type QualityReason,
} from './quality-options.js';

export * from './quality-options.js';

const R_SOFT = 4; // reasons from out_of_training_range on: a value `flag` may let through
const R_STUCK = 6;
const R_SCALE = 7;
const P_REJECT = 0, P_IMPUTE = 1, P_FLAG = 2;
const A_REJECTED = 0, A_IMPUTED = 1, A_FLAGGED = 2;
const I_NONE = 0, I_NUMBER = 1, I_LAST = 2;
const NO_FLAGS: readonly QualityFlag[] = Object.freeze([]);

/** One asset's state, only for the features whose checks need it (slots), so memory follows the checks configured. */
interface AssetState {
  /** Per feature: last good value (NaN: none); only when a feature imputes 'last'. */
  good: Float64Array | null;
  /** Per stuck slot: last in-contract value and its run. */
  last: Float64Array | null;
  run: Int32Array | null;
  /** Per scale slot: ring head, ring fill, marks above, marks below the band; the ring of scaleWindow marks (1 above, -1 below, 0 within). */
  scale: Int32Array | null;
  ring: Int8Array | null;
  /** rows, rejected, imputed, flagged (perAsset). */
  counts: Float64Array;
}

/**
 * `sources[i]`: how a detail names where feature i came from (the JSON decoder passes `field "a.b"`, so a
 * rejection reads as today's); default `value`.
 */
export function createQualityGate(options: QualityOptions, manifest: Manifest, sources?: readonly string[]) {
  const problems = qualityProblems(options, manifest);
  if (problems.length) throw new EdgeError('EDGE_ERR_CONFIG_MODEL_MISMATCH', `quality options do not fit model ${manifest.name} ${manifest.version}\n  ${problems.join('\n  ')}`, { details: problems });
  const feats = manifest.features;
  const n = feats.length;
  const names = feats.map((f) => f.name);
  const src = names.map((_, i) => sources?.[i] ?? 'value');
  const min = Float64Array.from(feats, (f) => f.min);
  const max = Float64Array.from(feats, (f) => f.max);
  const bmin = new Float64Array(n).fill(-Infinity);
  const bmax = new Float64Array(n).fill(Infinity);
  const maxAge = new Float64Array(n).fill(Infinity);
  const stuckN = new Int32Array(n);
  const scaleOn = new Uint8Array(n);
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  const policy = new Uint8Array(n);
  const imputeKind = new Uint8Array(n);
  const imputeValue = new Float64Array(n);
  const checks: Record<string, QualityReason[]> = {};
  for (let i = 0; i < n; i++) {
    const name = names[i] as string;
    const o = options.features[name] ?? {};
    const p = o.policy ?? options.policy;
    policy[i] = p === 'reject' ? P_REJECT : p === 'impute' ? P_IMPUTE : P_FLAG;
    const imp = o.impute ?? (p === 'impute' ? 'last' : undefined);
    imputeKind[i] = p === 'reject' || imp === undefined ? I_NONE : imp === 'last' ? I_LAST : I_NUMBER;
    imputeValue[i] = typeof imp === 'number' ? imp : Number.NaN;
    maxAge[i] = o.maxAgeMs ?? options.maxAgeMs ?? Infinity;
    stuckN[i] = o.stuckSamples ?? options.stuckSamples;
    const b = manifest.baseline?.features[name];
    if (b && (o.trainingRange ?? options.trainingRange)) {
      bmin[i] = b.min;
      bmax[i] = b.max;
    }
    // A feature constant in training has no spread to measure a scale against: the training range covers it.
    if (b && b.std > 0 && (o.scale ?? options.scale)) {
      scaleOn[i] = 1;
      lo[i] = b.mean - options.scaleSigmas * b.std;
      hi[i] = b.mean + options.scaleSigmas * b.std;
    }
    checks[name] = QUALITY_REASONS.filter((r, k) => k < R_SOFT
      || (r === 'out_of_training_range' && bmin[i] !== -Infinity) || (r === 'stale' && maxAge[i] !== Infinity)
      || (r === 'stuck' && (stuckN[i] as number) > 0) || (r === 'scale_change' && scaleOn[i] === 1));
  }
  const w = options.scaleWindow;
  const stuckSlot = new Int32Array(n).fill(-1);
  const scaleSlot = new Int32Array(n).fill(-1);
  let nStuck = 0;
  let nScale = 0;
  for (let i = 0; i < n; i++) {
    if ((stuckN[i] as number) > 0) stuckSlot[i] = nStuck++;
    if (scaleOn[i]) scaleSlot[i] = nScale++;
  }
  const anyLast = imputeKind.includes(I_LAST);
  /** A check needs the asset's state: beyond maxAssets such an asset is refused, not judged without it. */
  const needState = nScale > 0 || nStuck > 0 || anyLast;
  const tracked = needState || options.perAsset;
  const assets = new Map<string, AssetState>();
  const newState = (): AssetState => ({
    good: anyLast ? new Float64Array(n).fill(Number.NaN) : null,
    last: nStuck ? new Float64Array(nStuck) : null,
    run: nStuck ? new Int32Array(nStuck) : null,
    scale: nScale ? new Int32Array(4 * nScale) : null,
    ring: nScale ? new Int8Array(nScale * w) : null,
    counts: new Float64Array(4),
  });
  const other = newState();
  let refusedAssets = 0;
  // Counters: rows, passed, rowsWithImputed, rowsWithFlagged; rows rejected by code; findings by feature × reason × action.
  const rowCounts = new Float64Array(4);
  const rejectedBy = new Map<RejectReason, number>();
  const findings = new Float64Array(n * 8 * 3);
  // Scratch of one row's findings: feature index, reason, action.
  const fFeat = new Int32Array(n);
  const fReason = new Uint8Array(n);
  const fAction = new Uint8Array(n);

  function reject(st: AssetState, code: RejectReason, detail: string): Judged {
    rejectedBy.set(code, (rejectedBy.get(code) ?? 0) + 1);
    st.counts[1]!++;
    return { ok: false, code, detail };
  }

  function judge(asset: string, raw: readonly unknown[], ages: readonly (number | undefined)[] | null): Judged {
    rowCounts[0]!++;
    let st = other;
    if (tracked) {
      const found = assets.get(asset);
      if (found) st = found;
      else if (assets.size < options.maxAssets) assets.set(asset, (st = newState()));
      else if (needState) {
        refusedAssets++;
        st.counts[0]!++;
        return reject(st, 'REJECT_LIMIT', `asset ${JSON.stringify(asset)}: the quality gate already keeps state for ${options.maxAssets} assets (quality.maxAssets)`);
      }
    }
    st.counts[0]!++;
    const { good, last, run, scale, ring } = st;
    const values = new Array<number>(n);
    let found = 0;
    let firstReject = -1;
    let noLast = false;
    for (let i = 0; i < n; i++) {
      const v = raw[i];
      let reason = -1;
      let x = Number.NaN;
      if (v === undefined) reason = 0;
      else if (typeof v === 'number') x = v;
      else if (typeof v === 'bigint') x = Number(v);
      else reason = 1;
      if (reason < 0) {
        if (!Number.isFinite(x) || !Number.isFinite(Math.fround(x))) reason = 2;
        else if (x < (min[i] as number) || x > (max[i] as number)) reason = 3;
        else {
          // In-contract values are observations: they move the stuck run and the scale window whatever else is wrong.
          let stuck = false;
          let scaled = false;
          const k = stuckSlot[i] as number;
          if (k >= 0 && last && run) {
            const r = run[k] as number;
            run[k] = r > 0 && last[k] === x ? r + 1 : 1;
            last[k] = x;
            stuck = (run[k] as number) >= (stuckN[i] as number);
          }
          const j = scaleSlot[i] as number;
          if (j >= 0 && scale && ring) {
            const b = j * 4;
            const head = scale[b] as number;
            const mark = x > (hi[i] as number) ? 1 : x < (lo[i] as number) ? -1 : 0;
            if ((scale[b + 1] as number) === w) {
              const old = ring[j * w + head] as number;
              if (old > 0) scale[b + 2]!--;
              else if (old < 0) scale[b + 3]!--;
            } else scale[b + 1]!++;
            ring[j * w + head] = mark;
            if (mark > 0) scale[b + 2]!++;
            else if (mark < 0) scale[b + 3]!++;
            scale[b] = head + 1 === w ? 0 : head + 1;
            // Over half of the full window beyond the band on one side: the median (both middle values, for an even window) is beyond it.
            scaled = (scale[b + 1] as number) === w && (2 * (scale[b + 2] as number) > w || 2 * (scale[b + 3] as number) > w);
          }
          const age = ages === null ? undefined : ages[i];
          if (x < (bmin[i] as number) || x > (bmax[i] as number)) reason = 4;
          else if (age !== undefined && age > (maxAge[i] as number)) reason = 5;
          else if (stuck) reason = R_STUCK;
          else if (scaled) reason = R_SCALE;
        }
      }
      if (reason < 0) {
        values[i] = x;
        if (good) good[i] = x;
        continue;
      }
      const p = policy[i] as number;
      let action = A_IMPUTED;
      if (p === P_REJECT || (p === P_FLAG && reason < R_SOFT && imputeKind[i] === I_NONE)) action = A_REJECTED;
      else if (p === P_FLAG && reason >= R_SOFT) action = A_FLAGGED;
      if (action === A_IMPUTED) {
        const y = imputeKind[i] === I_NUMBER ? (imputeValue[i] as number) : (good ? (good[i] as number) : Number.NaN);
        if (Number.isNaN(y)) {
          action = A_REJECTED;
          if (firstReject < 0) noLast = true;
        } else values[i] = y;
      } else if (action === A_FLAGGED) values[i] = x;
      if (action === A_REJECTED && firstReject < 0) firstReject = found;
      fFeat[found] = i;
      fReason[found] = reason;
      fAction[found] = action;
      found++;
    }
    if (firstReject >= 0) {
      for (let k = 0; k < found; k++) findings[((fFeat[k] as number) * 8 + (fReason[k] as number)) * 3 + A_REJECTED]!++;
      const i = fFeat[firstReject] as number;
      const r = QUALITY_REASONS[fReason[firstReject] as number] as QualityReason;
      const b = manifest.baseline?.features[names[i] as string];
      const above = scale !== null && (scaleSlot[i] as number) >= 0 && 2 * (scale[(scaleSlot[i] as number) * 4 + 2] as number) > w;
      const detail = qualityDetail(r, names[i] as string, src[i] as string, raw[i], {
        min: min[i] as number, max: max[i] as number, bmin: bmin[i] as number, bmax: bmax[i] as number,
        age: ages?.[i], maxAgeMs: maxAge[i] as number, run: run?.[stuckSlot[i] as number] ?? 0, stuckSamples: stuckN[i] as number,
        above, bound: above ? (hi[i] as number) : (lo[i] as number),
        mean: b?.mean ?? Number.NaN, std: b?.std ?? Number.NaN, window: w, sigmas: options.scaleSigmas,
      });
      return reject(st, QUALITY_REJECT_CODES[r], noLast ? `${detail}; no last good value to impute yet` : detail);
    }
    rowCounts[1]!++;
    if (found === 0) return { ok: true, values, flags: NO_FLAGS };
    const flags: QualityFlag[] = [];
    let imputed = 0;
    for (let k = 0; k < found; k++) {
      const i = fFeat[k] as number;
      const action = fAction[k] as number;
      findings[(i * 8 + (fReason[k] as number)) * 3 + action]!++;
      const v = raw[i];
      const flag: QualityFlag = { feature: names[i] as string, reason: QUALITY_REASONS[fReason[k] as number] as QualityReason, action: action === A_IMPUTED ? 'imputed' : 'flagged' };
      if (typeof v === 'number' && Number.isFinite(v)) flag.value = v;
      flags.push(flag);
      if (action === A_IMPUTED) imputed++;
    }
    st.counts[2]! += imputed;
    st.counts[3]! += found - imputed;
    if (imputed) rowCounts[2]!++;
    if (imputed < found) rowCounts[3]!++;
    return { ok: true, values, flags };
  }

  const assetCounts = (c: Float64Array): AssetCounts => ({ rows: c[0] as number, rejected: c[1] as number, imputed: c[2] as number, flagged: c[3] as number });

  return {
    judge,
    /** Drop an asset's state (its node or device died, or it left the line): frees its place under maxAssets. */
    forget(asset: string): boolean {
      return assets.delete(asset);
    },
    /** Per feature, the checks that apply (a baseline-less manifest has no training-range or scale checks). */
    checks: checks as Readonly<Record<string, readonly QualityReason[]>>,
    get assets(): number {
      return assets.size;
    },
    /** A snapshot, built when read (judge() only adds to typed arrays). */
    get counters(): QualityCounters {
      const features: QualityCounters['features'] = {};
      for (let i = 0; i < n; i++) {
        const byReason: Partial<Record<QualityReason, ActionCounts>> = {};
        for (let r = 0; r < 8; r++) {
          const b = (i * 8 + r) * 3;
          const c = { rejected: findings[b] as number, imputed: findings[b + 1] as number, flagged: findings[b + 2] as number };
          if (c.rejected || c.imputed || c.flagged) byReason[QUALITY_REASONS[r] as QualityReason] = c;
        }
        features[names[i] as string] = byReason;
      }
      const out: QualityCounters = {
        rows: rowCounts[0] as number, passed: rowCounts[1] as number, rowsWithImputed: rowCounts[2] as number, rowsWithFlagged: rowCounts[3] as number,
        rejected: Object.fromEntries(rejectedBy), features, assets: assets.size, refusedAssets,
      };
      if (options.perAsset) {
        out.byAsset = {};
        for (const [a, s] of assets) out.byAsset[a] = assetCounts(s.counts);
        out.otherAssets = assetCounts(other.counts);
      }
      return out;
    },
  };
}

export type QualityGate = ReturnType<typeof createQualityGate>;
