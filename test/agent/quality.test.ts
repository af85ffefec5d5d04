// Data-quality gate: every reason under every policy (reject, impute a number, impute 'last', flag), the
// JSON decoder's codes and texts under `reject`, state per asset, the counters against the rows given, and
// the bound on assets (state and per-asset counters). Pure module: a validated 4-feature manifest, no I/O.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isEdgeError } from '../../agent/errors.js';
import { createQualityGate, qualityOptionsSchema, qualityProblems, type QualityFlag, type QualityReason } from '../../agent/ingest/quality.js';
import { manifestSchema, readManifest, type Manifest } from '../../models/manifest.js';
import { demoModelDir } from '../helpers/parts.js';

const demo = readManifest(demoModelDir);
const stats = (mean: number, std: number, min: number, max: number) => ({ mean, std, min, max, quantiles: {}, histogram: { edges: [min, max], counts: [10] } });

/** Features a, b, c, d; contract [0, 100] (d: [-50, 50]); training a: mean 50, std 5, range [30, 70]. */
function toy(baseline = true): Manifest {
  return manifestSchema.parse({
    ...demo,
    name: 'toy',
    input: { ...demo.input, shape: ['N', 4] },
    features: [
      { name: 'a', unit: '1', min: 0, max: 100 },
      { name: 'b', unit: '1', min: 0, max: 100 },
      { name: 'c', unit: '1', min: 0, max: 100 },
      { name: 'd', unit: '1', min: -50, max: 50 },
    ],
    golden: [{ input: [50, 50, 50, 0], output: [0.2, 0.3, 0.5] }],
    baseline: baseline
      ? { rows: 10, features: { a: stats(50, 5, 30, 70), b: stats(50, 5, 30, 70), c: stats(50, 5, 30, 70), d: stats(0, 1, -3, 3) } }
      : undefined,
  });
}
const M = toy();
const clean = [50, 50, 50, 0];
const row = (a: unknown) => [a, 50, 50, 0];

interface Case {
  reason: QualityReason;
  code: string;
  /** Options that make the check apply. */
  opts: Record<string, unknown>;
  /** Rows before the bad one (values of a; ages of a): they leave a last good value `good`. */
  prep: { a: number; age?: number }[];
  good: number;
  /** The same check with prep rows that leave no good value. */
  prepNoGood: { a: number; age?: number }[];
  bad: unknown;
  badAge?: number;
  detail: RegExp;
}

const cases: Case[] = [
  { reason: 'missing', code: 'REJECT_MISSING_FIELD', opts: {}, prep: [{ a: 52 }], good: 52, prepNoGood: [], bad: undefined, detail: /^feature a: value is absent/ },
  { reason: 'wrong_type', code: 'REJECT_WRONG_TYPE', opts: {}, prep: [{ a: 52 }], good: 52, prepNoGood: [], bad: '12', detail: /^feature a: value is string, expected a number/ },
  { reason: 'not_finite', code: 'REJECT_NOT_FINITE', opts: {}, prep: [{ a: 52 }], good: 52, prepNoGood: [], bad: Number.NaN, detail: /^feature a: value is NaN/ },
  { reason: 'out_of_range', code: 'REJECT_OUT_OF_RANGE', opts: {}, prep: [{ a: 52 }], good: 52, prepNoGood: [], bad: 150, detail: /^feature a: 150 is outside the valid range \[0, 100\]/ },
  { reason: 'out_of_training_range', code: 'REJECT_OUT_OF_TRAINING_RANGE', opts: { trainingRange: true }, prep: [{ a: 52 }], good: 52, prepNoGood: [], bad: 75, detail: /^feature a: 75 is outside the training range \[30, 70\]/ },
  { reason: 'stale', code: 'REJECT_STALE', opts: { maxAgeMs: 1000 }, prep: [{ a: 52, age: 10 }], good: 52, prepNoGood: [], bad: 53, badAge: 5000, detail: /^feature a: 53 is 5000 ms old, older than its maximum age of 1000 ms/ },
  // Two 61s are clean (run 1, 2); the third is stuck. Without a good value: the first two are stale (age), not good, yet they count in the run.
  { reason: 'stuck', code: 'REJECT_STUCK', opts: { features: { a: { stuckSamples: 3 } }, maxAgeMs: 1000 }, prep: [{ a: 61 }, { a: 61 }], good: 61, prepNoGood: [{ a: 61, age: 9999 }, { a: 61, age: 9999 }], bad: 61, detail: /^feature a: 61 came 3 times in a row \(stuckSamples 3\)/ },
  // Band 50 ± 2 × 5 = [40, 60]; a window of 3: the third value above 60 fills it, over half above.
  { reason: 'scale_change', code: 'REJECT_SCALE_CHANGE', opts: { scale: true, scaleSigmas: 2, scaleWindow: 3, maxAgeMs: 1000 }, prep: [{ a: 65 }, { a: 66 }], good: 66, prepNoGood: [{ a: 65, age: 9999 }, { a: 66, age: 9999 }], bad: 67, detail: /^feature a: 67; over half of the asset's last 3 values lie above 60 \(training mean 50 \+ 2 × std 5\)/ },
];

type Policy = { name: string; opts: Record<string, unknown> };
const policies: Policy[] = [
  { name: 'reject', opts: { policy: 'reject' } },
  { name: 'impute 42', opts: { policy: 'impute', features: { a: { impute: 42 } } } },
  { name: "impute 'last'", opts: { policy: 'impute' } },
  { name: 'flag', opts: { policy: 'flag' } },
  { name: 'flag, impute 42', opts: { policy: 'flag', features: { a: { impute: 42 } } } },
];

const HARD = new Set<QualityReason>(['missing', 'wrong_type', 'not_finite', 'out_of_range']);
const numberOrNone = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? { value: v } : {});

