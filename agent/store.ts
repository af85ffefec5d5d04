// Store: the SQLite file in the data folder. Takes raw messages (the write-ahead inbox), and
// batches of predictions and dead letters; gives durable rows, pending inbox rows to replay at start,
// and the recent dedup keys that let a redelivered QoS 1 message be recognised.
//
// Durability: WAL mode. synchronous=NORMAL (the default) makes each commit a write() into the WAL
// without fsync: it survives a crash or kill -9 of the process, but the last commits can be lost on
// power loss or a kernel crash. synchronous=FULL fsyncs the WAL on every commit: it survives power
// loss too, at one fsync per commit (~0.4 ms here, slower on SD/eMMC).

import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { EdgeError } from './errors.js';
import { lockStore, type StoreLock } from './store-lock.js';

export const storeOptionsSchema = z
  .strictObject({
    /** The SQLite file. Its folder is created if missing. */
    path: z.string().min(1).default('/var/lib/edge-agent/edge-agent.db'),
    /** NORMAL survives a process crash; FULL also survives power loss (slower). */
    synchronous: z.enum(['NORMAL', 'FULL']).default('NORMAL'),
    busyTimeoutMs: z.number().int().nonnegative().default(5000),
  })
  .prefault({});

export type StoreOptions = z.infer<typeof storeOptionsSchema>;

export interface InboxMessage {
  receivedAt: number;
  topic: string;
  qos: number;
  dedupKey: string | null;
  payload: Buffer;
}

export interface InboxRow extends InboxMessage {
  id: number;
}

export interface PredictionRow {
  receivedAt: number;
  asset: string;
  topic: string;
  modelName: string;
  modelVersion: string;
  features: readonly number[];
  outputs: readonly number[];
  label: string | null;
  score: number | null;
  latencyMs: number;
  inboxId: number | null;
  dedupKey: string | null;
}

export interface DeadLetterRow {
  receivedAt: number;
  topic: string;
  reasonCode: string;
  reason: string;
  payload: Buffer;
  inboxId: number | null;
  dedupKey: string | null;
  /** The model that refused it (null: no model takes its topic). */
  model: string | null;
}

/** Forward-only migrations; PRAGMA user_version holds how many have run. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE inbox (
     id INTEGER PRIMARY KEY,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     qos INTEGER NOT NULL,
     dedup_key TEXT,
     payload BLOB NOT NULL
   );
   CREATE TABLE predictions (
     id INTEGER PRIMARY KEY,
     received_at INTEGER NOT NULL,
     asset TEXT NOT NULL,
     topic TEXT NOT NULL,
     model_name TEXT NOT NULL,
     model_version TEXT NOT NULL,
     features TEXT NOT NULL,
     outputs TEXT NOT NULL,
     label TEXT,
     score REAL,
     latency_ms REAL NOT NULL,
     inbox_id INTEGER,
     dedup_key TEXT,
     created_at INTEGER NOT NULL,
     synced_at INTEGER
   );
   CREATE INDEX predictions_unsynced ON predictions (id) WHERE synced_at IS NULL;
   CREATE TABLE dead_letters (
     id INTEGER PRIMARY KEY,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     reason_code TEXT NOT NULL,
     reason TEXT NOT NULL,
     payload BLOB NOT NULL,
     inbox_id INTEGER,
     dedup_key TEXT,
     created_at INTEGER NOT NULL
   );`,
  // The inbox's ids order the redelivery window across tables (predictions.inbox_id, dead_letters.inbox_id):
  // AUTOINCREMENT so an id is never reused after the inbox empties, seeded past every id already used.
  `CREATE TABLE inbox_v2 (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     qos INTEGER NOT NULL,
     dedup_key TEXT,
     payload BLOB NOT NULL
   );
   INSERT INTO inbox_v2 SELECT id, received_at, topic, qos, dedup_key, payload FROM inbox;
   DROP TABLE inbox;
   ALTER TABLE inbox_v2 RENAME TO inbox;
   DELETE FROM sqlite_sequence WHERE name = 'inbox';
   INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox', max(
     coalesce((SELECT max(id) FROM inbox), 0),
     coalesce((SELECT max(inbox_id) FROM predictions), 0),
     coalesce((SELECT max(inbox_id) FROM dead_letters), 0));`,
  // The model lifecycle's audit trail: every install, activation, refusal and rollback, with its reason.
  `CREATE TABLE model_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     model TEXT NOT NULL,
     version TEXT,
     event TEXT NOT NULL,
     reason TEXT NOT NULL,
     synced_at INTEGER
   );`,
  // Predictions of a shadow version (run beside the active one on the same rows, never published).
  `ALTER TABLE predictions ADD COLUMN role TEXT NOT NULL DEFAULT 'active';`,
  // Several models per agent: a dead letter names the model that refused it (null: no model takes its topic).
  `ALTER TABLE dead_letters ADD COLUMN model TEXT;`,
];

export interface Store {
  /** One inbox row; durable (per `synchronous`) once the surrounding group is committed. */
  appendInbox(msg: InboxMessage): number;
  /** Opens a group of inbox writes (one transaction); `commitGroup` makes them durable together. */
  beginGroup(): void;
  commitGroup(): void;
  /** Rolls back an open group after a failure; from then on the store refuses writes. */
  abortGroup(): void;
  /** One transaction: the rows go in and their inbox rows go out together. Gives prediction row ids. */
  commitBatch(predictions: readonly PredictionRow[], deadLetters: readonly DeadLetterRow[], inboxIds: readonly number[]): number[];
  pendingInbox(): InboxRow[];
  /** The keys of the last `limit` QoS 1 messages; `rowsPerMessage`: the most rows one message makes (one per model taking it). */
  recentDedupKeys(limit: number, rowsPerMessage?: number): string[];
  counts(): { predictions: number; deadLetters: number; inbox: number };
  /** Predictions a shadow version made on rows the active one served: stored with role 'shadow', never published. */
  commitShadow(predictions: readonly PredictionRow[]): void;
  /** One lifecycle event of a model (installed, activated, refused, rolled back...), kept for audit and sync. */
  recordModelEvent(e: { model: string; version: string | null; event: string; reason: string }): void;
  modelEvents(limit: number): { at: number; model: string; version: string | null; event: string; reason: string }[];
  /** Folder modes that let other users read the store (the inbox holds raw payloads), for a warning. */
  readonly exposure: string | null;
  /** What the connection really runs with (asserted in tests, shown by `config check`). */
  durability(): { journalMode: string; synchronous: string };
  readonly path: string;
  close(): void;
}

