// The sync reader's worker thread: takes where a batch is; gives the batch read on its own read-only
// connection to the store (WAL lets it read while the agent writes), formatted as NDJSON and gzipped, so
// that none of this holds up the agent's event loop (measured: 20-45 ms per 5,000-row batch there).

import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { createBatchReads, type BatchAt, type SyncKind } from '../agent/store/sync.js';
import { encodeRows } from './wire.js';

export interface ReadRequest { id: number; kind: SyncKind; at: BatchAt; source: { agent: string; store: string }; level: number }
export type ReadReply = { id: number; batch: { first: number; last: number; count: number; body: Uint8Array } | null } | { id: number; error: string };

const { path, nice } = workerData as { path: string; nice: number };
// Below the agent's own threads, so that a long drain takes the CPU ingest leaves over, not what it needs.
// Linux keeps a nice value per thread: this thread's id is in /proc/thread-self. Elsewhere it stays as it is.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (nice > 0 && Number.isInteger(tid)) setPriority(tid, Math.min(19, getPriority(tid) + nice));
} catch {
  // Not Linux, or not allowed: the reader runs at the agent's priority.
}
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const read = createBatchReads(db, (kind, rows) => encodeRows(kind, rows, (current as ReadRequest).source));
let current: ReadRequest | null = null;

parentPort?.on('message', (req: ReadRequest) => {
  current = req;
  let reply: ReadReply;
  try {
    const lines = read(req.kind, req.at, req.source);
    reply = { id: req.id, batch: lines ? { first: lines.first, last: lines.last, count: lines.count, body: gzipSync(lines.text, { level: req.level }) } : null };
  } catch (err) {
    reply = { id: req.id, error: (err as Error).message };
  }
  const body = 'batch' in reply && reply.batch ? [reply.batch.body.buffer as ArrayBuffer] : [];
  parentPort?.postMessage(reply, body);
});
