// Model lifecycle events: the audit trail of every install, activation, refusal and rollback, with its reason.

import type Database from 'better-sqlite3';

export interface ModelEventRow { at: number; model: string; version: string | null; event: string; reason: string }

export function createEvents(db: Database.Database) {
  const insert = db.prepare('INSERT INTO model_events (at, model, version, event, reason) VALUES (?, ?, ?, ?, ?)');
  const recent = db.prepare('SELECT at, model, version, event, reason FROM model_events ORDER BY id DESC LIMIT ?');
  return {
    /** Inside a write. */
    record: (e: Omit<ModelEventRow, 'at'>) => void insert.run(Date.now(), e.model, e.version, e.event, e.reason),
    recent: (limit: number) => recent.all(limit) as ModelEventRow[],
  };
}
