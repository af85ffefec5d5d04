// Join (payload styles `tags` and `sparkplug`): takes samples of single tags (one per topic, or the few a
// Sparkplug DATA carries), in arrival order; gives one row per asset with the latest value of every model
// feature, when a trigger tag arrives or once per period. The rules (the README's "Tags on separate topics"):
// - Per (asset, feature): the current value, its ts, the handle (inbox message) it came from. A sample replaces
//   it only if its ts is newer; an older ts is `late`, the same ts a `duplicate` (QoS 1 redelivery): ignored,
//   counted apart. A non-finite ts cannot be ordered: late. A name neither feature nor trigger: `ignored`.
// - A message's samples are applied first, then its trigger samples make their rows (a row sees every value
//   its own message carried). The trigger need not be a feature (`cycle_end`); it has its own late/duplicate
//   check per asset, so a redelivered trigger makes no second row.
// - Trigger mode: row at = the trigger's ts, source = its handle. Period mode: periods of periodMs aligned on
//   the epoch; the first tick(now) in a new period makes a row (at = now) for each asset with a new value
//   since its last row, none for a quiet one; source = the newest value's handle. Tick at least once a period.
// - A row: values (a feature never seen is absent, listed in missing), ages = at - ts (negative when a value
//   is newer than the trigger), stale = present features older than their max age, used = every handle in it.
// - A handle is held while any of its samples is a current value; released (once) when all are superseded or
//   their asset is forgotten. One none of whose samples became current (late, duplicate, refused, ignored,
//   only the trigger) is released by the same call.
// - A value superseded or forgotten before any row used it: supersededUnused[feature] (acknowledged, never seen
//   by the model). A new asset beyond maxAssets: refused (in `refused`, counted once per message).
// - restore (replay of a message already consumed, after a restart): state only, no rows, no counters.
//   Restored values count as already in a row (whether one used them is not known: a trigger that is not a
//   feature was released): supersededUnused never over-counts after a restart, and in period mode an asset
//   makes its next row once a new value arrives.
// - take() and tick() reuse their result for the next call of the same function: read it, copy what you keep
//   (rows are new objects). A handle is given to take() once.

import { z } from 'zod';
import type { Sample } from './samples.js';

const msSchema = z.number().int().positive();

export const joinOptionsSchema = z
  .strictObject({
    /** The tag whose arrival makes an asset's row (e.g. `cycle_end`); need not be a model feature. Exactly one of trigger / periodMs. */
    trigger: z.string().min(1).optional(),
    /** Instead of a trigger: a row every periodMs (periods aligned on the epoch) for each asset with a new value since its last row. */
    periodMs: msSchema.optional(),
    /** A value older than this when its row is made is listed as stale (the quality gate's maxAgeMs acts on it). */
    maxAgeMs: msSchema.default(60_000),
    /** Per-feature max ages overriding maxAgeMs (a slow tag such as a batch number may be hours old). */
    maxAgeMsByFeature: z.record(z.string(), msSchema).default({}),
    /** Assets held in memory at most; a new asset beyond this is refused (REJECT_LIMIT). Memory: one slot per feature per asset. */
    maxAssets: z.number().int().min(1).default(10_000),
  })
  .superRefine((o, ctx) => {
    if ((o.trigger === undefined) === (o.periodMs === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [o.trigger === undefined ? 'trigger' : 'periodMs'],
        message: 'exactly one of trigger (a tag whose arrival makes the row) and periodMs (a row per period) — got ' + (o.trigger === undefined ? 'neither' : 'both'),
      });
    }
  });

export type JoinOptions = z.infer<typeof joinOptionsSchema>;

export interface JoinedRow<H> {
  asset: string;
  /** The trigger's ts, or the tick's now (ms since epoch). */
  at: number;
  /** Latest value per feature; a feature never seen is absent. */
  values: Record<string, unknown>;
  /** at - the value's ts, per present feature. */
  ages: Record<string, number>;
  /** The same in the order of `features` given to createJoin (undefined = missing): what the quality gate's judge() takes. */
  valueList: unknown[];
  ageList: (number | undefined)[];
  /** Present features older than their max age at `at`. */
  stale: readonly string[];
  /** Features never seen for this asset. */
  missing: readonly string[];
  /** The trigger's handle, or the handle of the newest value (period). */
  source: H;
  /** Every handle whose value is in the row (and the trigger's). */
  used: H[];
}

/** Samples ignored as late / duplicate / not a feature or the trigger; values superseded unused, per feature; refusals; rows made. */
export interface JoinCounters { supersededUnused: Record<string, number>; late: number; duplicates: number; ignored: number; refusedAssets: number; rows: number }

