// WAL checkpoints in a thread of their own: the store's connection stops checkpointing at commit, the thread
// copies the WAL's pages into the database file (seen in the file's size, which in WAL mode only a checkpoint
// changes), reports pages a reader still holds, and gives the checkpoints back to the store when it stops.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger } from '../../agent/log.js';
import { startCheckpointer } from '../../agent/store/checkpointer.js';
import { openStore, storeOptionsSchema } from '../../agent/store/store.js';
import type { PredictionRow } from '../../agent/store/rows.js';
import { teardown, tempDir, waitFor } from '../helpers/parts.js';

const row = (i: number): PredictionRow => ({
  receivedAt: i, asset: `a${i % 7}`, topic: 'plant/a/bearing', modelName: 'm', modelVersion: '1', features: [i, i / 2, i / 3, 1, 2, 3],
  outputs: [0.25, 0.75], label: 'x', score: 0.75, latencyMs: 1, inboxId: null, dedupKey: null,
});

/** Some commits of 100 rows each: a few hundred WAL pages, well under the 1,000 at which SQLite would checkpoint itself. */
function commit(store: ReturnType<typeof openStore>, from: number, batches: number): void {
  for (let b = 0; b < batches; b++) store.commitBatch(Array.from({ length: 100 }, (_, i) => row(from + b * 100 + i)), [], []);
}

test('the checkpoint thread moves the WAL into the database file while the store no longer checkpoints at commit', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'c.db');
  const store = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => store.close());
  assert.equal(store.durability().autoCheckpointPages, 1000, 'SQLite\'s own checkpoint at commit before the thread starts');
  const checkpointer = startCheckpointer(store, createLogger({ level: 'silent' }), 50);
  teardown(t, () => checkpointer.close());
  assert.equal(store.durability().autoCheckpointPages, 0, 'the store\'s connection leaves checkpoints to the thread');
  const before = statSync(path).size;
  commit(store, 0, 20);
  await waitFor('the database file to take the WAL\'s pages', () => statSync(path).size > before, 20000);
  await waitFor('a checkpoint with nothing left behind', () => checkpointer.status()?.behindPages === 0 && (checkpointer.status()?.walPages ?? 0) > 0, 20000);

  // A reader that holds an old snapshot keeps the newer pages from the file: the thread reports them behind.
  const reader = new Database(path, { readonly: true });
  teardown(t, () => reader.close());
  reader.exec('BEGIN');
  const seen = (reader.prepare('SELECT count(*) AS n FROM predictions').get() as { n: number }).n;
  assert.equal(seen, 2000);
  commit(store, 2000, 5);
  await waitFor('pages the reader holds, reported behind', () => (checkpointer.status()?.behindPages ?? 0) > 0, 20000);
  reader.exec('COMMIT');
  await waitFor('the reader gone, nothing behind', () => checkpointer.status()?.behindPages === 0, 20000);

  await checkpointer.close();
  assert.equal(checkpointer.alive, false);
  assert.equal(checkpointer.status(), null);
  assert.equal(store.durability().autoCheckpointPages, 1000, 'closed: the store checkpoints at commit again');
  const fresh = new Database(path, { readonly: true });
  assert.equal((fresh.prepare('SELECT count(*) AS n FROM predictions').get() as { n: number }).n, 2500, 'every committed row readable');
  fresh.close();
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } });
  return { log: createLogger({ level: 'info' }, sink), lines };
}

test('a failing checkpoint is logged once, its recovery once; a thread that stops gives the checkpoints back to the store', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.db');
  const store = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => store.close());
  const { log, lines } = capture();
  // The worker thread takes a copy of the environment when it starts.
  process.env.EDGE_AGENT_TEST_CHECKPOINT_FAIL = '3';
  process.env.EDGE_AGENT_TEST_CHECKPOINT_EXIT_AFTER = '8';
  const checkpointer = startCheckpointer(store, log, 20);
  delete process.env.EDGE_AGENT_TEST_CHECKPOINT_FAIL;
  delete process.env.EDGE_AGENT_TEST_CHECKPOINT_EXIT_AFTER;
  teardown(t, () => checkpointer.close());
  commit(store, 0, 2);
  await waitFor('the thread to stop', () => !checkpointer.alive, 20000);
  const msgs = lines.map((l) => l.msg);
  assert.equal(msgs.filter((m) => m === 'WAL checkpoint failed; the WAL grows until one succeeds').length, 1, JSON.stringify(msgs));
  assert.equal(msgs.filter((m) => m === 'WAL checkpoint succeeded again').length, 1, JSON.stringify(msgs));
  assert.ok(msgs.indexOf('WAL checkpoint failed; the WAL grows until one succeeds') < msgs.indexOf('WAL checkpoint succeeded again'));
  const stopped = lines.find((l) => l.msg === 'checkpoint thread stopped; the store checkpoints at commit again');
  assert.ok(stopped, JSON.stringify(msgs));
  assert.equal(store.durability().autoCheckpointPages, 1000, 'the store checkpoints at commit again');
});
