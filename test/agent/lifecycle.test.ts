// The lifecycle closes parts in reverse order, each within its budget; a part that overruns is named,
// force-closed, and does not keep the parts after it from closing.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLifecycle } from '../../agent/lifecycle.js';
import { createLogger } from '../../agent/log.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } });
  return { log: createLogger({ level: 'debug' }, sink), lines };
}

test('parts close in reverse order; a hung one is named and force-closed, the rest still close', { timeout: 10_000 }, async () => {
  const { log, lines } = capture();
  const life = createLifecycle(log);
  const events: string[] = [];
  life.add({ name: 'store', close: () => void events.push('close store') });
  life.add({
    name: 'broker connection',
    closeBudgetMs: 50,
    onOverrun: 'results not yet acknowledged are in the store',
    close: () => new Promise(() => {
      events.push('close broker connection (hangs)');
      // Read from inside the hanging part (not after a fixed delay: a busy machine may not be there yet).
      queueMicrotask(() => (seenWhileHung = life.closing));
    }),
    destroy: () => void events.push('destroy broker connection'),
  });
  life.add({ name: 'ingest', close: async () => { events.push('close ingest'); await new Promise((r) => setTimeout(r, 5)); } });
  let seenWhileHung: string | null = null;
  const closing = life.close(5_000);
  const report = await closing;
  assert.deepEqual(events, ['close ingest', 'close broker connection (hangs)', 'destroy broker connection', 'close store']);
  assert.deepEqual(report.forced.map((f) => f.part), ['broker connection']);
  assert.equal(seenWhileHung, 'broker connection');
  assert.equal(life.closing, null);
  const warn = lines.find((l) => l.msg === 'part did not close in time; force-closing it');
  assert.deepEqual([warn?.part, warn?.budgetMs, warn?.effect], ['broker connection', 50, 'results not yet acknowledged are in the store']);
  assert.equal(await life.close(5_000), report, 'idempotent');
});

test('the overall deadline bounds the whole close; a part that throws is force-closed too', { timeout: 10_000 }, async () => {
  const { log } = capture();
  const life = createLifecycle(log);
  const events: string[] = [];
  life.add({ name: 'a', close: () => void events.push('close a'), destroy: () => void events.push('destroy a') });
  life.add({ name: 'b', close: () => { throw new Error('b broke'); }, destroy: () => void events.push('destroy b') });
  life.add({ name: 'c', close: () => new Promise(() => undefined), destroy: () => void events.push('destroy c') });
  const t0 = performance.now();
  const report = await life.close(100);
  assert.ok(performance.now() - t0 < 2_000);
  assert.deepEqual(report.forced.map((f) => f.part), ['c', 'b']);
  assert.match(report.forced[0]!.why, /^did not close within \d+ ms$/);
  assert.equal(report.forced[1]!.why, 'b broke');
  assert.deepEqual(events, ['destroy c', 'destroy b', 'close a']);
  await life.destroy();
  assert.deepEqual(events.slice(3), ['destroy c', 'destroy b', 'destroy a']);
});
