// The SQLite store: WAL with the synchronous level the config names (NORMAL by default: survives a
// process crash; FULL: also power loss), migrations recorded in user_version, a batch commit that
// stores rows and removes their inbox rows together, and a refusal of a newer schema.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, openStore, storeOptionsSchema } from '../../agent/store/store.js';
import { teardown, tempDir } from '../helpers/parts.js';

test('default durability is WAL + synchronous=NORMAL; FULL when configured', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  assert.equal(storeOptionsSchema.parse({}).synchronous, 'NORMAL');
  const normal = openStore(storeOptionsSchema.parse({ path: join(dir, 'sub', 'n.db') }));
  assert.deepEqual(normal.durability(), { journalMode: 'wal', synchronous: 'NORMAL', journalSizeLimit: 64 * 1024 * 1024, autoCheckpointPages: 1000 });
  normal.close();
  const full = openStore(storeOptionsSchema.parse({ path: join(dir, 'f.db'), synchronous: 'FULL' }));
  assert.deepEqual(full.durability(), { journalMode: 'wal', synchronous: 'FULL', journalSizeLimit: 64 * 1024 * 1024, autoCheckpointPages: 1000 });
  full.close();
  const db = new Database(join(dir, 'f.db'));
  assert.equal(db.pragma('user_version', { simple: true }), 9, 'migrations recorded');
  db.close();
});

test('commitBatch stores predictions and dead letters and deletes their inbox rows in one transaction', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const s = openStore(storeOptionsSchema.parse({ path: join(dir, 'a.db') }));
  teardown(t, () => s.close());
  const a = s.appendInbox({ receivedAt: 1, topic: 't/a', qos: 1, dedupKey: '1:x', payload: Buffer.from('{}') });
  const b = s.appendInbox({ receivedAt: 2, topic: 't/b', qos: 1, dedupKey: '2:y', payload: Buffer.from('{') });
  assert.deepEqual(s.inboxPage(0, 1000).map((r) => r.id), [a, b]);
  const ids = s.commitBatch(
    [{ receivedAt: 1, asset: 'a', topic: 't/a', modelName: 'm', modelVersion: '1', features: [1, 2], outputs: [0.5], label: 'x', score: 0.5, latencyMs: 1, inboxId: a, dedupKey: '1:x' }],
    [{ receivedAt: 2, topic: 't/b', reasonCode: 'REJECT_MALFORMED_JSON', reason: 'bad', payload: Buffer.from('{'), inboxId: b, dedupKey: '2:y', model: 'm' }],
    [a, b],
  );
  assert.equal(ids.length, 1);
  assert.deepEqual(s.counts(), { predictions: 1, deadLetters: 1, inbox: 0 });
  assert.deepEqual(s.recentDedupKeys(10).sort(), ['1:x', '2:y']);
  // A failing batch leaves nothing half-done: the inbox row stays for a replay.
  const c = s.appendInbox({ receivedAt: 3, topic: 't/c', qos: 1, dedupKey: null, payload: Buffer.from('{}') });
  const row = { receivedAt: 3, asset: 'c', topic: 't/c', modelName: 'm', modelVersion: '1', features: [1], outputs: [1], label: null, score: null, latencyMs: 1, inboxId: c, dedupKey: null };
  // The second row breaks a NOT NULL constraint (NaN binds as NULL) after the first went in.
  assert.throws(() => s.commitBatch([row, { ...row, latencyMs: Number.NaN }], [], [c]), /NOT NULL/);
  assert.deepEqual(s.counts(), { predictions: 1, deadLetters: 1, inbox: 1 });
});

