// Ground truth in the store: label messages written before their PUBACK (label_inbox), read back to be
// joined, and the joined labels (labels, a synced kind), written with the label inbox rows out in one
// transaction; plus the reads that seed the join's memory at start (recent predictions, recent labels).

import type Database from 'better-sqlite3';
import type { DeadLetterRow } from './rows.js';
import type { Writer } from './writer.js';

export interface LabelInboxRow { id: number; receivedAt: number; topic: string; dedupKey: string | null; inboxSeen: number; payload: Buffer }

/** One label joined to one prediction (a label that joins several models' predictions gives a row for each). */
export interface LabelRow {
  predictionId: number;
  modelName: string;
  modelVersion: string;
  joinKey: string;
  /** The measured outcome: the label (classification) or the number as text (regression). */
  outcome: string;
  /** Regression: the measured number; else null. */
  value: number | null;
  predictedLabel: string | null;
  predictedScore: number | null;
  /** Classification: 1 when the predicted label is the measured one, else 0; regression: null. */
  correct: number | null;
  /** Regression: |score - value|; classification: null. */
  absError: number | null;
  labelAt: number;
  receivedAt: number;
  topic: string;
  dedupKey: string | null;
}

/** What the join remembers of a prediction. */
export interface RecentPrediction { id: number; receivedAt: number; asset: string; model: string; version: string; label: string | null; score: number | null }

export function createLabels(db: Database.Database, writer: Writer, insertDead: (rows: readonly DeadLetterRow[]) => void) {
  const seq = db.prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0) AS seq");
  const insertInbox = db.prepare('INSERT INTO label_inbox (received_at, topic, dedup_key, inbox_seen, payload) VALUES (?, ?, ?, ?, ?)');
  const firstReading = db.prepare('SELECT min(id) AS id FROM inbox');
  const pending = db.prepare('SELECT id, received_at, topic, dedup_key, inbox_seen, payload FROM label_inbox WHERE id > ? ORDER BY id LIMIT ?');
  const pendingCount = db.prepare('SELECT count(*) AS n FROM label_inbox');
  const deleteInbox = db.prepare('DELETE FROM label_inbox WHERE id = ?');
  const seen = db.prepare('SELECT (SELECT count(*) FROM label_inbox WHERE dedup_key = @k) + (SELECT count(*) FROM labels WHERE dedup_key = @k) AS n');
  const insertLabel = db.prepare(
    `INSERT INTO labels (prediction_id, model_name, model_version, join_key, outcome, value, predicted_label, predicted_score, correct, abs_error,
       label_at, received_at, topic, dedup_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const labelled = db.prepare('SELECT count(*) AS n FROM labels WHERE prediction_id = ?');
  // Newest first, active rows only (a shadow version's predictions are not served): stops at `since` or `limit`.
  const recent = db.prepare("SELECT id, received_at, asset, model_name, model_version, label, score FROM predictions WHERE role = 'active' ORDER BY id DESC");
  const recentLabels = db.prepare('SELECT model_name, model_version, correct, abs_error FROM labels ORDER BY id DESC LIMIT ?');
  const totals = db.prepare('SELECT model_name, model_version, count(*) AS n FROM labels GROUP BY 1, 2');
  return {
    /** Stores a label message in a transaction of its own (labels are few: one per part or measurement). Gives its id. */
    append: (m: { receivedAt: number; topic: string; dedupKey: string | null; payload: Buffer }) =>
      writer.write(() => Number(insertInbox.run(m.receivedAt, m.topic, m.dedupKey, (seq.get() as { seq: number }).seq, m.payload).lastInsertRowid)),
    /** A label with this key is stored already (waiting or joined): a redelivery. */
    holds: (dedupKey: string) => (seen.get({ k: dedupKey }) as { n: number }).n > 0,
    /** Label inbox rows after `after`, oldest first. */
    pending: (after: number, limit: number): LabelInboxRow[] =>
      (pending.all(after, limit) as { id: number; received_at: number; topic: string; dedup_key: string | null; inbox_seen: number; payload: Buffer }[]).map((r) => ({
        id: r.id, receivedAt: r.received_at, topic: r.topic, dedupKey: r.dedup_key, inboxSeen: r.inbox_seen, payload: r.payload,
      })),
    pendingCount: () => (pendingCount.get() as { n: number }).n,
    /** The oldest reading still in the inbox (not yet committed as a prediction), or null. */
    firstReading: () => (firstReading.get() as { id: number | null }).id,
    /** Whether a prediction has a label already. */
    labelled: (predictionId: number) => (labelled.get(predictionId) as { n: number }).n > 0,
    /** One transaction: joined labels and dead letters in, their label inbox rows out. */
    commit: (rows: readonly LabelRow[], dead: readonly DeadLetterRow[], inboxIds: readonly number[]) =>
      writer.write(() => {
        const now = Date.now();
        for (const l of rows) {
          insertLabel.run(l.predictionId, l.modelName, l.modelVersion, l.joinKey, l.outcome, l.value, l.predictedLabel, l.predictedScore, l.correct, l.absError,
            l.labelAt, l.receivedAt, l.topic, l.dedupKey, now);
        }
        insertDead(dead);
        for (const id of inboxIds) deleteInbox.run(id);
      }),
    /** Active predictions received at or after `since`, newest first, at most `limit` rows read. */
    recentPredictions(since: number, limit: number): RecentPrediction[] {
      const out: RecentPrediction[] = [];
      let read = 0;
      // Rows come in id order; received_at only roughly follows it (a clock step): stop at the first older row.
      for (const r of recent.iterate() as IterableIterator<{ id: number; received_at: number; asset: string; model_name: string; model_version: string; label: string | null; score: number | null }>) {
        if (r.received_at < since || ++read > limit) break;
        out.push({ id: r.id, receivedAt: r.received_at, asset: r.asset, model: r.model_name, version: r.model_version, label: r.label, score: r.score });
      }
      return out;
    },
    /** The last `limit` joined labels, newest first: to refill the rolling windows at start. */
    recentLabels: (limit: number) => recentLabels.all(limit) as { model_name: string; model_version: string; correct: number | null; abs_error: number | null }[],
    /** Labels joined so far, per model version. */
    totals: () => totals.all() as { model_name: string; model_version: string; n: number }[],
  };
}

export type LabelStore = ReturnType<typeof createLabels>;
