// What upstream sync reads and writes in the store: pages of rows of each kind after a target's cursor,
// the batch in flight (its bounds and idempotency key, kept so that a crash resends exactly that batch
// with the same key), and the acknowledgement that moves the cursor in the same transaction as the
// counters. One cursor per target and kind; rows count as synced only once their target acknowledged them.

import type Database from 'better-sqlite3';
import type { Writer } from './writer.js';

export const SYNC_KINDS = ['predictions', 'dead_letters', 'model_events', 'gaps', 'labels'] as const;
export type SyncKind = (typeof SYNC_KINDS)[number];

/** The columns each kind of row is read with (its own id first). */
const COLUMNS: Record<Exclude<SyncKind, 'predictions'>, string> = {
  dead_letters: 'id, received_at, topic, reason_code, reason, model, payload, created_at',
  model_events: 'id, at, model, version, event, reason',
  gaps: 'id, at, kind, first_id, last_id, rows, reason',
  labels: 'id, prediction_id, model_name, model_version, join_key, outcome, value, predicted_label, predicted_score, correct, abs_error, label_at, received_at, topic, created_at',
};
/** When a row of each kind was stored, for the age of the oldest unsynced one. */
const STORED_AT: Record<SyncKind, string> = { predictions: 'created_at', dead_letters: 'created_at', model_events: 'at', gaps: 'at', labels: 'created_at' };

export type SyncRow = Record<string, unknown> & { id: number };

/**
 * Prediction rows as NDJSON lines, made by SQLite: they are most of what is synced, and building each line
 * in C took a third of the CPU time of reading the rows into JavaScript objects and formatting them there
 * (measured on 20,000 rows). Concatenation rather than json_object(): features and outputs are stored as
 * JSON already (JSON.stringify of finite numbers) and go out as they are, which json_object would parse
 * again (measured: 4.0 against 4.2-6.2 µs a row). The fields and their order are the wire contract's.
 */
const PREDICTION_LINE = `'{"kind":"prediction","agent":' || json_quote(@agent) || ',"store":' || json_quote(@store) || ',"id":' || id ||
  ',"receivedAt":"' || strftime('%Y-%m-%dT%H:%M:%fZ', received_at / 1000.0, 'unixepoch') || '","asset":' || json_quote(asset) ||
  ',"topic":' || json_quote(topic) || ',"model":' || json_quote(model_name) || ',"version":' || json_quote(model_version) ||
  ',"role":' || json_quote(role) || ',"features":' || features || ',"outputs":' || outputs || ',"label":' || json_quote(label) ||
  ',"score":' || json_quote(score) || ',"latencyMs":' || json_quote(latency_ms) || ',"quality":' || coalesce(quality, 'null') ||
  ',"storedAt":"' || strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') || '"}'`;

/** A batch's rows as NDJSON (each line ends in \n), with the ids of its first and last row. */
export interface Lines { first: number; last: number; count: number; text: string }