test('commitBatch deletes exactly the inbox rows it names, contiguous or not', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const s = openStore(storeOptionsSchema.parse({ path: join(dir, 'a.db') }));
  teardown(t, () => s.close());
  const ids = Array.from({ length: 6 }, (_, i) => s.appendInbox({ receivedAt: i, topic: 't', qos: 1, dedupKey: null, payload: Buffer.from('{}') }));
  s.commitBatch([], [], [ids[0]!, ids[2]!, ids[3]!]); // not contiguous: row by row
  assert.deepEqual(s.inboxPage(0, 1000).map((r) => r.id), [ids[1], ids[4], ids[5]]);
  s.commitBatch([], [], [ids[4]!, ids[5]!]); // contiguous: one range
  assert.deepEqual(s.inboxPage(0, 1000).map((r) => r.id), [ids[1]]);
});

test('a database from a newer agent is refused with EDGE_ERR_STORE', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'new.db');
  const db = new Database(path);
  db.pragma('user_version = 99');
  db.close();
  assert.throws(() => openStore(storeOptionsSchema.parse({ path })), (err: Error & { code?: string }) => err.code === 'EDGE_ERR_STORE' && /schema version 99 is newer/.test(err.message));
});

test('the store folder is created 0700 and the store files are 0600', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'fresh', 'agent.db');
  const s = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => s.close());
  s.appendInbox({ receivedAt: 1, topic: 't', qos: 1, dedupKey: null, payload: Buffer.from('secret payload') });
  assert.equal(statSync(join(dir, 'fresh')).mode & 0o777, 0o700);
  for (const f of ['agent.db', 'agent.db-wal', 'agent.db-shm', 'agent.db-lock']) {
    assert.equal(statSync(join(dir, 'fresh', f)).mode & 0o777, 0o600, f);
  }
  assert.equal(s.exposure, null);
  // An existing folder open to others is left alone (it may be shared) but reported.
  const shared = join(dir, 'shared');
  mkdirSync(shared, { mode: 0o755 });
  chmodSync(shared, 0o755);
  const s2 = openStore(storeOptionsSchema.parse({ path: join(shared, 'a.db') }));
  teardown(t, () => s2.close());
  assert.match(s2.exposure ?? '', /mode 755/);
  assert.equal(statSync(join(shared, 'a.db')).mode & 0o777, 0o600);
});

test('the redelivery window follows arrival order, not the wall clock, and inbox ids are never reused', (t) => {
  const dir = tempDir(t);
  const s = openStore(storeOptionsSchema.parse({ path: join(dir, 'a.db') }));
  teardown(t, () => s.close());
  const now = Date.now();
  // 5 readings processed, then the clock steps back an hour and 3 more arrive (still in the inbox).
  const first = Array.from({ length: 5 }, (_, i) => s.appendInbox({ receivedAt: now + i, topic: 't', qos: 1, dedupKey: `old-${i}`, payload: Buffer.from('{}') }));
  s.commitBatch([], first.map((id, i) => ({ receivedAt: now + i, topic: 't', reasonCode: 'REJECT_NOT_OBJECT', reason: 'x', payload: Buffer.from('1'), inboxId: id, dedupKey: `old-${i}`, model: 'm' })), first);
  assert.equal(s.counts().inbox, 0);
  const later = Array.from({ length: 3 }, (_, i) => s.appendInbox({ receivedAt: now - 3_600_000 + i, topic: 't', qos: 1, dedupKey: `new-${i}`, payload: Buffer.from('{}') }));
  assert.ok((later[0] as number) > (first[4] as number), `inbox ids go on after the inbox emptied (${later[0]} after ${first[4]})`);
  assert.deepEqual(s.recentDedupKeys(3), ['new-2', 'new-1', 'new-0']);
  assert.deepEqual(s.recentDedupKeys(5), ['new-2', 'new-1', 'new-0', 'old-4', 'old-3']);
});

