// Sliding windows, the pure rules: windows every hop samples once length are buffered (channels first,
// oldest first), duplicates and out-of-order samples dropped, gaps restart the buffer, every handle held
// or released exactly once, restore + align rebuild the same state, limits refuse instead of growing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createWindows, windowOptionsSchema, windowProblems, type WindowShape } from '../../agent/ingest/window.js';
import { manifestSchema } from '../../models/manifest.js';

const shape = (length: number, range = 1e6): WindowShape => ({ length, channels: ['x', 'y'].map((name) => ({ name, min: -range, max: range })) });
const msg = (v: Record<string, unknown>) => Buffer.from(JSON.stringify(v));
/** A message of samples x = first, first+1, ...; y = -x; at ts = first * 10. */
const run = (first: number, count: number, extra: Record<string, unknown> = {}) => {
  const x = Array.from({ length: count }, (_, i) => first + i);
  return msg({ ts: first * 10, dtMs: 10, x, y: x.map((v) => -v), ...extra });
};
const T = 'plant/m1/acc';

test('a window once length samples are buffered, then every hop: channels first, oldest first; handles held until they slide out', { timeout: 10_000 }, () => {
  const w = createWindows<string>(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 2 }), shape(4));
  const a = w.take('h1', T, run(0, 2), 0);
  assert.deepEqual([a.rows.length, a.released, a.dropped], [0, [], 0]);
  const b = w.take('h2', T, run(2, 2), 0);
  assert.equal(b.rows.length, 1);
  const r = b.rows[0]!;
  assert.deepEqual([r.asset, r.at, r.source, r.used], ['m1', 30, 'h2', ['h1', 'h2']]);
  assert.deepEqual(Array.from(r.data), [0, 1, 2, 3, 0, -1, -2, -3]);
  assert.deepEqual(b.released, []);
  const c = w.take('h3', T, run(4, 2), 0);
  assert.deepEqual(c.rows.map((x) => [x.at, Array.from(x.data), x.used]), [[50, [2, 3, 4, 5, -2, -3, -4, -5], ['h2', 'h3']]]);
  assert.deepEqual(c.released, ['h1'], 'h1 slid out entirely');
  // One sample at a time (a number per signal): a window every second sample.
  const d = w.take('h4', T, msg({ ts: 60, dtMs: 10, x: 6, y: -6 }), 0);
  assert.deepEqual([d.rows.length, d.released], [0, []]);
  const e = w.take('h5', T, msg({ ts: 70, dtMs: 10, x: 7, y: -7 }), 0);
  assert.deepEqual(e.rows.map((x) => Array.from(x.data)), [[4, 5, 6, 7, -4, -5, -6, -7]]);
  assert.deepEqual(e.released, ['h2']);
  assert.deepEqual([w.held, w.assets, w.counters.windows], [3, 1, 3]);
  // A model swap to another window shape drops the buffers: every held handle is let go.
  assert.deepEqual(w.clear(), ['h3', 'h4', 'h5']);
  assert.deepEqual([w.held, w.assets], [0, 0]);
});

test('a message longer than the window makes every window it completes; hop 1 overlaps', { timeout: 10_000 }, () => {
  const w = createWindows<number>(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 1 }), shape(3));
  const r = w.take(1, T, run(0, 5), 0);
  assert.deepEqual(r.rows.map((x) => [x.at, Array.from(x.data.subarray(0, 3))]), [[20, [0, 1, 2]], [30, [1, 2, 3]], [40, [2, 3, 4]]]);
  assert.ok(r.rows.every((x) => x.source === 1 && x.used.length === 1));
  // Hop defaults to the length: windows side by side.
  const side = createWindows<number>(windowOptionsSchema.parse({ signals: ['x', 'y'] }), shape(3));
  assert.deepEqual(side.take(1, T, run(0, 7), 0).rows.map((x) => x.at), [20, 50]);
});