function run(c: Case, p: Policy, prep: { a: number; age?: number }[]) {
  const features = { a: { ...(c.opts.features as { a?: object } | undefined)?.a, ...(p.opts.features as { a?: object } | undefined)?.a } };
  const gate = createQualityGate(qualityOptionsSchema.parse({ ...c.opts, ...p.opts, features }), M);
  for (const r of prep) gate.judge('m1', row(r.a), [r.age ?? 0, 0, 0, 0]);
  return { gate, out: gate.judge('m1', row(c.bad), [c.badAge ?? 0, 0, 0, 0]) };
}

test('every reason under every policy: rejected, imputed (a number, the last good value), or flagged', { timeout: 10_000 }, () => {
  for (const c of cases) {
    for (const p of policies) {
      const what = `${c.reason} under ${p.name}`;
      const { gate, out } = run(c, p, c.prep);
      const imputed = p.name === 'impute 42' || p.name === "impute 'last'" || (p.name === 'flag, impute 42' && HARD.has(c.reason));
      const flagged = p.name.startsWith('flag') && !HARD.has(c.reason);
      if (p.name === 'reject' || (p.name === 'flag' && HARD.has(c.reason))) {
        assert.equal(out.ok, false, what);
        assert.equal((out as { code: string }).code, c.code, what);
        assert.match((out as { detail: string }).detail, c.detail, what);
        assert.equal(gate.counters.rejected[c.code as 'REJECT_STALE'], 1, what);
      } else {
        assert.equal(out.ok, true, what);
        const ok = out as { values: number[]; flags: readonly QualityFlag[] };
        const expected = flagged ? (c.bad as number) : p.name === "impute 'last'" ? c.good : 42;
        assert.deepEqual(ok.values, [expected, 50, 50, 0], what);
        assert.deepEqual(ok.flags, [{ feature: 'a', reason: c.reason, action: imputed ? 'imputed' : 'flagged', ...numberOrNone(c.bad) }], what);
      }
    }
  }
});

test("impute 'last' with no good value yet rejects with the original reason, and says so", { timeout: 10_000 }, () => {
  for (const c of cases) {
    const { out } = run(c, policies[2]!, c.prepNoGood);
    assert.equal(out.ok, false, c.reason);
    assert.equal((out as { code: string }).code, c.code, c.reason);
    assert.match((out as { detail: string }).detail, c.detail, c.reason);
    assert.match((out as { detail: string }).detail, /; no last good value to impute yet$/, c.reason);
  }
});

test('flag never gives the model a missing, non-number, non-finite or out-of-contract value', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ policy: 'flag', trainingRange: true }), M);
  for (const bad of [undefined, null, true, '50', {}, Number.NaN, Infinity, -Infinity, 1e39, -1, 100.5]) {
    const out = gate.judge('m1', row(bad), null);
    assert.equal(out.ok, false, String(bad));
  }
  // A bigint (a 64-bit Sparkplug B integer) is its nearest double: beyond float32 not finite, else a number.
  assert.equal((gate.judge('m1', row(10n ** 40n), null) as { code: string }).code, 'REJECT_NOT_FINITE');
  assert.deepEqual(gate.judge('m1', row(55n), null), { ok: true, values: [55, 50, 50, 0], flags: [] });
  // Outside training only: let through with a flag.
  assert.deepEqual(gate.judge('m1', row(99), null), { ok: true, values: [99, 50, 50, 0], flags: [{ feature: 'a', reason: 'out_of_training_range', action: 'flagged', value: 99 }] });
});

