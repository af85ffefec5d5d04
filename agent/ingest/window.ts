// Ingest, sliding windows: takes each route's messages of signal samples in arrival order (payload:
// window-payload.ts) with an opaque handle per message; gives window rows (channels × length samples,
// channels first, oldest first) and which handles it holds or has let go. Pure and synchronous.
//
// Rules, per asset:
// - Order: a sample at or before the newest buffered timestamp is dropped: one whose timestamp is still in
//   the buffer is a duplicate (counters.duplicates: a message sent again), any other is out of order
//   (counters.outOfOrder). A message all of
//   whose samples are dropped is refused (REJECT_WINDOW_SAMPLES; the caller makes the dead letter).
// - Gaps: a step from the newest buffered sample to the next one larger than gapFactor × dt restarts the
//   asset's buffer (counters.gaps): a window never spans a gap. Samples that were in no window yet are
//   counted in counters.unusedSamples. Without a known dt (one-sample messages, no periodMs) there is no
//   gap rule.
// - Windows: once `length` samples are buffered, a window is made; then one every `hop` new samples. Its
//   `at` is its newest sample's timestamp, `source` the handle of the message that completed it, `used` every
//   handle with a sample in it.
// - Holding: a handle is held while any of its samples is in the buffer; it is released (in `released`,
//   once) when all of them have slid out, or when a gap restarts the buffer. A handle that is refused or
//   none of whose samples is buffered is released by the same call: every handle given to take() is either
//   held or released.
// - restore: true (replay after a restart of a message this route had consumed): the buffer is rebuilt the
//   same way, but no rows, no reject and no counts. The cadence then counts from the first replayed sample;
//   align(asset, lastWindowAt) puts it back where it was from the newest window made before the restart.
// - Limits: maxAssets buffers (a new asset beyond it is refused, REJECT_LIMIT, counters.refusedAssets), at
//   most `length` held handles per asset, maxSamplesPerMessage samples in a message.

import type { RejectReason } from '../errors.js';
import type { Manifest } from '../../models/manifest.js';
import { createSampleReader, type WindowOptions, type WindowShape } from './window-payload.js';

export { windowOptionsSchema, type WindowOptions, type WindowShape } from './window-payload.js';

export interface WindowRow<H> {
  asset: string;
  /** The newest sample's timestamp (ms since epoch). */
  at: number;
  /** channels × length float32 values, channels first, each channel oldest first: one model input row. */
  data: Float32Array;
  source: H;
  used: H[];
}

export interface TakeResult<H> {
  rows: WindowRow<H>[];
  released: H[];
  reject?: { code: RejectReason; detail: string };
  /** Samples of this message dropped as duplicates or out of order. */
  dropped: number;
}

export interface WindowCounters { outOfOrder: number; duplicates: number; gaps: number; windows: number; refusedAssets: number; unusedSamples: number }

/** The window a manifest's model takes, or null when it takes one value per feature. */
export function windowShapeOf(m: Manifest): WindowShape | null {
  const w = m.input.window;
  return w ? { length: w.length, channels: m.features.map((f) => ({ name: f.name, min: f.min, max: f.max })) } : null;
}

/** Checks window options against the model; gives the problems (config key, bad value, what is expected). */
export function windowProblems(options: WindowOptions, manifest: Manifest, at = 'windows'): string[] {
  const shape = windowShapeOf(manifest);
  if (!shape) return [`${at}: the model ${manifest.name} ${manifest.version} takes one value per feature (its manifest has no input.window) — expected a windowed model, or the json payload style`];
  const problems: string[] = [];
  const names = shape.channels.map((c) => c.name);
  if (options.signals.length !== names.length) {
    problems.push(`${at}.signals: got ${options.signals.length} signals — expected ${names.length}, one per model feature in order: ${names.join(', ')}`);
  }
  if (options.hop !== undefined && options.hop > shape.length) problems.push(`${at}.hop: got ${options.hop} — expected at most the model's window length ${shape.length}`);
  return problems;
}

interface AssetBuffer<H> {
  /** Ring of `length` samples per channel: values[c * length + slot]. */
  values: Float32Array;
  times: Float64Array;
  /** The slot the next sample goes to (the oldest one once full). */
  head: number;
  filled: number;
  /** Samples since the buffer (re)started: sample k has sequence number k. */
  total: number;
  /** `total` when the last window was made: samples before it are in a window. */
  usedUpTo: number;
  untilNext: number;
  newest: number;
  /** In sequence order: each held handle and the sequence number of its newest sample. */
  holds: { handle: H; last: number }[];
}

