// Predictions and dead letters: a batch's rows go in and its inbox rows go out in one transaction;
// a shadow version's predictions go in with role 'shadow'.

import type Database from 'better-sqlite3';

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
  /** The data-quality gate's flags (features imputed or passed flagged) as JSON; null or absent when clean. */
  quality?: string | null;
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

/** The statements; each function runs inside a write of the writer (see store.ts). */
export function createRows(db: Database.Database) {
  const insertPrediction = db.prepare(
    `INSERT INTO predictions (received_at, asset, topic, model_name, model_version, features, outputs,
       label, score, latency_ms, inbox_id, dedup_key, created_at, role, quality)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertDead = db.prepare(
    `INSERT INTO dead_letters (received_at, topic, reason_code, reason, payload, inbox_id, dedup_key, created_at, model)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const countAll = db.prepare(
    `SELECT (SELECT count(*) FROM predictions) AS predictions, (SELECT count(*) FROM dead_letters) AS deadLetters,
            (SELECT count(*) FROM inbox) AS inbox`,
  );
  return {
    /** Gives the row ids, in order. */
    predictions(rows: readonly PredictionRow[], role: 'active' | 'shadow'): number[] {
      const now = Date.now();
      const ids = new Array<number>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const p = rows[i] as PredictionRow;
        const shadow = role === 'shadow';
        ids[i] = Number(insertPrediction.run(
          p.receivedAt, p.asset, p.topic, p.modelName, p.modelVersion, JSON.stringify(p.features), JSON.stringify(p.outputs),
          p.label, p.score, p.latencyMs, shadow ? null : p.inboxId, shadow ? null : p.dedupKey, now, role, p.quality ?? null,
        ).lastInsertRowid);
      }
      return ids;
    },
    deadLetters(rows: readonly DeadLetterRow[]): void {
      const now = Date.now();
      for (const d of rows) insertDead.run(d.receivedAt, d.topic, d.reasonCode, d.reason, d.payload, d.inboxId, d.dedupKey, now, d.model);
    },
    counts: () => countAll.get() as { predictions: number; deadLetters: number; inbox: number },
  };
}