export interface JoinTake<H> {
  readonly rows: readonly JoinedRow<H>[];
  readonly released: readonly H[];
  readonly refused: readonly { asset: string; reason: string }[];
}

export type JoinTick<H> = Omit<JoinTake<H>, 'refused'>;

/** Problems of join options against the model's features, each naming its key (`at`: where the block sits in the config). */
export function joinProblems(options: JoinOptions, features: readonly string[], at = 'join'): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(options.maxAgeMsByFeature)) {
    if (!features.includes(k)) problems.push(`${at}.maxAgeMsByFeature.${k}: got "${k}" — expected one of the model's features: ${features.join(', ')}`);
  }
  return problems;
}

/** Who holds a handle: refs = slots whose current value it gave. */
interface Holder<H> { handle: H; refs: number; mark: number }

interface AssetState<H> {
  name: string;
  values: unknown[];
  ts: Float64Array; // NaN: never seen
  holders: (Holder<H> | undefined)[];
  used: Uint8Array; // 1: the current value was in a row
  triggerTs: number; // the last trigger's ts when the trigger is not a feature
  fresh: boolean; // period mode: a new value since the last row
}

const NONE: readonly string[] = Object.freeze([]);

/** Empties a reused array; setting length is a runtime call in V8 even when it is 0 already (~30 % of take()'s own time in a profile). */
function clear(a: unknown[]): void {
  if (a.length !== 0) a.length = 0;
}

