// Ground truth: the join rule (newest prediction for the key within windowMs before the label's time, one
// label per prediction, a named model or every model), accuracy and MAE against figures worked out by hand,
// the label reader's refusals, and the join on a real SQLite store: a label waits for the readings that came
// before it, and its row, dead letters and counters are what a user reads.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { IPublishPacket } from 'mqtt';
import { configFromObject } from '../../agent/config.js';
import { createLabelReader, truthOptionsSchema } from '../../agent/ingest/labels.js';
import { createLogger } from '../../agent/log.js';
import { createTruth } from '../../agent/observe/truth.js';
import { createRecentPredictions, createRolling, judge } from '../../agent/observe/truth-join.js';
import type { RecentPrediction } from '../../agent/store/labels.js';
import { openStore, storeOptionsSchema, type PredictionRow } from '../../agent/store/store.js';
import { agentConfig, teardown, tempDir, waitFor } from '../helpers/parts.js';

const T = 1_700_000_000_000;
const pred = (id: number, asset: string, receivedAt: number, label: string | null, score: number | null, model = 'm', version = '1'): RecentPrediction =>
  ({ id, receivedAt, asset, model, version, label, score });

test('join rule: the newest prediction for the key within windowMs before the label time; nothing after it; per model or the named one', { timeout: 5_000 }, () => {
  const recent = createRecentPredictions(60_000, 100);
  recent.add(pred(1, 'press-1', T - 50_000, 'healthy', 0.9), T);
  recent.add(pred(2, 'press-1', T - 20_000, 'wear', 0.8), T);
  recent.add(pred(3, 'press-1', T + 5_000, 'fault', 0.7), T); // after the label's time: never joined
  recent.add(pred(4, 'press-2', T - 10_000, 'healthy', 0.6), T);
  recent.add(pred(5, 'press-1', T - 30_000, null, 12.5, 'torque', '2'), T);
  const at = (key: string, windowMs: number, model: string | null = null) => recent.newest(key, T, windowMs, model).map((p) => p.id).sort();
  assert.deepEqual(at('press-1', 30_000), [2, 5], 'each model that served the key, its newest in the window');
  assert.deepEqual(at('press-1', 30_000, 'm'), [2], 'only the named model');
  assert.deepEqual(at('press-1', 25_000), [2], '30 s old is outside a 25 s window');
  assert.deepEqual(at('press-1', 10_000), [], 'nothing within 10 s before the label');
  assert.deepEqual(at('press-3', 60_000), [], 'unknown key');
  // Kept for keepMs only: at T+60 s the 60 s memory keeps only what came at or after T.
  recent.sweep(T + 60_000);
  assert.equal(recent.keys, 1, 'only press-1 keeps a prediction (id 3, at T+5 s)');
  assert.deepEqual(recent.newest('press-1', T + 10_000, 60_000, null).map((p) => p.id), [3]);
});

test('judge: classification right and wrong, regression |score - value|, a labelled prediction is taken once, bad outcome for a regression', { timeout: 5_000 }, () => {
  const label = (outcome: string | number) => ({ ok: true as const, key: 'press-1', outcome, at: T, model: null });
  const none = () => false;
  const right = judge(label('wear'), [pred(2, 'press-1', T - 1, 'wear', 0.8)], none, 1000);
  assert.ok('joined' in right);
  assert.equal(right.joined[0]?.correct, 1);
  const wrong = judge(label('fault'), [pred(2, 'press-1', T - 1, 'wear', 0.8)], none, 1000);
  assert.ok('joined' in wrong && wrong.joined[0]?.correct === 0 && wrong.joined[0].outcome === 'fault');
  const reg = judge(label('10.25'), [pred(5, 'press-1', T - 1, null, 12.5, 'torque')], none, 1000);
  assert.ok('joined' in reg);
  assert.deepEqual([reg.joined[0]?.value, reg.joined[0]?.absError, reg.joined[0]?.correct], [10.25, 2.25, null]);
  const text = judge(label('ok'), [pred(5, 'press-1', T - 1, null, 12.5, 'torque')], none, 1000);
  assert.ok('code' in text && text.code === 'REJECT_BAD_LABEL' && /regression/.test(text.detail));
  const taken = judge(label('wear'), [pred(2, 'press-1', T - 1, 'wear', 0.8)], (id) => id === 2, 1000);
  assert.ok('code' in taken && taken.code === 'REJECT_UNMATCHED_LABEL' && /has a label already/.test(taken.detail));
  const nothing = judge(label('wear'), [], none, 1000);
  assert.ok('code' in nothing && nothing.code === 'REJECT_UNMATCHED_LABEL' && /no prediction for key "press-1" within 1000 ms/.test(nothing.detail));
});

