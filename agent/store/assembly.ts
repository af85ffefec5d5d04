// What the payload styles that hold state keep in the store (agent/ingest/assemble.ts): each Sparkplug B
// node's and device's last birth (so data after a restart can still be decoded), the metrics a node sent as
// historical (kept apart from live values, never given to a model), and each asset's newest window's time.

import type Database from 'better-sqlite3';

/** A birth to keep: `key` names the node or device, `record` is the host's JSON-serialisable birth. */
export interface BirthRow { key: string; record: unknown }

/** A value a Sparkplug B node sent with is_historical: stored as received, never mistaken for a live one. */
export interface HistoricalRow { receivedAt: number; model: string; asset: string; feature: string; ts: number; value: unknown; topic: string }

/** The newest window committed for a model's asset. */
export interface WindowMark { model: string; asset: string; at: number }

export function createAssemblyRows(db: Database.Database) {
  const upsertBirth = db.prepare('INSERT INTO sparkplug_births (key, record, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at');
  const selectBirths = db.prepare('SELECT key, record FROM sparkplug_births ORDER BY key');
  const upsertMark = db.prepare('INSERT INTO window_marks (model, asset, at) VALUES (?, ?, ?) ON CONFLICT (model, asset) DO UPDATE SET at = max(at, excluded.at)');
  const selectMarks = db.prepare('SELECT asset, at FROM window_marks WHERE model = ?');
  const insertHistorical = db.prepare('INSERT INTO historical (received_at, model, asset, feature, ts, value, topic, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  return {
    /** Inside a write. */
    births(rows: readonly BirthRow[]): void {
      const now = Date.now();
      for (const b of rows) upsertBirth.run(b.key, JSON.stringify(b.record, bigintAsText), now);
    },
    /** Inside a write. */
    historical(rows: readonly HistoricalRow[]): void {
      const now = Date.now();
      for (const h of rows) insertHistorical.run(h.receivedAt, h.model, h.asset, h.feature, Math.round(h.ts), JSON.stringify(h.value, bigintAsText) ?? 'null', h.topic, now);
    },
    /** Inside a write. */
    marks(rows: readonly WindowMark[]): void {
      for (const m of rows) upsertMark.run(m.model, m.asset, m.at);
    },
    windowMarks: (model: string): Map<string, number> => new Map((selectMarks.all(model) as { asset: string; at: number }[]).map((r) => [r.asset, r.at])),
    savedBirths: (): BirthRow[] => (selectBirths.all() as { key: string; record: string }[]).map((r) => ({ key: r.key, record: JSON.parse(r.record) as unknown })),
  };
}

/** 64-bit Sparkplug values beyond 2^53 stay exact as decimal text. */
function bigintAsText(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