test('migration 2 keeps inbox rows and continues inbox ids past every id already used', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'v1.db');
  const db = new Database(path);
  db.exec(MIGRATIONS[0] as string);
  db.pragma('user_version = 1');
  db.prepare(`INSERT INTO dead_letters (received_at, topic, reason_code, reason, payload, inbox_id, dedup_key, created_at) VALUES (1, 't', 'R', 'r', x'00', 500, 'k500', 1)`).run();
  db.prepare(`INSERT INTO inbox (id, received_at, topic, qos, dedup_key, payload) VALUES (7, 1, 't', 1, 'k7', x'7b7d')`).run();
  db.close();
  const s = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => s.close());
  assert.deepEqual(s.inboxPage(0, 1000).map((r) => [r.id, r.dedupKey]), [[7, 'k7']]);
  assert.equal(s.appendInbox({ receivedAt: 2, topic: 't', qos: 1, dedupKey: 'k', payload: Buffer.from('{}') }), 501);
});

test('a second open of the same store is refused with EDGE_ERR_STORE_LOCKED naming the holder', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a.db');
  const s = openStore(storeOptionsSchema.parse({ path }));
  assert.throws(
    () => openStore(storeOptionsSchema.parse({ path })),
    (err: Error & { code?: string }) => err.code === 'EDGE_ERR_STORE_LOCKED' && err.message.includes(`pid ${process.pid}`),
  );
  s.close();
  const again = openStore(storeOptionsSchema.parse({ path }));
  again.close();
});

test('the dedup window counts messages, not rows: a message predicted by several models is one key', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const s = openStore(storeOptionsSchema.parse({ path: join(dir, 'a.db') }));
  teardown(t, () => s.close());
  const ids = Array.from({ length: 10 }, (_, i) => s.appendInbox({ receivedAt: i, topic: 't', qos: 1, dedupKey: `k${i}`, payload: Buffer.from('{}') }));
  const row = (model: string, i: number) => ({ receivedAt: i, asset: 'a', topic: 't', modelName: model, modelVersion: '1', features: [1], outputs: [1], label: null, score: null, latencyMs: 1, inboxId: ids[i] as number, dedupKey: `k${i}` });
  s.commitBatch(ids.flatMap((_, i) => [row('a', i), row('b', i)]), [], ids);
  assert.deepEqual(s.recentDedupKeys(10, 2), Array.from({ length: 10 }, (_, i) => `k${9 - i}`), 'the last 10 messages, each once');
  assert.equal(s.recentDedupKeys(10).length, 5, 'read as one row per message, the window would hold half of them');
});

test('one write path: a write made while a group of inbox rows is open commits the group first, then itself', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a.db');
  const s = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => s.close());
  s.appendInbox({ receivedAt: 1, topic: 't', qos: 1, dedupKey: 'k1', payload: Buffer.from('{}') });
  const reader = new Database(path, { readonly: true });
  teardown(t, () => reader.close());
  const seen = () => reader.prepare('SELECT (SELECT count(*) FROM inbox) AS inbox, (SELECT count(*) FROM model_events) AS events').get();
  assert.deepEqual(seen(), { inbox: 0, events: 0 }, 'the open group is not visible to other connections');
  s.recordModelEvent({ model: 'm', version: '1', event: 'installed', reason: 'test' });
  assert.deepEqual(seen(), { inbox: 1, events: 1 }, 'the event is committed on its own, after the group');
  // A later group is still a group: its rows are visible only once committed.
  s.appendInbox({ receivedAt: 2, topic: 't', qos: 1, dedupKey: 'k2', payload: Buffer.from('{}') });
  assert.deepEqual(seen(), { inbox: 1, events: 1 });
  s.commitGroup();
  assert.deepEqual(seen(), { inbox: 2, events: 1 });
});