test('duplicates and out-of-order samples are dropped and counted; a message of only those is refused', { timeout: 10_000 }, () => {
  const w = createWindows<string>(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 4 }), shape(4));
  w.take('a', T, run(0, 3), 0);
  const again = w.take('a2', T, run(0, 3), 0); // the same message sent again
  assert.deepEqual([again.rows.length, again.dropped, again.released, again.reject?.code], [0, 3, ['a2'], 'REJECT_WINDOW_SAMPLES']);
  assert.match(again.reject?.detail ?? '', /all 3 samples \(from ts 0\) are at or before the newest buffered sample of asset "m1" \(ts 20\)/);
  assert.deepEqual([w.counters.duplicates, w.counters.outOfOrder], [3, 0]);
  // Overlapping: samples 1..4, of which 1 and 2 are buffered already; 4 completes the window with 0..3? No: 0,1,2,3.
  const overlap = w.take('b', T, run(1, 3), 0);
  assert.deepEqual([overlap.dropped, overlap.reject, overlap.rows.map((x) => Array.from(x.data.subarray(0, 4)))], [2, undefined, [[0, 1, 2, 3]]]);
  assert.equal(w.counters.duplicates, 5);
  // Older than the newest but never buffered (between samples): out of order.
  const between = w.take('c', T, msg({ ts: 25, x: 9, y: 9 }), 0);
  assert.deepEqual([between.reject?.code, between.released, w.counters.outOfOrder], ['REJECT_WINDOW_SAMPLES', ['c'], 1]);
  assert.equal(w.held, 2, 'a and b hold the buffered samples; the refused messages hold nothing');
});

test('a gap larger than gapFactor × dt restarts the buffer and releases its handles; a window never spans it', { timeout: 10_000 }, () => {
  const w = createWindows<string>(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 2 }), shape(3));
  w.take('a', T, run(0, 2), 0); // ts 0, 10
  const ok = w.take('b', T, msg({ ts: 25, dtMs: 10, x: [2], y: [2] }), 0); // step 15 = 1.5 × 10: not a gap
  assert.deepEqual([ok.rows.length, ok.released, w.counters.gaps], [1, [], 0]);
  const gap = w.take('c', T, msg({ ts: 41, dtMs: 10, x: [3, 4], y: [3, 4] }), 0); // step 16: a gap
  assert.deepEqual([gap.rows.length, gap.released, w.counters.gaps], [0, ['a', 'b'], 1]);
  assert.equal(w.counters.unusedSamples, 0, 'every sample before the gap was in a window');
  const after = w.take('d', T, msg({ ts: 61, dtMs: 10, x: [5], y: [5] }), 0);
  assert.deepEqual(after.rows.map((x) => [x.at, Array.from(x.data.subarray(0, 3)), x.used]), [[61, [3, 4, 5], ['c', 'd']]]);
  // Samples buffered after the last window and before a gap never reach the model, and the count says so.
  assert.deepEqual(w.take('e', T, msg({ ts: 71, dtMs: 10, x: [6], y: [6] }), 0).rows, []);
  assert.deepEqual(w.take('f', T, msg({ ts: 1000, dtMs: 10, x: [1, 2], y: [1, 2] }), 0).released, ['c', 'd', 'e']);
  assert.deepEqual([w.counters.gaps, w.counters.unusedSamples], [2, 1], 'sample 6 was buffered after the last window');
  // periodMs is the dt when a payload gives none.
  const p = createWindows<string>(windowOptionsSchema.parse({ signals: ['x', 'y'], periodMs: 10 }), shape(2));
  p.take('a', T, msg({ ts: 0, x: 1, y: 1 }), 0);
  assert.deepEqual(p.take('b', T, msg({ ts: 30, x: 1, y: 1 }), 0).released, ['a']);
  assert.equal(p.counters.gaps, 1);
});

test('every handle is held or released, once: checked against which messages have samples among the last length', { timeout: 10_000 }, () => {
  const N = 5;
  const w = createWindows<number>(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 2 }), shape(N));
  const released: number[] = [];
  const owner: number[] = []; // owner[k]: the message that brought sample k
  let next = 0;
  for (let h = 0; h < 200; h++) {
    const count = 1 + ((h * 7) % 4);
    const r = w.take(h, T, run(next, count), 0);
    for (let i = 0; i < count; i++) owner.push(h);
    next += count;
    released.push(...r.released);
    const live = new Set(owner.slice(-N));
    for (const x of r.released) assert.ok(!live.has(x), `message ${x} released while a sample of it is buffered`);
    assert.equal(w.held, live.size);
  }
  assert.equal(new Set(released).size, released.length, 'no handle released twice');
  assert.deepEqual([...released, ...new Set(owner.slice(-N))].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
  assert.equal(w.counters.windows, 1 + Math.floor((next - N) / 2));
});

