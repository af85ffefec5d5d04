// The inbox: QoS 1 messages written before their PUBACK leaves (see ingest.ts), read back in pages for
// the replay after a crash, and the recent dedup keys that let a redelivered message be recognised.

import type Database from 'better-sqlite3';
import type { Writer } from './writer.js';

export interface InboxMessage {
  receivedAt: number;
  topic: string;
  qos: number;
  dedupKey: string | null;
  payload: Buffer;
}

export interface InboxRow extends InboxMessage {
  id: number;
  /** The models that consumed this row before a restart while it stayed held (table inbox_done): null when none. */
  doneBy: string[] | null;
}

export function createInbox(db: Database.Database, writer: Writer) {
  const insert = db.prepare('INSERT INTO inbox (received_at, topic, qos, dedup_key, payload) VALUES (?, ?, ?, ?, ?)');
  const deleteOne = db.prepare('DELETE FROM inbox WHERE id = ?');
  const deleteRange = db.prepare('DELETE FROM inbox WHERE id BETWEEN ? AND ?');
  const selectPage = db.prepare(
    `SELECT id, received_at, topic, qos, dedup_key, payload,
       (SELECT group_concat(model, char(31)) FROM inbox_done d WHERE d.inbox_id = inbox.id) AS done
     FROM inbox WHERE id > ? ORDER BY id LIMIT ?`,
  );
  const insertDone = db.prepare('INSERT OR IGNORE INTO inbox_done (inbox_id, model) VALUES (?, ?)');
  const deleteDone = db.prepare('DELETE FROM inbox_done WHERE inbox_id = ?');
  // Most recent first, inbox rows included: those are the ones whose PUBACKs a crash may have lost.
  // Ordered by inbox id (the order of arrival, never reused), not by received_at: the wall clock of a
  // line PC steps back and forth (NTP, a dead RTC battery), and a step back would push the newest keys
  // out of the window. A message several models took has a row in each: keys are counted once.
  const selectKeys = db.prepare(
    `SELECT dedup_key, max(seq) AS seq FROM (
       SELECT dedup_key, inbox_id AS seq FROM (SELECT dedup_key, inbox_id FROM predictions WHERE inbox_id IS NOT NULL AND dedup_key IS NOT NULL ORDER BY id DESC LIMIT @rows)
       UNION ALL SELECT dedup_key, inbox_id FROM (SELECT dedup_key, inbox_id FROM dead_letters WHERE inbox_id IS NOT NULL AND dedup_key IS NOT NULL ORDER BY id DESC LIMIT @rows)
       UNION ALL SELECT dedup_key, id FROM (SELECT dedup_key, id FROM inbox WHERE dedup_key IS NOT NULL ORDER BY id DESC LIMIT @limit))
     GROUP BY dedup_key ORDER BY seq DESC LIMIT @limit`,
  );
  return {
    /** One inbox row in the open group (durable when the group commits). Gives its id. */
    append: (m: InboxMessage) => writer.inGroup(() => Number(insert.run(m.receivedAt, m.topic, m.qos, m.dedupKey, m.payload).lastInsertRowid)),
    /** Inside a write: removes the inbox rows of a committed batch. */
    remove(ids: readonly number[]): void {
      // Inbox ids of a batch are usually one contiguous run: one range delete instead of a delete per row.
      const first = ids[0];
      const last = ids[ids.length - 1];
      if (first !== undefined && last !== undefined && last - first + 1 === ids.length && isAscending(ids)) deleteRange.run(first, last);
      else for (const id of ids) deleteOne.run(id);
    },
    /** Up to `limit` rows after inbox id `after`, oldest first. */
    page: (after: number, limit: number): InboxRow[] =>
      (selectPage.all(after, limit) as { id: number; received_at: number; topic: string; qos: number; dedup_key: string | null; payload: Buffer; done: string | null }[]).map(
        (r) => ({ id: r.id, receivedAt: r.received_at, topic: r.topic, qos: r.qos, dedupKey: r.dedup_key, payload: r.payload, doneBy: r.done === null ? null : r.done.split('\x1f') }),
      ),
    /** Inside a write: records that `model` consumed these inbox rows, which stay held. */
    done(rows: readonly { inboxId: number; model: string }[]): void {
      for (const r of rows) insertDone.run(r.inboxId, r.model);
    },
    /** Inside a write: forgets the consumers of inbox rows that are going (or gone). */
    undone(ids: readonly number[]): void {
      for (const id of ids) deleteDone.run(id);
    },
    recentKeys: (limit: number, rowsPerMessage = 1) => (selectKeys.all({ limit, rows: limit * rowsPerMessage }) as { dedup_key: string }[]).map((r) => r.dedup_key),
  };
}

function isAscending(ids: readonly number[]): boolean {
  for (let i = 1; i < ids.length; i++) if ((ids[i] as number) <= (ids[i - 1] as number)) return false;
  return true;
}
