// Drift and data quality (agent/observe/drift.ts): PSI against figures computed by hand, the bins as the
// baseline counts them, the monitor's window, thresholds with hysteresis, version resets, models without
// a baseline or labels; and the monitor on the real predictor's committed batches (real demo model in its
// worker, real SQLite store) with readings from the demo's own generator, then with one feature shifted.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { configFromObject } from '../../agent/config.js';
import { EdgeError } from '../../agent/errors.js';
import { inferenceOptionsSchema } from '../../agent/infer/infer.js';
import { createModelSlot, createPredictor, type CommittedBatch, type ServingModel } from '../../agent/infer/predict.js';
import { createDecoder, createRowJudge, mappingOptionsSchema } from '../../agent/ingest/features.js';
import { qualityOptionsSchema } from '../../agent/ingest/quality.js';
import type { Message } from '../../agent/ingest/ingest.js';
import { createLogger } from '../../agent/log.js';
import { binOf, createDriftMonitor, driftOptionsSchema, psi } from '../../agent/observe/drift.js';
import { createStats } from '../../agent/observe/stats.js';
import type { Publisher } from '../../agent/publish.js';
import type { DeadLetterRow, PredictionRow } from '../../agent/store/store.js';
import { openStore, storeOptionsSchema } from '../../agent/store/store.js';
import { featureBaseline } from '../../models/baseline.js';
import { mulberry32, sampleReading, FEATURES } from '../../models/demo/bearing.js';
import { loadModel } from '../../models/load.js';
import { readManifest, type Manifest } from '../../models/manifest.js';
import { agentConfig, demoModelDir, readingPayload, teardown, tempDir } from '../helpers/parts.js';

/** A logger whose JSON lines land in an array. */
function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger({ level: 'info' }, sink), lines, msgs: (m: string) => lines.filter((l) => l.msg === m) };
}

const demo = readManifest(demoModelDir);

/** One feature x: baseline bins [0,1) and [1,2] with 50 rows each, labels a/b predicted half and half. */
function toy(over: Partial<Manifest> = {}): Manifest {
  return {
    ...demo,
    name: 'toy', version: '1.0.0',
    features: [{ name: 'x', unit: '1', min: -10, max: 10 }],
    output: { kind: 'classification', tensor: 'p', labels: ['a', 'b'] },
    baseline: { rows: 100, features: { x: { mean: 1, std: 0.5, min: 0, max: 2, quantiles: {}, histogram: { edges: [0, 1, 2], counts: [50, 50] } } }, predictions: { a: 0.5, b: 0.5 } },
    ...over,
  };
}

const row = (manifest: Manifest, features: number[], label: string | null): PredictionRow => ({
  receivedAt: 0, asset: 'p1', topic: 'plant/p1/x', modelName: manifest.name, modelVersion: manifest.version, features, outputs: [0.5, 0.5], label, score: 0.5, latencyMs: 1, inboxId: null, dedupKey: null,
});
const dead = (reasonCode: string): DeadLetterRow => ({ receivedAt: 0, topic: 'plant/p1/x', reasonCode, reason: 'test', payload: Buffer.from('{}'), inboxId: null, dedupKey: null, model: 'toy' });
const batch = (manifest: Manifest, predictions: PredictionRow[], deadLetters: DeadLetterRow[] = []): CommittedBatch => ({
  model: { manifest } as ServingModel, predictions, deadLetters, modelMs: 1, ids: predictions.map((_, i) => i + 1),
});
/** `n` rows: the first `inFirst` at x = 0.5 (first bin), the rest at `rest` (1.5 unless told), each labelled. */
const rows = (m: Manifest, n: number, inFirst: number, label: string | null = 'a', rest: (i: number) => number = () => 1.5) =>
  Array.from({ length: n }, (_, i) => row(m, [i < inFirst ? 0.5 : rest(i)], label));

test('PSI against figures computed by hand, with the 1e-4 floor under an empty bin', { timeout: 5_000 }, () => {
  // e = (.5, .5), o = (.25, .75): (−.25)·ln(.5) + (.25)·ln(1.5) = .1732868 + .1013663 = .2746531
  assert.ok(Math.abs(psi([50, 50], [25, 75]) - 0.2746531) < 1e-6);
  // e = (.1, .2, .3, .4), o = (.4, .3, .2, .1): .3·ln 4 + .1·ln 1.5 + (−.1)·ln(2/3) + (−.3)·ln .25
  //   = .4158883 + .0405465 + .0405465 + .4158883 = .9128696
  assert.ok(Math.abs(psi([10, 20, 30, 40], [40, 30, 20, 10]) - 0.9128696) < 1e-6);
  // e = (1, 0 → 1e-4), o = (.9, .1): (−.1)·ln .9 + (.1 − .0001)·ln(.1/.0001) = .0105361 + .0999·6.9077553 = .7006208
  assert.ok(Math.abs(psi([100, 0], [90, 10]) - 0.7006208) < 1e-6);
  assert.equal(psi([3, 7], [30, 70]), 0, 'the same shares: 0');
  assert.equal(psi([3, 7], [0, 0]), 0, 'an empty window: 0, not NaN');
});