test('rolling accuracy and MAE per model version over the last N labels, against figures worked out by hand', { timeout: 5_000 }, () => {
  const r = createRolling(4);
  // Classification m@1: 1 1 0 1 0 1 → the last 4 are 0 1 0 1: accuracy 2/4.
  for (const c of [1, 1, 0, 1, 0, 1]) r.add('m', '1', { correct: c, absError: null });
  // m@2: 1 0 1 → 2/3 over 3.
  for (const c of [1, 0, 1]) r.add('m', '2', { correct: c, absError: null });
  // Regression torque@1: errors 2 4 1 3 6 → the last 4 are 4 1 3 6: MAE 14/4 = 3.5.
  for (const e of [2, 4, 1, 3, 6]) r.add('torque', '1', { correct: null, absError: e });
  const by = Object.fromEntries(r.status().map((v) => [`${v.model}@${v.version}`, v]));
  assert.deepEqual(by['m@1'], { model: 'm', version: '1', kind: 'classification', joined: 6, window: 4, accuracy: 0.5 });
  assert.deepEqual(by['m@2'], { model: 'm', version: '2', kind: 'classification', joined: 3, window: 3, accuracy: 2 / 3 });
  assert.deepEqual(by['torque@1'], { model: 'torque', version: '1', kind: 'regression', joined: 5, window: 4, mae: 3.5 });
});

test('label reader: key, outcome, time and model from the payload; each unreadable label names what is wrong', { timeout: 5_000 }, () => {
  const read = createLabelReader(truthOptionsSchema.parse({ enabled: true, key: { field: 'part.asset' }, timeField: 'ts', modelField: 'model' }));
  const b = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
  assert.deepEqual(read('q/1', b({ part: { asset: 'press-1' }, outcome: 'wear', ts: '2026-11-26T08:00:00Z', model: 'm' }), T), { ok: true, key: 'press-1', outcome: 'wear', at: Date.parse('2026-11-26T08:00:00Z'), model: 'm' });
  assert.deepEqual(read('q/1', b({ part: { asset: 7 }, outcome: 3.5 }), T), { ok: true, key: '7', outcome: 3.5, at: T, model: null });
  const bad = (payload: Buffer) => {
    const r = read('q/1', payload, T);
    assert.ok(!r.ok, `refused: ${payload.toString()}`);
    return r.detail;
  };
  assert.match(bad(b('{not json')), /not valid JSON/);
  assert.match(bad(b([1])), /not an object/);
  assert.match(bad(b({ outcome: 'wear' })), /key field "part.asset" is absent/);
  assert.match(bad(b({ part: { asset: 'p' } })), /outcome field "outcome" is absent/);
  assert.match(bad(b({ part: { asset: 'p' }, outcome: null })), /not a label/);
  assert.match(bad(b({ part: { asset: 'p' }, outcome: 'x', ts: 'yesterday' })), /time field "ts"/);
  assert.match(bad(b({ part: { asset: 'p' }, outcome: 'x', model: 3 })), /model field "model" is not a string/);
  assert.match(bad(Buffer.from([0xff, 0xfe])), /UTF-8/);
});