export function createJoin<H>(options: JoinOptions, features: readonly string[]) {
  const problems = joinProblems(options, features);
  if (problems.length) throw new Error(problems.join('; '));
  const n = features.length;
  const index = new Map(features.map((f, i) => [f, i] as const));
  const maxAge = Float64Array.from(features, (f) => options.maxAgeMsByFeature[f] ?? options.maxAgeMs);
  const trigger = options.trigger;
  const triggerIndex = trigger === undefined ? -2 : (index.get(trigger) ?? -1); // -1: trigger is not a feature
  const periodMs = options.periodMs ?? 0;
  const assets = new Map<string, AssetState<H>>();
  const counters: JoinCounters = { supersededUnused: Object.fromEntries(features.map((f) => [f, 0])), late: 0, duplicates: 0, ignored: 0, refusedAssets: 0, rows: 0 };
  let held = 0;
  let serial = 0;
  let lastPeriod = Number.NaN;
  const dirty: AssetState<H>[] = [];
  // Reused between calls (see the header): no allocation per tag message beyond the holder and the rows.
  const takeOut = { rows: [] as JoinedRow<H>[], released: [] as H[], refused: [] as { asset: string; reason: string }[] };
  const tickOut = { rows: [] as JoinedRow<H>[], released: [] as H[] };
  const pendingAsset: AssetState<H>[] = [];
  const pendingAt: number[] = [];

  function newAsset(name: string): AssetState<H> {
    return { name, values: new Array<unknown>(n).fill(undefined), ts: new Float64Array(n).fill(Number.NaN), holders: new Array<Holder<H> | undefined>(n).fill(undefined), used: new Uint8Array(n), triggerTs: Number.NaN, fresh: false };
  }

  function drop(h: Holder<H>, released: H[]): void {
    if (--h.refs === 0) {
      held--;
      released.push(h.handle);
    }
  }

  /** Whether ts is newer than the current one (NaN: none yet); counts it when not (unless restoring). */
  function newer(ts: number, current: number, restore: boolean): boolean {
    if (Number.isFinite(ts) && !(ts <= current)) return true;
    if (!restore) {
      if (ts === current) counters.duplicates++;
      else counters.late++;
    }
    return false;
  }

  function makeRow(st: AssetState<H>, at: number, source: H | undefined, sourceHolder: Holder<H> | undefined, restore: boolean): JoinedRow<H> | null {
    if (restore) return null;
    const mark = ++serial;
    const values: Record<string, unknown> = {};
    const ages: Record<string, number> = {};
    const valueList: unknown[] = [];
    const ageList: (number | undefined)[] = [];
    const used: H[] = [];
    let stale: string[] | null = null;
    let missing: string[] | null = null;
    let newest: Holder<H> | undefined;
    let newestTs = -Infinity;
    if (source !== undefined) used.push(source);
    if (sourceHolder) sourceHolder.mark = mark;
    for (let i = 0; i < n; i++) {
      const h = st.holders[i];
      const name = features[i] as string;
      if (!h) {
        (missing ??= []).push(name);
        valueList.push(undefined);
        ageList.push(undefined);
        continue;
      }
      const ts = st.ts[i] as number;
      const age = at - ts;
      values[name] = st.values[i];
      ages[name] = age;
      valueList.push(st.values[i]);
      ageList.push(age);
      if (age > (maxAge[i] as number)) (stale ??= []).push(name);
      st.used[i] = 1;
      if (h.mark !== mark) {
        h.mark = mark;
        used.push(h.handle);
      }
      if (ts > newestTs) {
        newestTs = ts;
        newest = h;
      }
    }
    counters.rows++;
    return { asset: st.name, at, values, ages, valueList, ageList, stale: stale ?? NONE, missing: missing ?? NONE, source: source ?? (newest as Holder<H>).handle, used };
  }

  function take(handle: H, samples: readonly Sample[], now: number, restore = false): JoinTake<H> {
    void now; // rows carry the samples' own times; kept in the signature so every style is called alike
    const out = takeOut;
    clear(out.rows);
    clear(out.released);
    clear(out.refused);
    let holder: Holder<H> | undefined;
    let st: AssetState<H> | undefined;
    let refusedName: string | undefined;
    for (let k = 0; k < samples.length; k++) {
      const s = samples[k] as Sample;
      const i = index.get(s.feature) ?? (s.feature === trigger ? -1 : -2);
      if (i === -2) {
        if (!restore) counters.ignored++;
        continue;
      }
      if (st === undefined || st.name !== s.asset) {
        st = assets.get(s.asset);
        if (st === undefined) {
          if (assets.size >= options.maxAssets) {
            if (refusedName !== s.asset && !restore) {
              refusedName = s.asset;
              counters.refusedAssets++;
              out.refused.push({ asset: s.asset, reason: `new asset "${s.asset}" beyond maxAssets (${options.maxAssets} assets held)` });
            }
            continue;
          }
          st = newAsset(s.asset);
          assets.set(s.asset, st);
        }
      }
      if (i >= 0) {
        const current = st.ts[i] as number;
        if (!newer(s.ts, current, restore)) continue;
        holder ??= { handle, refs: 0, mark: 0 };
        if (holder.refs++ === 0) held++;
        const previous = st.holders[i];
        if (previous) {
          if (!st.used[i] && !restore) (counters.supersededUnused[features[i] as string] as number)++;
          drop(previous, out.released);
        }
        st.values[i] = s.value;
        st.ts[i] = s.ts;
        st.holders[i] = holder;
        st.used[i] = restore ? 1 : 0;
        if (!st.fresh && !restore && triggerIndex === -2) {
          st.fresh = true;
          dirty.push(st);
        }
        if (i === triggerIndex) {
          pendingAsset.push(st);
          pendingAt.push(s.ts);
        }
      } else if (newer(s.ts, st.triggerTs, restore)) {
        st.triggerTs = s.ts;
        pendingAsset.push(st);
        pendingAt.push(s.ts);
      }
    }
    for (let k = 0; k < pendingAsset.length; k++) {
      const row = makeRow(pendingAsset[k] as AssetState<H>, pendingAt[k] as number, handle, holder, restore);
      if (row) out.rows.push(row);
    }
    clear(pendingAsset);
    clear(pendingAt);
    if (!holder) out.released.push(handle); // none of its samples became current
    return out;
  }

  function tick(now: number): JoinTick<H> {
    const out = tickOut;
    clear(out.rows);
    if (periodMs === 0) return out;
    const period = Math.floor(now / periodMs);
    if (period === lastPeriod) return out;
    lastPeriod = period;
    for (let k = 0; k < dirty.length; k++) {
      const st = dirty[k] as AssetState<H>;
      if (!st.fresh) continue; // forgotten since
      st.fresh = false;
      out.rows.push(makeRow(st, now, undefined, undefined, false) as JoinedRow<H>);
    }
    clear(dirty);
    return out;
  }

  function forget(asset: string): H[] {
    const st = assets.get(asset);
    const released: H[] = [];
    if (!st) return released;
    assets.delete(asset);
    st.fresh = false;
    for (let i = 0; i < n; i++) {
      const h = st.holders[i];
      if (!h) continue;
      if (!st.used[i]) (counters.supersededUnused[features[i] as string] as number)++;
      drop(h, released);
    }
    return released;
  }

  return {
    take,
    tick,
    forget,
    get assets() {
      return assets.size;
    },
    get held() {
      return held;
    },
    counters: counters as Readonly<JoinCounters>,
  };
}

export type Join<H> = ReturnType<typeof createJoin<H>>;