test('bins as models/baseline.ts counts them: below the first edge in the first bin, the last edge in the last', { timeout: 5_000 }, () => {
  const edges = [0, 1, 2, 3];
  assert.deepEqual([-5, 0, 0.99, 1, 2.5, 3, 99].map((x) => binOf(edges, x)), [0, 0, 0, 1, 2, 2, 2]);
  // The baseline's own histogram of a skewed sample, counted again with binOf: the same counts.
  const rand = mulberry32(7);
  const values = Array.from({ length: 2000 }, () => Math.exp(3 * rand()));
  const { histogram } = featureBaseline(values);
  const counts = new Array<number>(10).fill(0);
  for (const x of values) {
    const b = binOf(histogram.edges, x);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  assert.deepEqual(counts, histogram.counts);
});

test('the window: PSI, training-range share and mean by hand; a warning once, cleared only under psiClear', { timeout: 5_000 }, () => {
  const { log, msgs } = captureLog();
  const m = toy();
  const drift = createDriftMonitor(driftOptionsSchema.parse({ windowRows: 100, minRows: 100 }), { log });
  drift.observe(batch(m, rows(m, 99, 25)));
  assert.equal(drift.status().models[0]?.features[0]?.psi, null, 'below minRows: no PSI');
  assert.equal(msgs('input drift over threshold').length, 0);
  // The window of 100 rows: 25 at 0.5 (first bin), 65 at 1.5 and 10 at 5 (above the last edge: last bin,
  // outside the training range [0, 2]). Shares (.25, .75): PSI .2746531 (above). Mean (12.5 + 97.5 + 50) / 100 = 1.6.
  drift.observe(batch(m, rows(m, 100, 25, 'a', (i) => (i < 90 ? 1.5 : 5))));
  let s = drift.status().models[0];
  assert.equal(s?.features[0]?.psi, 0.2747);
  assert.equal(s?.features[0]?.outOfRangeShare, 0.1);
  assert.equal(s?.features[0]?.mean, 1.6);
  assert.deepEqual(s?.over, { features: ['x'], predictions: true });
  const warned = msgs('input drift over threshold');
  assert.equal(warned.length, 1);
  assert.deepEqual({ ...warned[0], time: undefined, level: undefined, pid: undefined, hostname: undefined, service: undefined, mean: undefined, baselineMean: undefined, outOfRangeShare: undefined },
    { time: undefined, level: undefined, pid: undefined, hostname: undefined, service: undefined, mean: undefined, baselineMean: undefined, outOfRangeShare: undefined, msg: 'input drift over threshold', model: 'toy', version: '1.0.0', rows: 100, feature: 'x', psi: 0.2747, threshold: 0.2 });
  assert.equal(warned[0]?.level, 40, 'warn');
  // Every label 'a' against (.5, .5): o = (1, 0 → 1e-4): .5·ln 2 + (1e-4 − .5)·ln(2e-4) = .3465736 + 4.2577448 = 4.6043184.
  assert.equal(s?.predictions?.psi, 4.6043);
  assert.deepEqual(s?.predictions?.shares, { a: 1, b: 0 });
  assert.equal(msgs('prediction drift over threshold').length, 1);
  // (.3, .7): (−.2)·ln .6 + .2·ln 1.4 = .1021651 + .0672944 = .1694595: between psiClear and psiWarn, still over, no line.
  drift.observe(batch(m, rows(m, 100, 30, 'b')));
  s = drift.status().models[0];
  assert.equal(s?.features[0]?.psi, 0.1695);
  assert.deepEqual(s?.over.features, ['x']);
  assert.equal(msgs('input drift back under threshold').length, 0);
  assert.equal(msgs('input drift over threshold').length, 1, 'no second warning while it stays up');
  // (.5, .5), with a value below the first edge: PSI 0, cleared; one line.
  drift.observe(batch(m, rows(m, 100, 50).map((r, i) => (i === 0 ? { ...r, features: [-3] } : r))));
  s = drift.status().models[0];
  assert.equal(s?.features[0]?.psi, 0);
  assert.equal(s?.features[0]?.outOfRangeShare, 0.01);
  const cleared = msgs('input drift back under threshold');
  assert.equal(cleared.length, 1);
  assert.equal(cleared[0]?.feature, 'x');
  assert.equal(cleared[0]?.threshold, 0.1);
  // Back to (.3, .7): above psiClear but not psiWarn: no new warning.
  drift.observe(batch(m, rows(m, 100, 30)));
  assert.equal(msgs('input drift over threshold').length, 1);
  assert.deepEqual(drift.status().models[0]?.over.features, []);
});

test('dead letters by reason over the window of messages; a new version resets the window', { timeout: 5_000 }, () => {
  const { log, msgs } = captureLog();
  const m = toy();
  const drift = createDriftMonitor(driftOptionsSchema.parse({ windowRows: 100, minRows: 10 }), { log });
  drift.observe(batch(m, rows(m, 7, 7), [dead('REJECT_OUT_OF_RANGE'), dead('REJECT_OUT_OF_RANGE'), dead('REJECT_MALFORMED_JSON')]));
  assert.deepEqual(drift.status().models[0]?.deadLetters, { messages: 10, share: 0.3, byReason: { REJECT_OUT_OF_RANGE: 0.2, REJECT_MALFORMED_JSON: 0.1 } });
  drift.observe(batch(m, rows(m, 20, 20)));
  assert.deepEqual(drift.status().models[0]?.over.features, ['x']);
  const next = toy({ version: '2.0.0' });
  drift.observe(batch(next, rows(next, 4, 2)));
  const s = drift.status().models;
  assert.equal(s.length, 1);
  assert.equal(s[0]?.version, '2.0.0');
  assert.equal(s[0]?.rows, 4);
  assert.deepEqual(s[0]?.over, { features: [], predictions: false });
  assert.deepEqual(s[0]?.deadLetters, { messages: 4, share: 0, byReason: {} });
  assert.deepEqual(msgs('drift window reset for a new model version').map((l) => [l.version, l.previous]), [['2.0.0', '1.0.0']]);
});

test('no baseline: drift unavailable, said once; dead letters still counted. A regression model has no prediction drift', { timeout: 5_000 }, () => {
  const { log, msgs } = captureLog();
  const drift = createDriftMonitor(driftOptionsSchema.parse({ windowRows: 40, minRows: 10 }), { log });
  const bare = toy({ name: 'bare', baseline: undefined });
  for (let i = 0; i < 3; i++) drift.observe(batch(bare, rows(bare, 10, 0), [dead('REJECT_WRONG_TYPE')]));
  const reg = toy({ name: 'reg', output: { kind: 'regression', tensor: 'p', unit: 'mm' } });
  drift.observe(batch(reg, rows(reg, 20, 0, null)));
  const [b, r] = drift.status().models;
  assert.equal(r?.rows, 20);
  assert.equal(msgs('drift unavailable for this model version').length, 1);
  assert.equal(b?.available, false);
  assert.deepEqual(b?.features, []);
  assert.equal(b?.predictions, null);
  assert.equal(b?.deadLetters.share, 0.0909, '3 dead letters of 33 messages');
  assert.equal(r?.available, true);
  assert.equal(r?.predictions, null);
  // All 20 rows at 1.5: o = (0 → 1e-4, 1) against (.5, .5): (1e-4 − .5)·ln(2e-4) + .5·ln 2 = 4.2577448 + .3465736 = 4.6043184.
  assert.equal(r?.features[0]?.psi, 4.6043);
});

test('a model with very many features gets a shorter window, at most 64 MiB, and says so', { timeout: 10_000 }, () => {
  const { log, msgs } = captureLog();
  const names = Array.from({ length: 4096 }, (_, i) => `f${i}`);
  const base = toy().baseline?.features.x as NonNullable<Manifest['baseline']>['features'][string];
  const wide = toy({
    name: 'wide', features: names.map((name) => ({ name, unit: '1', min: -10, max: 10 })),
    baseline: { rows: 100, features: Object.fromEntries(names.map((n) => [n, base])) },
  });
  const drift = createDriftMonitor(driftOptionsSchema.parse({ windowRows: 100_000 }), { log });
  drift.observe(batch(wide, [row(wide, names.map(() => 0.5), 'a')]));
  // 64 MiB / (10 bytes × 4096 features) = 67,108,864 / 40,960 = 1638.4 rows.
  assert.equal(drift.status().models[0]?.windowRows, 1638);
  assert.deepEqual(msgs('drift window shortened to bound its memory').map((l) => [l.model, l.windowRows]), [['wide', 1638]]);
});

test('drift.enabled false: nothing watched; config errors name the key', { timeout: 5_000 }, (t) => {
  const { log } = captureLog();
  const off = createDriftMonitor(driftOptionsSchema.parse({ enabled: false }), { log });
  off.observe(batch(toy(), rows(toy(), 10, 10)));
  assert.deepEqual(off.status().models, []);
  assert.equal(off.status().enabled, false);
  const dir = tempDir(t);
  const parse = (drift: unknown) => configFromObject(agentConfig({ dbPath: join(dir, 'a.db'), drift }), 'agent.yaml', dir);
  assert.equal(parse(undefined).drift.windowRows, 1000);
  assert.throws(() => parse({ psiWarn: 0.2, psiClear: 0.3 }), (e: EdgeError) => e.code === 'EDGE_ERR_CONFIG' && /drift\.psiClear: got 0\.3 — below drift\.psiWarn \(0\.2\)/.test(e.message));
  assert.throws(() => parse({ windowRows: 100, minRows: 500 }), (e: EdgeError) => /drift\.minRows: got 500 — at most drift\.windowRows \(100\)/.test(e.message));
  assert.throws(() => parse({ windowRow: 100 }), (e: EdgeError) => /drift: unknown key "windowRow"/.test(e.message));
});

test('on the real predictor: readings like the training data raise nothing; temperature shifted +40 °C warns for it alone', { timeout: 60_000 }, async (t) => {
  const store = openStore(storeOptionsSchema.parse({ path: join(tempDir(t), 'a.db') }));
  teardown(t, () => store.close());
  const real = await loadModel(demoModelDir, inferenceOptionsSchema.parse({}));
  teardown(t, () => real.inference.close());
  const mapping = mappingOptionsSchema.parse({ features: { rms_g: 'vibration.rms_g', peak_g: 'vibration.peak_g', kurtosis: 'vibration.kurtosis', crest_factor: 'vibration.crest_factor' } });
  const model: ServingModel = { ...real, decode: createDecoder(mapping, real.manifest, 65536), judge: createRowJudge(qualityOptionsSchema.parse({}), real.manifest).judge };
  const { log, msgs } = captureLog();
  const drift = createDriftMonitor(driftOptionsSchema.parse({}), { log });
  const predictor = createPredictor({
    routes: [{ slot: createModelSlot(model), filters: ['plant/+/bearing'], resultTopic: 'r/{asset}' }],
    store, publisher: { publish: () => undefined } as unknown as Publisher, stats: createStats(), log: createLogger({ level: 'silent' }),
    commitInbox: () => undefined, onFatal: (err) => assert.fail(err), onCommitted: (b) => drift.observe(b),
  });
  const rand = mulberry32(2024); // the demo was trained on seed 42's draws: same generator, other draws
  const send = async (n: number, shiftC: number) => {
    for (let i = 0; i < n; i += 100) {
      const batch: Message[] = Array.from({ length: 100 }, () => {
        const r = sampleReading(rand(), rand);
        const payload = Buffer.from(readingPayload(0, FEATURES.map((f) => r[f.name] + (f.name === 'temperature_c' ? shiftC : 0))));
        return { inboxId: null, dedupKey: null, topic: 'plant/p1/bearing', payload, bytes: payload.length, receivedAt: 0, t0: 0 };
      });
      predictor.commit(batch, await predictor.run(batch));
    }
  };
  await send(1000, 0);
  let s = drift.status().models[0];
  assert.equal(s?.rows, 1000);
  for (const f of s?.features ?? []) assert.ok((f.psi as number) < 0.1, `${f.name}: PSI ${f.psi} on readings like the training data`);
  assert.ok((s?.predictions?.psi as number) < 0.1, `predicted labels: PSI ${s?.predictions?.psi}`);
  assert.equal(msgs('input drift over threshold').length + msgs('prediction drift over threshold').length, 0);
  await send(1000, 40);
  s = drift.status().models[0];
  assert.deepEqual(msgs('input drift over threshold').map((l) => l.feature), ['temperature_c']);
  assert.deepEqual(s?.over.features, ['temperature_c']);
  const temp = s?.features.find((f) => f.name === 'temperature_c');
  assert.ok((temp?.outOfRangeShare as number) > 0.05, `some shifted temperatures are above the training maximum: ${temp?.outOfRangeShare}`);
  assert.ok(Math.abs((temp?.mean as number) - 40 - real.manifest.baseline!.features.temperature_c!.mean) < 5, `mean ${temp?.mean}`);
  assert.equal(store.counts().predictions, 2000, 'every reading stored: the monitor took nothing away');
});