/**
 * The folder is created 0700 and the file 0600 (SQLite gives its -wal and -shm files the file's mode):
 * the inbox and dead letters hold raw payloads. A folder that already exists is not changed (it may be
 * shared); if others can enter it, `exposure` says so for a warning.
 */
function prepareFiles(path: string): string | null {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  else if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  for (const side of ['-wal', '-shm']) {
    if (existsSync(path + side) && (statSync(path + side).mode & 0o077) !== 0) chmodSync(path + side, 0o600);
  }
  const mode = statSync(dir).mode & 0o777;
  return mode & 0o077 ? `${dir} has mode ${mode.toString(8)}; 700 keeps other users out of the store` : null;
}

export function openStore(options: StoreOptions): Store {
  let db: Database.Database;
  let lock: StoreLock | null = null;
  let exposure: string | null;
  try {
    exposure = prepareFiles(options.path);
    lock = lockStore(options.path);
    db = new Database(options.path);
    db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
    db.pragma('journal_mode = WAL');
    // Set explicitly: better-sqlite3's build would otherwise pick its own default.
    db.pragma(`synchronous = ${options.synchronous}`);
    migrate(db);
  } catch (err) {
    lock?.release();
    if (err instanceof EdgeError) throw err;
    throw new EdgeError('EDGE_ERR_STORE', `cannot open ${options.path}: ${(err as Error).message}`, { cause: err });
  }

  const insertInbox = db.prepare(
    'INSERT INTO inbox (received_at, topic, qos, dedup_key, payload) VALUES (?, ?, ?, ?, ?)',
  );
  const insertPrediction = db.prepare(
    `INSERT INTO predictions (received_at, asset, topic, model_name, model_version, features, outputs,
       label, score, latency_ms, inbox_id, dedup_key, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertDead = db.prepare(
    `INSERT INTO dead_letters (received_at, topic, reason_code, reason, payload, inbox_id, dedup_key, created_at, model)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const begin = db.prepare('BEGIN');
  const commitTx = db.prepare('COMMIT');
  const deleteInbox = db.prepare('DELETE FROM inbox WHERE id = ?');
  const deleteInboxRange = db.prepare('DELETE FROM inbox WHERE id BETWEEN ? AND ?');
  const selectInbox = db.prepare('SELECT id, received_at, topic, qos, dedup_key, payload FROM inbox ORDER BY id');
  // Most recent first, inbox rows included: those are the ones whose PUBACKs a crash may have lost.
  // Ordered by inbox id (the order of arrival, never reused), not by received_at: the wall clock of a
  // line PC steps back and forth (NTP, a dead RTC battery), and a step back would push the newest keys
  // out of the window.
  const selectKeys = db.prepare(
    `SELECT dedup_key, max(seq) AS seq FROM (
       SELECT dedup_key, inbox_id AS seq FROM (SELECT dedup_key, inbox_id FROM predictions WHERE inbox_id IS NOT NULL AND dedup_key IS NOT NULL ORDER BY id DESC LIMIT @rows)
       UNION ALL SELECT dedup_key, inbox_id FROM (SELECT dedup_key, inbox_id FROM dead_letters WHERE inbox_id IS NOT NULL AND dedup_key IS NOT NULL ORDER BY id DESC LIMIT @rows)
       UNION ALL SELECT dedup_key, id FROM (SELECT dedup_key, id FROM inbox WHERE dedup_key IS NOT NULL ORDER BY id DESC LIMIT @limit))
     GROUP BY dedup_key ORDER BY seq DESC LIMIT @limit`,
  );
  const countAll = db.prepare(
    `SELECT (SELECT count(*) FROM predictions) AS predictions, (SELECT count(*) FROM dead_letters) AS deadLetters,
            (SELECT count(*) FROM inbox) AS inbox`,
  );

  const commit = db.transaction(
    (predictions: readonly PredictionRow[], deadLetters: readonly DeadLetterRow[], inboxIds: readonly number[]) => {
      const now = Date.now();
      const ids: number[] = [];
      for (const p of predictions) {
        const r = insertPrediction.run(
          p.receivedAt, p.asset, p.topic, p.modelName, p.modelVersion, JSON.stringify(p.features),
          JSON.stringify(p.outputs), p.label, p.score, p.latencyMs, p.inboxId, p.dedupKey, now,
        );
        ids.push(Number(r.lastInsertRowid));
      }
      for (const d of deadLetters) {
        insertDead.run(d.receivedAt, d.topic, d.reasonCode, d.reason, d.payload, d.inboxId, d.dedupKey, now, d.model);
      }
      // Inbox ids of a batch are usually one contiguous run: one range delete instead of a delete per row.
      const first = inboxIds[0];
      const last = inboxIds[inboxIds.length - 1];
      if (first !== undefined && last !== undefined && last - first + 1 === inboxIds.length && isAscending(inboxIds)) {
        deleteInboxRange.run(first, last);
      } else {
        for (const id of inboxIds) deleteInbox.run(id);
      }
      return ids;
    },
  );

  const insertShadow = db.prepare(
    `INSERT INTO predictions (received_at, asset, topic, model_name, model_version, features, outputs,
       label, score, latency_ms, inbox_id, dedup_key, created_at, role)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 'shadow')`,
  );
  const shadowTx = db.transaction((rows: readonly PredictionRow[]) => {
    const now = Date.now();
    for (const p of rows) {
      insertShadow.run(p.receivedAt, p.asset, p.topic, p.modelName, p.modelVersion, JSON.stringify(p.features), JSON.stringify(p.outputs), p.label, p.score, p.latencyMs, now);
    }
  });
  const insertEvent = db.prepare('INSERT INTO model_events (at, model, version, event, reason) VALUES (?, ?, ?, ?, ?)');
  const selectEvents = db.prepare('SELECT at, model, version, event, reason FROM model_events ORDER BY id DESC LIMIT ?');
  let closed = false;
  let failed: EdgeError | null = null;
  return {
    path: options.path,
    exposure,
    commitShadow: (rows) => {
      if (failed) throw failed;
      shadowTx(rows);
    },
    recordModelEvent: (e) => {
      if (failed) throw failed;
      // Inside an open inbox group it is committed with that group (the one write path is issue 7's).
      insertEvent.run(Date.now(), e.model, e.version, e.event, e.reason);
    },
    modelEvents: (limit) => selectEvents.all(limit) as { at: number; model: string; version: string | null; event: string; reason: string }[],
    appendInbox: (m) => Number(insertInbox.run(m.receivedAt, m.topic, m.qos, m.dedupKey, m.payload).lastInsertRowid),
    beginGroup: () => {
      if (failed) throw failed;
      begin.run();
    },
    commitGroup: () => void commitTx.run(),
    abortGroup: () => {
      failed ??= new EdgeError('EDGE_ERR_STORE', `${options.path}: a commit failed; the store takes no more writes until restart`);
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // The connection may be unusable; closing it at shutdown is all that is left.
      }
    },
    commitBatch: (p, d, i) => {
      if (failed) throw failed;
      return commit(p, d, i);
    },
    pendingInbox: () =>
      (selectInbox.all() as { id: number; received_at: number; topic: string; qos: number; dedup_key: string | null; payload: Buffer }[]).map(
        (r) => ({ id: r.id, receivedAt: r.received_at, topic: r.topic, qos: r.qos, dedupKey: r.dedup_key, payload: r.payload }),
      ),
    recentDedupKeys: (limit, rowsPerMessage = 1) => (selectKeys.all({ limit, rows: limit * rowsPerMessage }) as { dedup_key: string }[]).map((r) => r.dedup_key),
    counts: () => countAll.get() as { predictions: number; deadLetters: number; inbox: number },
    durability: () => ({
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      synchronous: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][db.pragma('synchronous', { simple: true }) as number] ?? 'unknown',
    }),
    close: () => {
      if (closed) return;
      closed = true;
      try {
        db.close();
      } finally {
        lock?.release();
      }
    },
  };
}

function isAscending(ids: readonly number[]): boolean {
  for (let i = 1; i < ids.length; i++) if ((ids[i] as number) <= (ids[i - 1] as number)) return false;
  return true;
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new EdgeError(
      'EDGE_ERR_STORE',
      `${db.name}: schema version ${current} is newer than this agent knows (${MIGRATIONS.length}); upgrade the agent`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