test('restore rebuilds the buffer without rows or counts; align puts the cadence back: the same windows as without a restart', { timeout: 10_000 }, () => {
  const opts = windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 3 });
  const live = createWindows<number>(opts, shape(4));
  const held = new Set<number>();
  let lastAt = 0;
  let next = 0;
  const counts = [2, 3, 1, 2, 2, 3, 1];
  counts.forEach((count, h) => {
    const r = live.take(h, T, run(next, count), 0);
    next += count;
    held.add(h);
    for (const x of r.released) held.delete(x);
    for (const row of r.rows) lastAt = row.at;
  });
  // The agent restarts: the inbox still holds the held messages; the new process replays them.
  const again = createWindows<number>(opts, shape(4));
  let replayFrom = 0;
  const starts = counts.map((c) => ((replayFrom += c), replayFrom - c));
  for (const h of [...held].sort((a, b) => a - b)) {
    const r = again.take(h, T, run(starts[h]!, counts[h]!), 0, true);
    assert.deepEqual([r.rows, r.reject], [[], undefined]);
  }
  assert.deepEqual(again.counters, { outOfOrder: 0, duplicates: 0, gaps: 0, windows: 0, refusedAssets: 0, unusedSamples: 0 });
  assert.equal(again.held, live.held);
  again.align('m1', lastAt);
  for (let h = counts.length; h < counts.length + 12; h++) {
    const count = 1 + (h % 3);
    const a = live.take(h, T, run(next, count), 0);
    const b = again.take(h, T, run(next, count), 0);
    next += count;
    assert.deepEqual(b.rows.map((x) => [x.at, Array.from(x.data), x.used]), a.rows.map((x) => [x.at, Array.from(x.data), x.used]), `message ${h}`);
    assert.deepEqual(b.released, a.released);
  }
});

test('limits refuse rather than grow: assets beyond maxAssets, samples beyond maxSamplesPerMessage', { timeout: 10_000 }, () => {
  const w = createWindows<string>(windowOptionsSchema.parse({ signals: ['x', 'y'], maxAssets: 2, maxSamplesPerMessage: 8 }), shape(4));
  w.take('a', 'p/m1/acc', run(0, 1), 0);
  w.take('b', 'p/m2/acc', run(0, 1), 0);
  const third = w.take('c', 'p/m3/acc', run(0, 1), 0);
  assert.deepEqual([third.reject?.code, third.released, w.counters.refusedAssets, w.assets], ['REJECT_LIMIT', ['c'], 1, 2]);
  assert.match(third.reject?.detail ?? '', /asset "m3" would be window buffer 3 — the limit is windows.maxAssets 2/);
  assert.equal(w.take('d', 'p/m1/acc', run(1, 1), 0).reject, undefined, 'known assets go on');
  const big = w.take('e', 'p/m1/acc', run(2, 9), 0);
  assert.deepEqual([big.reject?.code, big.released], ['REJECT_LIMIT', ['e']]);
  // A refused restore counts nothing and gives no reject (the message was consumed before the restart).
  const r = w.take('f', 'p/m4/acc', run(0, 1), 0, true);
  assert.deepEqual([r.reject, r.released, w.counters.refusedAssets], [undefined, ['f'], 1]);
});