test("under reject, the JSON decoder's codes and texts (with its sources)", { timeout: 10_000 }, () => {
  const demoGate = createQualityGate(qualityOptionsSchema.parse({}), demo, demo.features.map((f) => `field "${f.name === 'peak_g' ? 'vibration.peak_g' : f.name}"`));
  const good = [0.5, 1.6, 3.1, 3.2, 44, 1480];
  const at = (i: number, v: unknown) => good.map((g, k) => (k === i ? v : g));
  const cases: [unknown[], string, string][] = [
    [at(1, undefined), 'REJECT_MISSING_FIELD', 'feature peak_g: field "vibration.peak_g" is absent'],
    [at(2, true), 'REJECT_WRONG_TYPE', 'feature kurtosis: field "kurtosis" is boolean, expected a number'],
    [at(5, '1500'), 'REJECT_WRONG_TYPE', 'feature speed_rpm: field "speed_rpm" is string, expected a number'],
    [at(4, null), 'REJECT_WRONG_TYPE', 'feature temperature_c: field "temperature_c" is null, expected a number'],
    [at(4, -Infinity), 'REJECT_NOT_FINITE', 'feature temperature_c: field "temperature_c" is -Infinity'],
    [at(5, 1e39), 'REJECT_NOT_FINITE', 'feature speed_rpm: field "speed_rpm" is 1e+39, beyond float32 (±3.4028234663852886e38)'],
    [at(5, 7000), 'REJECT_OUT_OF_RANGE', 'feature speed_rpm: 7000 is outside the valid range [0, 6000]'],
    [at(0, -0.1), 'REJECT_OUT_OF_RANGE', 'feature rms_g: -0.1 is outside the valid range [0, 50]'],
    // The first bad feature in manifest order gives the reason.
    [[0.5, 1.6, 3.1, 'x', 44, 9999], 'REJECT_WRONG_TYPE', 'feature crest_factor: field "crest_factor" is string, expected a number'],
  ];
  for (const [raw, code, detail] of cases) assert.deepEqual(demoGate.judge('press-9', raw, null), { ok: false, code, detail });
  // Outside training (speed 5000 > 3001.86) and far from its mean: served, as before the gate (both checks are opt-in).
  assert.deepEqual(demoGate.judge('press-9', at(5, 5000), null), { ok: true, values: at(5, 5000), flags: [] });
  assert.deepEqual(demoGate.checks.speed_rpm, ['missing', 'wrong_type', 'not_finite', 'out_of_range']);
});

test('stuck and scale state is per asset and moves on rows rejected for other features; the scale check clears', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ stuckSamples: 3, scale: true, scaleSigmas: 2, scaleWindow: 5, features: { a: { scale: false }, b: { stuckSamples: 0 } } }), M);
  // Asset m1: b missing in the first two rows (rejected), yet a's run counts them.
  assert.equal((gate.judge('m1', [10, undefined, 50, 0], null) as { code: string }).code, 'REJECT_MISSING_FIELD');
  assert.equal((gate.judge('m2', [10, 50, 51, 1], null) as { ok: boolean }).ok, true);
  assert.equal((gate.judge('m1', [10, undefined, 52, 2], null) as { code: string }).code, 'REJECT_MISSING_FIELD');
  assert.equal((gate.judge('m1', [10, 50, 53, 0], null) as { code: string }).code, 'REJECT_STUCK');
  // m2 saw 10 once: not stuck. b repeats 50 but has stuckSamples 0; c and d change.
  assert.equal(gate.judge('m2', [10, 50, 54, 2], null).ok, true);
  // Scale on b (band [40, 60]), window 5: three of the last five above 60 is over half, two is not.
  const seq = [50, 70, 70, 50, 70, 50, 50, 50];
  const got = seq.map((b, k) => gate.judge('m3', [k, b, 50 + k, k % 2], null));
  assert.deepEqual(got.map((o) => (o.ok ? 'ok' : (o as { code: string }).code)), ['ok', 'ok', 'ok', 'ok', 'REJECT_SCALE_CHANGE', 'REJECT_SCALE_CHANGE', 'ok', 'ok']);
  assert.deepEqual(gate.checks.a, ['missing', 'wrong_type', 'not_finite', 'out_of_range', 'stuck']);
  assert.deepEqual(gate.checks.b, ['missing', 'wrong_type', 'not_finite', 'out_of_range', 'scale_change']);
});