export function createWindows<H>(options: WindowOptions, shape: WindowShape) {
  const read = createSampleReader(options, shape);
  const N = shape.length;
  const C = shape.channels.length;
  const hop = Math.min(options.hop ?? N, N);
  const buffers = new Map<string, AssetBuffer<H>>();
  const counters: WindowCounters = { outOfOrder: 0, duplicates: 0, gaps: 0, windows: 0, refusedAssets: 0, unusedSamples: 0 };
  let held = 0;

  const fresh = (): AssetBuffer<H> => ({
    values: new Float32Array(C * N), times: new Float64Array(N), head: 0, filled: 0, total: 0, usedUpTo: 0, untilNext: N, newest: -Infinity, holds: [],
  });

  function restart(b: AssetBuffer<H>, released: H[], restore: boolean): void {
    if (!restore) counters.unusedSamples += b.total - b.usedUpTo;
    for (const h of b.holds) released.push(h.handle);
    held -= b.holds.length;
    b.holds = [];
    b.head = b.filled = b.total = b.usedUpTo = 0;
    b.untilNext = N;
  }

  function windowOf(b: AssetBuffer<H>): Float32Array {
    const data = new Float32Array(C * N);
    // Full buffer: the oldest sample is at head.
    for (let c = 0; c < C; c++) {
      const base = c * N;
      const tail = N - b.head;
      data.set(b.values.subarray(base + b.head, base + N), base);
      data.set(b.values.subarray(base, base + b.head), base + tail);
    }
    return data;
  }

  /** Whether a sample of this timestamp is in the buffer (binary search over the ring, oldest first). */
  function buffered(b: AssetBuffer<H>, ts: number): boolean {
    const oldest = (b.head - b.filled + N) % N;
    let lo = 0;
    let hi = b.filled - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const t = b.times[(oldest + mid) % N] as number;
      if (t === ts) return true;
      if (t < ts) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  function take(handle: H, topic: string, payload: Buffer, _now: number, restore = false): TakeResult<H> {
    const released: H[] = [];
    const rows: WindowRow<H>[] = [];
    const s = read(topic, payload);
    if (!s.ok) return { rows, released: [handle], ...(restore ? {} : { reject: { code: s.code, detail: s.detail } }), dropped: 0 };
    let b = buffers.get(s.asset);
    if (!b) {
      if (buffers.size >= options.maxAssets) {
        if (restore) return { rows, released: [handle], dropped: 0 };
        counters.refusedAssets++;
        return { rows, released: [handle], reject: { code: 'REJECT_LIMIT', detail: `asset "${s.asset}" would be window buffer ${buffers.size + 1} — the limit is windows.maxAssets ${options.maxAssets}` }, dropped: 0 };
      }
      b = fresh();
      buffers.set(s.asset, b);
    }
    let dropped = 0;
    let accepted = 0;
    let duplicates = 0;
    for (let i = 0; i < s.count; i++) {
      const ts = s.dt === null ? s.ts : s.ts + i * s.dt;
      if (ts <= b.newest) {
        dropped++;
        if (buffered(b, ts)) duplicates++;
        continue;
      }
      if (s.dt !== null && b.filled > 0 && ts - b.newest > options.gapFactor * s.dt) {
        if (!restore) counters.gaps++;
        restart(b, released, restore);
      }
      for (let c = 0; c < C; c++) b.values[c * N + b.head] = s.values[c * s.count + i] as number;
      b.times[b.head] = ts;
      b.head = (b.head + 1) % N;
      if (b.filled < N) b.filled++;
      b.total++;
      b.newest = ts;
      accepted++;
      // Handles whose newest sample slid out are let go; the rest all have a sample in the buffer.
      while (b.holds.length && (b.holds[0] as { last: number }).last < b.total - N) {
        released.push((b.holds.shift() as { handle: H }).handle);
        held--;
      }
      if (--b.untilNext === 0) {
        b.untilNext = hop;
        b.usedUpTo = b.total;
        if (!restore) {
          const used = b.holds.map((h) => h.handle);
          used.push(handle);
          rows.push({ asset: s.asset, at: ts, data: windowOf(b), source: handle, used });
          counters.windows++;
        }
      }
    }
    if (!restore) {
      counters.duplicates += duplicates;
      counters.outOfOrder += dropped - duplicates;
    }
    if (accepted > 0) {
      b.holds.push({ handle, last: b.total - 1 });
      held++;
    } else {
      released.push(handle);
      if (!restore) {
        return { rows, released, reject: { code: 'REJECT_WINDOW_SAMPLES', detail: `all ${s.count} samples (from ts ${s.ts}) are at or before the newest buffered sample of asset "${s.asset}" (ts ${b.newest}): duplicates or out of order` }, dropped };
      }
    }
    return { rows, released, dropped };
  }

  /**
   * After a restore, sets an asset's cadence from the newest window made before the restart (its `at`):
   * the next window comes `hop` samples after it (or once `length` samples are buffered).
   */
  function align(asset: string, lastWindowAt: number): void {
    const b = buffers.get(asset);
    if (!b) return;
    let newer = 0;
    for (let k = 0; k < b.filled; k++) if ((b.times[k] as number) > lastWindowAt) newer++;
    b.untilNext = Math.max(1, N - b.filled, hop - newer);
    // The samples up to that window were in it.
    b.usedUpTo = b.total - newer;
  }

  /** Drops every buffer (e.g. a model swap to another window shape); gives every handle held, released. */
  function clear(): H[] {
    const released: H[] = [];
    for (const b of buffers.values()) restart(b, released, true);
    buffers.clear();
    return released;
  }

  return {
    take,
    align,
    clear,
    get assets() {
      return buffers.size;
    },
    get held() {
      return held;
    },
    counters: counters as Readonly<WindowCounters>,
  };
}

export type Windows<H> = ReturnType<typeof createWindows<H>>;