test('unreadable messages are refused with a reason naming the field; the asset comes from the topic or a field', { timeout: 10_000 }, () => {
  const w = createWindows<number>(windowOptionsSchema.parse({ signals: ['acc.x', 'acc.y'], asset: { field: 'machine' } }), shape(4, 100));
  const cases: [unknown, string, RegExp][] = [
    [{ machine: 'm', acc: { x: [1, 2], y: [1] }, ts: 0, dtMs: 1 }, 'REJECT_WINDOW_SAMPLES', /field "acc.y" has 1 samples, field "acc.x" has 2/],
    [{ machine: 'm', acc: { x: [1], y: [1] } }, 'REJECT_WINDOW_SAMPLES', /timestamp field "ts" is absent/],
    [{ machine: 'm', acc: { x: [1], y: [1] }, ts: '2026-01-01' }, 'REJECT_WINDOW_SAMPLES', /timestamp field "ts" is "2026-01-01"/],
    [{ machine: 'm', acc: { x: [1, 2], y: [1, 2] }, ts: 0 }, 'REJECT_WINDOW_SAMPLES', /2 samples and no sample period: give "dtMs" in the payload or windows.periodMs/],
    [{ machine: 'm', acc: { x: [1], y: [1] }, ts: 0, dtMs: 0 }, 'REJECT_WINDOW_SAMPLES', /"dtMs" is 0/],
    [{ machine: 'm', acc: { x: [], y: [] }, ts: 0 }, 'REJECT_WINDOW_SAMPLES', /empty array/],
    [{ machine: 'm', acc: { x: [1] }, ts: 0 }, 'REJECT_MISSING_FIELD', /feature y: field "acc.y" is absent/],
    [{ machine: 'm', acc: { x: [1, 'a'], y: [1, 2] }, ts: 0, dtMs: 1 }, 'REJECT_WRONG_TYPE', /feature x: field "acc.x" sample 1 is string/],
    [{ machine: 'm', acc: { x: 1, y: null }, ts: 0 }, 'REJECT_WRONG_TYPE', /feature y: field "acc.y" is null/],
    [{ machine: 'm', acc: { x: 1, y: 101 }, ts: 0 }, 'REJECT_OUT_OF_RANGE', /feature y: field "acc.y": 101 is outside the valid range \[-100, 100\]/],
    [{ acc: { x: 1, y: 1 }, ts: 0 }, 'REJECT_NO_ASSET', /asset field "machine" is absent/],
    [{ machine: 'a/b', acc: { x: 1, y: 1 }, ts: 0 }, 'REJECT_BAD_ASSET', /asset id "a\/b"/],
    [[1, 2], 'REJECT_NOT_OBJECT', /JSON array/],
  ];
  cases.forEach(([payload, code, detail], i) => {
    const r = w.take(i, T, msg(payload as Record<string, unknown>), 0);
    assert.deepEqual([r.reject?.code, r.released, r.rows.length], [code, [i], 0], JSON.stringify(payload));
    assert.match(r.reject?.detail ?? '', detail);
  });
  assert.equal(w.take(99, T, Buffer.from('{"machine":"m","acc":{"x":1e999,"y":1},"ts":0}'), 0).reject?.code, 'REJECT_NOT_FINITE');
  assert.equal(w.take(98, T, Buffer.from('{"ts":'), 0).reject?.code, 'REJECT_MALFORMED_JSON');
  assert.deepEqual([w.held, w.assets], [0, 0], 'nothing refused is held or buffered');
});

test('window options are checked against the model: signals per channel, hop within the length, a windowed manifest', { timeout: 10_000 }, () => {
  const base = {
    schemaVersion: 1, name: 'vib', version: '1.0.0', file: { sha256: 'a'.repeat(64) },
    features: ['x', 'y', 'z'].map((name) => ({ name, unit: 'g', min: -16, max: 16 })),
    outputs: [{ name: 'p', dtype: 'float32', shape: ['N', 2] }], output: { kind: 'classification', tensor: 'p', labels: ['low', 'high'] },
    latencyBudgetMs: 10, golden: [{ input: new Array(3 * 8).fill(0), output: [1, 0] }],
  };
  const windowed = manifestSchema.parse({ ...base, input: { name: 'x', dtype: 'float32', shape: ['N', 3, 8], window: { length: 8 } } });
  assert.deepEqual(windowProblems(windowOptionsSchema.parse({ signals: ['x', 'y', 'z'], hop: 8 }), windowed), []);
  assert.deepEqual(windowProblems(windowOptionsSchema.parse({ signals: ['x', 'y'], hop: 9 }), windowed, 'models[0].windows'), [
    'models[0].windows.signals: got 2 signals — expected 3, one per model feature in order: x, y, z',
    "models[0].windows.hop: got 9 — expected at most the model's window length 8",
  ]);
  const flat = manifestSchema.parse({ ...base, input: { name: 'x', dtype: 'float32', shape: ['N', 3] }, golden: [{ input: [0, 0, 0], output: [1, 0] }] });
  assert.match(windowProblems(windowOptionsSchema.parse({ signals: ['x', 'y', 'z'] }), flat)[0] ?? '', /^windows: the model vib 1\.0\.0 takes one value per feature \(its manifest has no input.window\)/);
  assert.throws(() => windowOptionsSchema.parse({ signals: ['x'], lengthh: 3 }), /lengthh/);
});