test('scale, even window: over half means both middle values beyond the band; below the band too', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ scale: true, scaleSigmas: 2, scaleWindow: 4, features: { a: { scale: true }, b: { scale: false }, c: { scale: false }, d: { scale: false } } }), M);
  const codes = (asset: string, seq: number[]) => seq.map((a) => { const o = gate.judge(asset, row(a), null); return o.ok ? 'ok' : (o as { code: string }).code; });
  // Two of four above 60: the median (the middles' mean, 60) is not beyond; three of four: it is.
  assert.deepEqual(codes('up', [50, 70, 70, 50, 70]), ['ok', 'ok', 'ok', 'ok', 'REJECT_SCALE_CHANGE']);
  assert.deepEqual(codes('down', [50, 30, 30, 50, 30]), ['ok', 'ok', 'ok', 'ok', 'REJECT_SCALE_CHANGE']);
  assert.match((gate.judge('down', row(31), null) as { detail: string }).detail, /^feature a: 31; over half of the asset's last 4 values lie below 40 \(training mean 50 − 2 × std 5\)/);
});

test('stale: an age of exactly maxAgeMs passes, one more is stale; an unknown age is not judged', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ maxAgeMs: 1000, features: { d: { maxAgeMs: 10 } } }), M);
  assert.equal(gate.judge('m1', clean, [1000, 1000, 1000, 10]).ok, true);
  assert.equal((gate.judge('m1', clean, [1001, 0, 0, 0]) as { code: string }).code, 'REJECT_STALE');
  assert.equal((gate.judge('m1', clean, [0, 0, 0, 11]) as { code: string }).code, 'REJECT_STALE');
  assert.equal(gate.judge('m1', clean, [undefined, undefined, undefined, undefined]).ok, true);
  assert.equal(gate.judge('m1', clean, null).ok, true);
});

test('no baseline: no training-range and no scale checks, whatever the options', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ trainingRange: true, scale: true, scaleWindow: 3 }), toy(false));
  for (let k = 0; k < 5; k++) assert.deepEqual(gate.judge('m1', [99, 99, 99, 49], null), { ok: true, values: [99, 99, 99, 49], flags: [] });
  assert.deepEqual(gate.checks.a, ['missing', 'wrong_type', 'not_finite', 'out_of_range']);
});

test('counters by feature, reason and action, checked against the rows given', { timeout: 10_000 }, () => {
  // a: missing every 10th row (flag cannot pass it, no impute: rejected); b: a string every 7th (flag with impute 0);
  // c: out of training every 5th (flagged); d: stale every 4th under its own reject policy.
  const gate = createQualityGate(qualityOptionsSchema.parse({
    policy: 'flag', trainingRange: true, perAsset: true,
    features: { b: { impute: 0 }, d: { policy: 'reject', maxAgeMs: 100 } },
  }), M);
  const N = 200;
  const plan = Array.from({ length: N }, (_, k) => ({ k, a: k % 10 === 0, b: k % 7 === 0, c: k % 5 === 0, d: k % 4 === 0 }));
  const outs = plan.map((p) => gate.judge(p.k % 3 === 0 ? 'x' : 'y', [p.a ? undefined : 50, p.b ? 'n/a' : 50, p.c ? 80 : 50, 0], [0, 0, 0, p.d ? 500 : 5]));
  const count = (f: (p: (typeof plan)[number]) => boolean) => plan.filter(f).length;
  const rejectedRow = (p: (typeof plan)[number]) => p.a || p.d;
  const c = gate.counters;
  assert.equal(c.rows, N);
  assert.equal(c.passed, count((p) => !rejectedRow(p)));
  assert.deepEqual(c.rejected, { REJECT_MISSING_FIELD: count((p) => p.a), REJECT_STALE: count((p) => p.d && !p.a) });
  assert.deepEqual(c.features, {
    a: { missing: { rejected: count((p) => p.a), imputed: 0, flagged: 0 } },
    b: { wrong_type: { rejected: count((p) => p.b && rejectedRow(p)), imputed: count((p) => p.b && !rejectedRow(p)), flagged: 0 } },
    c: { out_of_training_range: { rejected: count((p) => p.c && rejectedRow(p)), imputed: 0, flagged: count((p) => p.c && !rejectedRow(p)) } },
    d: { stale: { rejected: count((p) => p.d), imputed: 0, flagged: 0 } },
  });
  assert.equal(c.rowsWithImputed, count((p) => p.b && !rejectedRow(p)));
  assert.equal(c.rowsWithFlagged, count((p) => p.c && !rejectedRow(p)));
  // The flags on the rows that passed say the same.
  const flags = outs.flatMap((o) => (o.ok ? [...o.flags] : []));
  assert.equal(flags.filter((f) => f.action === 'imputed' && f.feature === 'b').length, c.features.b!.wrong_type!.imputed);
  assert.ok(outs.every((o, k) => !o.ok || o.values[1] === (plan[k]!.b ? 0 : 50)));
  // Per asset: x takes rows k % 3 == 0.
  const x = plan.filter((p) => p.k % 3 === 0);
  assert.deepEqual(c.byAsset, {
    x: { rows: x.length, rejected: x.filter(rejectedRow).length, imputed: x.filter((p) => p.b && !rejectedRow(p)).length, flagged: x.filter((p) => p.c && !rejectedRow(p)).length },
    y: { rows: N - x.length, rejected: count(rejectedRow) - x.filter(rejectedRow).length, imputed: c.rowsWithImputed - x.filter((p) => p.b && !rejectedRow(p)).length, flagged: c.rowsWithFlagged - x.filter((p) => p.c && !rejectedRow(p)).length },
  });
  assert.deepEqual(c.otherAssets, { rows: 0, rejected: 0, imputed: 0, flagged: 0 });
});