test('on a real store: a label waits while a reading before it is in the inbox, then joins its prediction; the others become dead letters', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a.db');
  const store = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => store.close());
  const log = createLogger({ level: 'silent' });
  const truth = createTruth(truthOptionsSchema.parse({ enabled: true, topic: 'quality/+/label', windowMs: 60_000 }), { store, log, models: ['m'], maxPayloadBytes: 65536 });
  teardown(t, () => truth.close());
  truth.start();
  const now = Date.now();
  // A reading is in the inbox (acknowledged, its batch not yet committed) when the label comes.
  const inboxId = store.appendInbox({ receivedAt: now - 1000, topic: 'plant/press-1/bearing', qos: 1, dedupKey: 'k1', payload: Buffer.from('{}') });
  store.commitGroup();
  let packetId = 1;
  const send = (payload: unknown) =>
    new Promise<void>((resolve, reject) =>
      truth.handleMessage({ cmd: 'publish', topic: 'quality/press-1/label', qos: 1, dup: false, retain: false, messageId: packetId++, payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)) } as IPublishPacket, (err) => (err ? reject(err) : resolve())));
  await send({ asset: 'press-1', outcome: 'wear' });
  await send({ asset: 'press-9', outcome: 'wear' });
  await send('not json');
  const labelsDb = new Database(path, { readonly: true });
  teardown(t, () => labelsDb.close());
  const count = (sql: string) => (labelsDb.prepare(sql).get() as { n: number }).n;
  assert.equal(count('SELECT count(*) AS n FROM label_inbox'), 3, 'stored before the callback (the PUBACK)');
  // A pass now: the first label came after the reading still in the inbox, and the others wait behind it.
  truth.joinNow();
  assert.equal(count('SELECT count(*) AS n FROM labels') + count('SELECT count(*) AS n FROM dead_letters'), 0, 'labels wait for the readings before them');
  assert.equal(truth.status().counters.pending, 3);
  // The reading's batch commits: its prediction is stored, and the observer hears of it.
  const row: PredictionRow = { receivedAt: now - 1000, asset: 'press-1', topic: 'plant/press-1/bearing', modelName: 'm', modelVersion: '1', features: [1], outputs: [0.1, 0.9], label: 'wear', score: 0.9, latencyMs: 1, inboxId, dedupKey: 'k1' };
  const ids = store.commitBatch([row], [], [inboxId]);
  truth.observe({ model: {} as never, predictions: [row], ids, deadLetters: [], modelMs: 1 });
  await waitFor('labels joined', () => count('SELECT count(*) AS n FROM label_inbox') === 0, 10_000);
  assert.deepEqual(labelsDb.prepare('SELECT prediction_id, model_name, model_version, join_key, outcome, correct FROM labels').all(), [
    { prediction_id: ids[0], model_name: 'm', model_version: '1', join_key: 'press-1', outcome: 'wear', correct: 1 },
  ]);
  assert.deepEqual(labelsDb.prepare('SELECT reason_code, topic FROM dead_letters ORDER BY id').all(), [
    { reason_code: 'REJECT_UNMATCHED_LABEL', topic: 'quality/press-1/label' },
    { reason_code: 'REJECT_BAD_LABEL', topic: 'quality/press-1/label' },
  ]);
  const s = truth.status();
  assert.deepEqual(s.counters, { received: 3, joined: 1, unmatched: 1, bad: 1, duplicates: 0, pending: 0 });
  assert.deepEqual(s.models, [{ model: 'm', version: '1', kind: 'classification', joined: 1, window: 1, accuracy: 1 }]);
  // A second label for the same prediction: it has one already.
  await send({ asset: 'press-1', outcome: 'fault' });
  await waitFor('second label judged', () => truth.status().counters.unmatched === 2, 10_000);
  // A redelivery (DUP) of a label already stored is acknowledged again, not stored twice.
  await new Promise<void>((resolve) => truth.handleMessage({ cmd: 'publish', topic: 'quality/press-1/label', qos: 1, dup: true, retain: false, messageId: 1, payload: Buffer.from(JSON.stringify({ asset: 'press-1', outcome: 'wear' })) } as IPublishPacket, () => resolve()));
  assert.equal(truth.status().counters.duplicates, 1);
  assert.equal(count('SELECT count(*) AS n FROM labels') + count('SELECT count(*) AS n FROM label_inbox'), 1);
});

test('config: truth is off by default; a bad truth key is a config error naming the key, the value and what is expected', { timeout: 5_000 }, (t) => {
  const dir = tempDir(t);
  const base = agentConfig({ dbPath: join(dir, 'a.db') });
  const c = configFromObject(base, 'agent.yaml', dir);
  assert.deepEqual({ enabled: c.truth.enabled, topic: c.truth.topic, key: c.truth.key, windowMs: c.truth.windowMs, rollingWindow: c.truth.rollingWindow },
    { enabled: false, topic: 'edge-agent/labels/#', key: { field: 'asset' }, windowMs: 600_000, rollingWindow: 100 });
  assert.throws(() => configFromObject({ ...base, truth: { enabled: true, windowMs: -5, topic: 'quality/#/label', extra: 1 } }, 'agent.yaml', dir), (err: Error & { code?: string; details?: string[] }) => {
    assert.equal(err.code, 'EDGE_ERR_CONFIG');
    const text = (err.details ?? []).join('\n');
    assert.match(text, /truth\.windowMs: .*-5/);
    assert.match(text, /truth\.topic: .*# only as the last level/);
    assert.match(text, /truth.*extra/);
    return true;
  });
});
