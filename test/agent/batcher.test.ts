// Micro-batching: cut at maxBatchRows, at the end of a turn or after maxWaitMs, commits strictly in arrival order,
// backpressure when the queue is full, and flush() leaves nothing behind.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBatcher } from '../../agent/infer/batcher.js';

test('batches cut at maxBatchRows, committed in order, flush leaves nothing', { timeout: 30000 }, async () => {
  const committed: number[][] = [];
  let slow = true;
  const b = createBatcher<number, number>(
    { maxBatchRows: 4, maxWaitMs: 1000, maxQueuedRows: 100 },
    // The first batch is slower than the second: commits must still come in arrival order.
    (batch) => new Promise((r) => setTimeout(() => r(batch.length), slow ? ((slow = false), 30) : 1)),
    (batch) => void committed.push(batch),
    (err) => assert.fail(String(err)),
  );
  for (let i = 0; i < 10; i++) b.push(i);
  await b.flush();
  assert.deepEqual(committed, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.equal(b.queued, 0);
});

test('a partial batch goes out after maxWaitMs without a flush', { timeout: 30000 }, async () => {
  const committed: number[][] = [];
  let done!: () => void;
  const seen = new Promise<void>((r) => (done = r));
  const b = createBatcher<number, void>({ maxBatchRows: 100, maxWaitMs: 5, maxQueuedRows: 1000 }, async () => undefined, (batch) => {
    committed.push(batch);
    done();
  }, (err) => assert.fail(String(err)));
  b.push(1);
  b.push(2);
  await seen;
  assert.deepEqual(committed, [[1, 2]]);
});

test('push reports a full queue and drained() resolves once there is room', { timeout: 30000 }, async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = createBatcher<number, void>({ maxBatchRows: 2, maxWaitMs: 1, maxQueuedRows: 6 }, () => gate, () => undefined, (err) => assert.fail(String(err)));
  const room = [1, 2, 3, 4, 5, 6].map((i) => b.push(i));
  assert.deepEqual(room, [true, true, true, true, true, false]);
  let drained = false;
  const waiting = b.drained().then(() => (drained = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(drained, false);
  release();
  await waiting;
  assert.ok(b.queued < 6);
  await b.flush();
});

test('a commit that throws is reported, and later batches still commit', { timeout: 30000 }, async () => {
  const errors: unknown[] = [];
  const committed: number[][] = [];
  const b = createBatcher<number, void>({ maxBatchRows: 1, maxWaitMs: 1, maxQueuedRows: 10 }, async () => undefined, (batch) => {
    if (batch[0] === 1) throw new Error('disk full');
    committed.push(batch);
  }, (err) => errors.push(err));
  [0, 1, 2].forEach((i) => b.push(i));
  await b.flush();
  assert.deepEqual(committed, [[0], [2]]);
  assert.equal((errors[0] as Error).message, 'disk full');
});

test('maxWaitMs 0: a batch leaves at the end of the turn, and rows queued while both slots are busy leave together', { timeout: 30000 }, async () => {
  const gates: (() => void)[] = [];
  const committed: number[][] = [];
  const b = createBatcher<number, void>(
    { maxBatchRows: 100, maxWaitMs: 0, maxQueuedRows: 1000 },
    () => new Promise<void>((r) => gates.push(r)),
    (batch) => void committed.push(batch),
    (err) => assert.fail(String(err)),
  );
  const turn = () => new Promise((r) => setImmediate(r));
  b.push(1);
  await turn();
  b.push(2);
  await turn();
  assert.equal(gates.length, 2, 'two batches in the model: [1] and [2]');
  b.push(3);
  b.push(4);
  b.push(5);
  await turn();
  assert.equal(gates.length, 2, 'no slot free: 3, 4, 5 wait');
  gates[0]!();
  await new Promise<void>((resolve) => {
    const check = () => (gates.length === 3 ? resolve() : setImmediate(check));
    check();
  });
  gates[1]!();
  gates[2]!();
  await b.flush();
  assert.deepEqual(committed, [[1], [2], [3, 4, 5]]);
});