test('migration 6 keeps prediction and dead-letter rows and ids, and ids are never reused after every row is deleted', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'v5.db');
  const db = new Database(path);
  for (let v = 0; v < 5; v++) db.exec(MIGRATIONS[v] as string);
  db.pragma('user_version = 5');
  db.prepare(`INSERT INTO predictions (id, received_at, asset, topic, model_name, model_version, features, outputs, label, score, latency_ms, inbox_id, dedup_key, created_at)
    VALUES (41, 1, 'a', 't', 'm', '1', '[1]', '[1]', 'x', 0.5, 1, 3, 'k3', 1)`).run();
  db.prepare(`INSERT INTO dead_letters (id, received_at, topic, reason_code, reason, payload, inbox_id, dedup_key, created_at, model) VALUES (9, 1, 't', 'R', 'r', x'00', 4, 'k4', 1, 'm')`).run();
  db.close();
  const s = openStore(storeOptionsSchema.parse({ path }));
  s.close();
  const after = new Database(path);
  teardown(t, () => after.close());
  assert.deepEqual(after.prepare('SELECT id, dedup_key AS k, role FROM predictions').all(), [{ id: 41, k: 'k3', role: 'active' }]);
  assert.deepEqual(after.prepare('SELECT id, model FROM dead_letters').all(), [{ id: 9, model: 'm' }]);
  assert.match((after.prepare("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string }).value, /^[0-9a-f]{32}$/);
  after.exec('DELETE FROM predictions; DELETE FROM dead_letters;');
  after.prepare(`INSERT INTO predictions (received_at, asset, topic, model_name, model_version, features, outputs, latency_ms, created_at) VALUES (1, 'a', 't', 'm', '1', '[]', '[]', 1, 1)`).run();
  after.prepare(`INSERT INTO dead_letters (received_at, topic, reason_code, reason, payload, created_at) VALUES (1, 't', 'R', 'r', x'00', 1)`).run();
  assert.deepEqual(after.prepare('SELECT id FROM predictions').all(), [{ id: 42 }], 'a prediction id is never used twice');
  assert.deepEqual(after.prepare('SELECT id FROM dead_letters').all(), [{ id: 10 }], 'a dead-letter id is never used twice');
});

test('the sync backlog (read without counting) equals a count of the rows above each cursor, through drops and trims', { timeout: 60_000 }, (t) => {
  const path = join(tempDir(t), 'a.db');
  const store = openStore(storeOptionsSchema.parse({ path }));
  teardown(t, () => store.close());
  const row = (i: number) => ({ receivedAt: i, asset: 'm1', topic: 'plant/m1/bearing', modelName: 'm', modelVersion: '1.0.0', features: [i], outputs: [0.5], label: 'a', score: 0.5, latencyMs: 1, inboxId: null, dedupKey: null });
  for (let b = 0; b < 4; b++) store.commitBatch(Array.from({ length: 3000 }, (_, i) => row(b * 3000 + i)), [], []);
  // Target a has the first 2,000 rows, b the first 7,000, c the first 1,500.
  store.sync.ack('a', 'predictions', 2000, 2000, 1);
  store.sync.ack('b', 'predictions', 7000, 7000, 1);
  store.sync.ack('c', 'predictions', 1500, 1500, 1);
  const other = new Database(path, { readonly: true });
  teardown(t, () => other.close());
  const counted = (acked: number) => (other.prepare('SELECT count(*) AS n, min(created_at) AS at FROM predictions WHERE id > ?').get(acked) as { n: number; at: number | null });
  const check = (when: string) => {
    for (const [target, acked] of [['a', 2000], ['b', 7000], ['c', 1500]] as const) {
      const c = counted(acked);
      assert.deepEqual(store.sync.backlog(target, 'predictions'), { rows: c.n, oldestAt: c.at }, `${when}: target ${target}`);
    }
  };
  check('before any drop');
  store.retention.trimSynced('predictions', 1500); // synced by every target: at or below all cursors
  check('after a trim');
  store.retention.dropOldest('predictions', 'test'); // ids 1501-6500: straddles a's cursor, above c's, below b's
  check('after a drop straddling a cursor');
  store.retention.dropOldest('predictions', 'test'); // ids 6501-11500: straddles b's cursor
  check('after a second drop');
  store.retention.dropOldest('predictions', 'test'); // the last 500
  check('with every row dropped');
  assert.equal(store.sync.backlog('c', 'predictions').rows, 0);
});