test('per-asset counters are bounded by maxAssets: later assets are summed in otherAssets and still judged', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ perAsset: true, maxAssets: 3 }), M);
  const outs = Array.from({ length: 5000 }, (_, k) => gate.judge(`m${k % 1000}`, k % 2 ? clean : row(200), null));
  assert.equal(outs.filter((o) => o.ok).length, 2500);
  const c = gate.counters;
  assert.deepEqual(Object.keys(c.byAsset!), ['m0', 'm1', 'm2']);
  assert.deepEqual(c.byAsset!.m1, { rows: 5, rejected: 0, imputed: 0, flagged: 0 });
  assert.deepEqual(c.byAsset!.m0, { rows: 5, rejected: 5, imputed: 0, flagged: 0 });
  assert.deepEqual(c.otherAssets, { rows: 5000 - 15, rejected: 2500 - 5 - 5, imputed: 0, flagged: 0 });
  assert.equal(c.assets, 3);
  assert.equal(c.refusedAssets, 0);
});

test('a stateful check beyond maxAssets refuses the new asset (REJECT_LIMIT) until one is forgotten', { timeout: 10_000 }, () => {
  const gate = createQualityGate(qualityOptionsSchema.parse({ stuckSamples: 5, maxAssets: 2, perAsset: true }), M);
  assert.equal(gate.judge('m1', clean, null).ok, true);
  assert.equal(gate.judge('m2', clean, null).ok, true);
  const refused = gate.judge('m3', clean, null);
  assert.deepEqual(refused, { ok: false, code: 'REJECT_LIMIT', detail: 'asset "m3": the quality gate already keeps state for 2 assets (quality.maxAssets)' });
  for (let k = 0; k < 1000; k++) gate.judge(`n${k}`, clean, null);
  assert.equal(gate.assets, 2);
  assert.equal(gate.counters.refusedAssets, 1001);
  assert.equal(gate.counters.rejected.REJECT_LIMIT, 1001);
  assert.deepEqual(gate.counters.otherAssets, { rows: 1001, rejected: 1001, imputed: 0, flagged: 0 });
  assert.equal(gate.forget('m1'), true);
  assert.equal(gate.judge('m3', clean, null).ok, true);
  assert.equal(gate.assets, 2);
});

test('options: stuckSamples 1 refused; unknown features and impute values outside the contract named', { timeout: 10_000 }, () => {
  const bad = qualityOptionsSchema.safeParse({ stuckSamples: 1 });
  assert.equal(bad.success, false);
  assert.deepEqual(qualityOptionsSchema.parse(undefined), { policy: 'reject', features: {}, trainingRange: false, stuckSamples: 0, scale: false, scaleSigmas: 6, scaleWindow: 20, maxAssets: 10000, perAsset: false });
  const o = qualityOptionsSchema.parse({ features: { e: { policy: 'flag' }, a: { impute: 101 } } });
  assert.deepEqual(qualityProblems(o, M), [
    'quality.features.e: got options for "e" — expected one of the model\'s features: a, b, c, d',
    "quality.features.a.impute: got 101 — expected a value within the feature's valid range [0, 100]",
  ]);
  assert.throws(() => createQualityGate(o, M), (err) => isEdgeError(err) && err.code === 'EDGE_ERR_CONFIG_MODEL_MISMATCH' && err.details.length === 2);
});
