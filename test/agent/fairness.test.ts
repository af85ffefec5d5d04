// Fairness in ingest, on a real store and the real batcher with a model held by a gate: a QoS 0 flood on
// one subscription is shed once the queue is long and another subscription is active, QoS 1 never is,
// and the per-subscription counts come back to exactly zero once every batch has left (ticks and
// replayed inbox rows included).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { IPublishPacket } from 'mqtt';
import { createBatcher } from '../../agent/infer/batcher.js';
import { createIngest, type Ingest, type Message } from '../../agent/ingest/ingest.js';
import { openStore, storeOptionsSchema, type Store } from '../../agent/store/store.js';
import { tempDir } from '../helpers/parts.js';

const FILTERS = ['plant/+/flood', 'plant/+/bearing'];
const A = 'plant/line-a/flood';
const B = 'plant/line-b/bearing';

function setup(store: Store, enabled: boolean) {
  let open!: () => void;
  let gate = new Promise<void>((r) => (open = r));
  const committed: Message[] = [];
  const shed: string[] = [];
  const batcher = createBatcher<Message, void>(
    { maxBatchRows: 64, maxWaitMs: 0, maxQueuedRows: 4096 },
    () => gate,
    (batch) => void committed.push(...batch),
    (err) => assert.fail(String(err)),
    (batch) => ingest.left(batch),
  );
  const ingest: Ingest = createIngest({ maxPayloadBytes: 1024, dedupWindow: 100, fairness: { enabled, queueRows: 256, maxShare: 0.5 }, filters: FILTERS }, {
    store,
    accept: (m) => batcher.push(m),
    drained: () => batcher.drained(),
    onDuplicate: () => undefined,
    onRefused: () => undefined,
    cork: () => () => undefined,
    onCommitFailed: (err) => assert.fail(err.message),
    queuedRows: () => batcher.queued,
    onShed: (subscription) => void shed.push(subscription),
  });
  const send = (topic: string, qos: 0 | 1, id?: number) =>
    new Promise<void>((resolve, reject) => ingest.handleMessage({ cmd: 'publish', topic, qos, payload: Buffer.from('{}'), messageId: id, dup: false, retain: false } as IPublishPacket, (err) => (err ? reject(err) : resolve())));
  return { batcher, ingest, committed, shed, send, release: () => { open(); gate = Promise.resolve(); } };
}

test('a QoS 0 flood is shed while another subscription is active; QoS 1 never; counts exact', { timeout: 30000 }, async (t) => {
  const store = openStore(storeOptionsSchema.parse({ path: join(tempDir(t), 'fair.db') }));
  t.after(() => store.close());
  const s = setup(store, true);
  await s.send(B, 0); // B active
  for (let i = 0; i < 1000; i++) await s.send(A, 0);
  await s.send(A, 1, 7); // QoS 1 mid-flood: taken, into the inbox
  await new Promise((r) => setImmediate(r)); // its group commit (ingest commits at the end of the turn)
  await s.send(B, 0);
  // A tick (pipeline.ts pushes them straight into the batcher): counted by the batcher, not by any subscription.
  s.batcher.push({ inboxId: null, dedupKey: null, topic: '', payload: Buffer.alloc(0), bytes: 0, receivedAt: Date.now(), t0: 0, tick: 0 });

  const [a, b] = s.ingest.queuedBySubscription() as [number, number];
  assert.equal(s.shed.length + a, 1001, 'every A message either queued or shed');
  assert.ok(s.shed.length > 0 && s.shed.every((x) => x === 'plant/+/flood'), `only A shed (${s.shed.length})`);
  assert.ok(a <= 258, `A held at about queueRows once B is active (${a})`);
  assert.equal(b, 2);
  assert.equal(s.batcher.queued, a + b + 1);

  s.release();
  await s.batcher.flush();
  assert.deepEqual(s.ingest.queuedBySubscription(), [0, 0], 'counted out exactly when the batches left');
  assert.equal(s.committed.filter((m) => m.topic === A && m.dedupKey !== null).length, 1, 'the QoS 1 message was queued');

  // Replay (the commit above stored nothing, so the QoS 1 inbox row is still there): counted in and out too.
  const r = setup(store, true);
  assert.equal(await r.ingest.replay(), 1);
  assert.deepEqual(r.ingest.queuedBySubscription(), [1, 0]);
  r.release();
  await r.batcher.flush();
  assert.deepEqual(r.ingest.queuedBySubscription(), [0, 0]);
});

test('nothing is shed with fairness off, nor while only one subscription is active', { timeout: 30000 }, async (t) => {
  const store = openStore(storeOptionsSchema.parse({ path: join(tempDir(t), 'fair.db') }));
  t.after(() => store.close());
  for (const [enabled, withB] of [[false, true], [true, false]] as const) {
    const s = setup(store, enabled);
    if (withB) await s.send(B, 0);
    for (let i = 0; i < 1000; i++) await s.send(A, 0);
    assert.equal(s.shed.length, 0, `enabled ${enabled}, B active ${withB}`);
    assert.equal(s.ingest.queuedBySubscription()[0], 1000);
    s.release();
    await s.batcher.flush();
    assert.deepEqual(s.ingest.queuedBySubscription(), [0, 0]);
  }
});