export interface SyncState {
  ackedId: number;
  pending: { first: number; last: number; key: string } | null;
  rowsSent: number;
  bytesSent: number;
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

/** Where a batch's rows are: the next ones after the cursor, or the batch in flight again. */
export type BatchAt = { after: number; limit: number } | { first: number; last: number };

/**
 * The reads of a batch, on any connection: the sync reader's own read-only one in its worker thread
 * (sync/reader-worker.ts), so that reading and formatting a batch never holds up the agent's event loop.
 * `encode` formats the rows of the kinds SQLite does not format (sync/wire.ts).
 */
export function createBatchReads(db: Database.Database, encode: (kind: Exclude<SyncKind, 'predictions'>, rows: SyncRow[]) => string) {
  type Other = keyof typeof COLUMNS;
  const others = Object.keys(COLUMNS) as Other[];
  const after = Object.fromEntries(others.map((k) => [k, db.prepare(`SELECT ${COLUMNS[k]} FROM ${k} WHERE id > ? ORDER BY id LIMIT ?`)])) as Record<Other, Database.Statement>;
  const between = Object.fromEntries(others.map((k) => [k, db.prepare(`SELECT ${COLUMNS[k]} FROM ${k} WHERE id BETWEEN ? AND ? ORDER BY id`)])) as Record<Other, Database.Statement>;
  const linesAfter = db.prepare(`SELECT id, ${PREDICTION_LINE} FROM predictions WHERE id > @after ORDER BY id LIMIT @limit`).raw(true);
  const linesBetween = db.prepare(`SELECT id, ${PREDICTION_LINE} FROM predictions WHERE id BETWEEN @first AND @last ORDER BY id`).raw(true);
  const toLines = (rows: [number, string][]): Lines | null =>
    rows.length ? { first: rows[0]![0], last: rows[rows.length - 1]![0], count: rows.length, text: `${rows.map((r) => r[1]).join('\n')}\n` } : null;
  /** A batch of `kind` as NDJSON; null when there are no rows there. */
  return function read(kind: SyncKind, at: BatchAt, source: { agent: string; store: string }): Lines | null {
    if (kind === 'predictions') {
      const rows = 'after' in at ? linesAfter.all({ ...source, after: at.after, limit: at.limit }) : linesBetween.all({ ...source, first: at.first, last: at.last });
      return toLines(rows as [number, string][]);
    }
    const got = ('after' in at ? after[kind].all(at.after, at.limit) : between[kind].all(at.first, at.last)) as SyncRow[];
    if (!got.length) return null;
    return { first: got[0]!.id, last: got[got.length - 1]!.id, count: got.length, text: encode(kind, got) };
  };
}

export function createSyncRows(db: Database.Database, writer: Writer) {
  const storeId = (db.prepare("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string }).value;
  // The backlog without counting it: count(*) over a million unsynced rows takes the main thread 0.35-0.95 s
  // (measured here), and every health check, scrape and status page reads it. Ids are never reused and rows
  // above a target's cursor leave the store only through the disk budget's drops, each recorded as a gap, so
  // the rows above the cursor are the ids up to the highest less those dropped: a few index lookups.
  const newest = Object.fromEntries(SYNC_KINDS.map((k) => [k, db.prepare(`SELECT max(id) AS id FROM ${k}`).pluck()])) as Record<SyncKind, Database.Statement>;
  const oldestAfter = Object.fromEntries(
    SYNC_KINDS.map((k) => [k, db.prepare(`SELECT ${STORED_AT[k]} FROM ${k} WHERE id > ? ORDER BY id LIMIT 1`).pluck()]),
  ) as Record<SyncKind, Database.Statement>;
  // A gap wholly above the cursor lost its `rows`; one the cursor falls inside lost the ids above the cursor
  // (those below it were this target's already; earlier drops took older ranges, so none of these were gone).
  const droppedAfter = db.prepare(
    `SELECT coalesce(sum(CASE WHEN first_id > @acked THEN rows ELSE last_id - @acked END), 0) FROM gaps WHERE kind = @kind AND last_id > @acked`,
  ).pluck();
  const ensure = db.prepare('INSERT OR IGNORE INTO sync_state (target, kind) VALUES (?, ?)');
  const select = db.prepare('SELECT * FROM sync_state WHERE target = ? AND kind = ?');
  const setPending = db.prepare('UPDATE sync_state SET pending_first = ?, pending_last = ?, pending_key = ? WHERE target = ? AND kind = ?');
  const ack = db.prepare(
    `UPDATE sync_state SET acked_id = ?, pending_first = NULL, pending_last = NULL, pending_key = NULL,
       rows_sent = rows_sent + ?, bytes_sent = bytes_sent + ?, last_success_at = ? WHERE target = ? AND kind = ?`,
  );
  const noteError = db.prepare('UPDATE sync_state SET last_error = ?, last_error_at = ? WHERE target = ? AND kind = ?');
  const reject = db.prepare('INSERT INTO sync_rejected (at, target, kind, first_id, last_id, idempotency_key, status, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const rejectedCount = db.prepare('SELECT count(*) AS n FROM sync_rejected WHERE target = ?');

  function state(target: string, kind: SyncKind): SyncState {
    const r = select.get(target, kind) as Record<string, number | string | null> | undefined;
    if (!r) return { ackedId: 0, pending: null, rowsSent: 0, bytesSent: 0, lastSuccessAt: null, lastError: null, lastErrorAt: null };
    return {
      ackedId: r.acked_id as number,
      pending: r.pending_key === null ? null : { first: r.pending_first as number, last: r.pending_last as number, key: r.pending_key as string },
      rowsSent: r.rows_sent as number,
      bytesSent: r.bytes_sent as number,
      lastSuccessAt: r.last_success_at as number | null,
      lastError: r.last_error as string | null,
      lastErrorAt: r.last_error_at as number | null,
    };
  }

  return {
    /** The store's random id (meta.store_id): part of every idempotency key. */
    storeId,
    state,
    /** Rows not yet acknowledged by `target`, and when the oldest of them was stored. */
    backlog(target: string, kind: SyncKind): { rows: number; oldestAt: number | null } {
      const acked = state(target, kind).ackedId;
      const top = (newest[kind].get() as number | null) ?? 0;
      if (top <= acked) return { rows: 0, oldestAt: null };
      const rows = top - acked - (droppedAfter.get({ acked, kind }) as number);
      return { rows: Math.max(0, rows), oldestAt: (oldestAfter[kind].get(acked) as number | undefined) ?? null };
    },
    /** Before a batch leaves: its bounds and key, so that after a crash the same batch goes with the same key. */
    setPending: (target: string, kind: SyncKind, first: number, last: number, key: string) =>
      writer.write(() => {
        ensure.run(target, kind);
        setPending.run(first, last, key, target, kind);
      }),
    /** The target acknowledged the batch in flight: the cursor moves past it. */
    ack: (target: string, kind: SyncKind, last: number, rows: number, bytes: number) =>
      writer.write(() => {
        ensure.run(target, kind);
        ack.run(last, rows, bytes, Date.now(), target, kind);
      }),
    /** The target refused the batch for good: recorded with its answer, and the cursor moves past it. */
    reject: (target: string, kind: SyncKind, first: number, last: number, key: string, status: number | null, response: string) =>
      writer.write(() => {
        ensure.run(target, kind);
        reject.run(Date.now(), target, kind, first, last, key, status, response);
        ack.run(last, 0, 0, null, target, kind);
        noteError.run(`batch ${key} refused (${status ?? 'no status'}): ${response}`, Date.now(), target, kind);
      }),
    /** The batch in flight is dropped without acknowledgement (its rows are read again, as a new batch). */
    clearPending: (target: string, kind: SyncKind) => writer.write(() => void setPending.run(null, null, null, target, kind)),
    noteError: (target: string, kind: SyncKind, message: string) =>
      writer.write(() => {
        ensure.run(target, kind);
        noteError.run(message, Date.now(), target, kind);
      }),
    rejected: (target: string) => (rejectedCount.get(target) as { n: number }).n,
  };
}

export type SyncRows = ReturnType<typeof createSyncRows>;
