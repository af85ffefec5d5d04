// Store schema: the forward-only migrations of the SQLite file (PRAGMA user_version holds how many have
// run) and the function that runs the missing ones at open. An agent refuses a file from a newer agent.

import type Database from 'better-sqlite3';
import { EdgeError } from '../errors.js';

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
  // Upstream sync. Row ids build the idempotency keys of synced batches, so they must never be reused:
  // predictions and dead letters get AUTOINCREMENT (rebuilt, their ids kept and continued). The store's
  // own random id makes keys unique across agents and across a store recreated from scratch. Per target
  // and kind of row: the cursor (the last row id the target acknowledged), the batch in flight (sent again
  // with the same key after a crash), and what the target said last; batches a target refused for good.
  `CREATE TABLE predictions_v6 (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
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
     role TEXT NOT NULL DEFAULT 'active'
   );
   INSERT INTO predictions_v6 SELECT id, received_at, asset, topic, model_name, model_version, features, outputs, label, score,
     latency_ms, inbox_id, dedup_key, created_at, role FROM predictions;
   DROP TABLE predictions;
   ALTER TABLE predictions_v6 RENAME TO predictions;
   CREATE TABLE dead_letters_v6 (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     reason_code TEXT NOT NULL,
     reason TEXT NOT NULL,
     payload BLOB NOT NULL,
     inbox_id INTEGER,
     dedup_key TEXT,
     created_at INTEGER NOT NULL,
     model TEXT
   );
   INSERT INTO dead_letters_v6 SELECT id, received_at, topic, reason_code, reason, payload, inbox_id, dedup_key, created_at, model FROM dead_letters;
   DROP TABLE dead_letters;
   ALTER TABLE dead_letters_v6 RENAME TO dead_letters;
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
   CREATE TABLE sync_state (
     target TEXT NOT NULL,
     kind TEXT NOT NULL,
     acked_id INTEGER NOT NULL DEFAULT 0,
     pending_first INTEGER,
     pending_last INTEGER,
     pending_key TEXT,
     rows_sent INTEGER NOT NULL DEFAULT 0,
     bytes_sent INTEGER NOT NULL DEFAULT 0,
     last_success_at INTEGER,
     last_error TEXT,
     last_error_at INTEGER,
     PRIMARY KEY (target, kind)
   );
   CREATE TABLE sync_rejected (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     target TEXT NOT NULL,
     kind TEXT NOT NULL,
     first_id INTEGER NOT NULL,
     last_id INTEGER NOT NULL,
     idempotency_key TEXT NOT NULL,
     status INTEGER,
     response TEXT
   );`,
  // Rows the disk budget dropped before every target had them: each drop is a gap, synced upstream like any row.
  `CREATE TABLE gaps (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     kind TEXT NOT NULL,
     first_id INTEGER NOT NULL,
     last_id INTEGER NOT NULL,
     rows INTEGER NOT NULL,
     reason TEXT NOT NULL
   );`,
  // Ground truth (agent/observe/truth.ts). label_inbox: label messages stored before their PUBACK, waiting to
  // be joined (inbox_seen: the readings' inbox sequence when the label came; it is joined once those readings
  // are committed). labels: each label joined to a prediction, synced as its own kind with its own cursor, so
  // that a label reaches upstream even when its prediction was synced before it came. No index is added on
  // predictions: the join looks predictions up in memory (truth.ts), so the prediction path writes no more.
  `CREATE TABLE label_inbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     dedup_key TEXT,
     inbox_seen INTEGER NOT NULL,
     payload BLOB NOT NULL
   );
   CREATE INDEX label_inbox_dedup ON label_inbox (dedup_key);
   CREATE TABLE labels (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     prediction_id INTEGER NOT NULL,
     model_name TEXT NOT NULL,
     model_version TEXT NOT NULL,
     join_key TEXT NOT NULL,
     outcome TEXT NOT NULL,
     value REAL,
     predicted_label TEXT,
     predicted_score REAL,
     correct INTEGER,
     abs_error REAL,
     label_at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     dedup_key TEXT,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX labels_prediction ON labels (prediction_id);
   CREATE INDEX labels_dedup ON labels (dedup_key);`,
  // Payload styles that hold messages (tags joined per asset, Sparkplug B, windows: agent/ingest/assemble.ts).
  // inbox_done: which models consumed an inbox row that is still held (by that model's join or window, or by
  // another model): a replay gives it to them to rebuild their state only, never to make a row again.
  // predictions.quality: the data-quality gate's flags (imputed or flagged features), JSON, null when clean.
  // sparkplug_births: each Sparkplug B node's and device's last birth (metric names, aliases, datatypes), so
  // that data after a restart can still be decoded. historical: Sparkplug B metrics sent as is_historical,
  // kept apart from live values. window_marks: per model and asset, the time of the newest window committed, so
  // that the windows rebuilt by a replay go on at the cadence they had.
  `CREATE TABLE inbox_done (
     inbox_id INTEGER NOT NULL,
     model TEXT NOT NULL,
     PRIMARY KEY (inbox_id, model)
   ) WITHOUT ROWID;
   ALTER TABLE predictions ADD COLUMN quality TEXT;
   CREATE TABLE sparkplug_births (
     key TEXT PRIMARY KEY,
     record TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE historical (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     received_at INTEGER NOT NULL,
     model TEXT NOT NULL,
     asset TEXT NOT NULL,
     feature TEXT NOT NULL,
     ts INTEGER NOT NULL,
     value TEXT NOT NULL,
     topic TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE window_marks (
     model TEXT NOT NULL,
     asset TEXT NOT NULL,
     at REAL NOT NULL,
     PRIMARY KEY (model, asset)
   ) WITHOUT ROWID;`,
];

export function migrate(db: Database.Database): void {
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
