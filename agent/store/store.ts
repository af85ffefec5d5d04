// Store: the SQLite file in the data folder. Takes raw messages (the write-ahead inbox), batches of
// predictions and dead letters, shadow predictions and lifecycle events; gives durable rows, pending inbox
// rows to replay at start, and the recent dedup keys that let a redelivered QoS 1 message be recognised.
// Every write goes through one write path (writer.ts); the concerns live beside it: schema.ts (migrations),
// files.ts (modes), lock.ts (one agent per store), inbox.ts, rows.ts, events.ts, labels.ts.
//
// Durability: WAL mode. synchronous=NORMAL (the default) makes each commit a write() into the WAL
// without fsync: it survives a crash or kill -9 of the process, but the last commits can be lost on
// power loss or a kernel crash. synchronous=FULL fsyncs the WAL on every commit: it survives power
// loss too, at one fsync per commit (~0.4 ms here, slower on SD/eMMC).

import Database from 'better-sqlite3';
import { z } from 'zod';
import { EdgeError } from '../errors.js';
import { createAssemblyRows, type BirthRow, type HistoricalRow, type WindowMark } from './assembly.js';
import { createEvents, type ModelEventRow } from './events.js';
import { prepareFiles } from './files.js';
import { createInbox, type InboxMessage, type InboxRow } from './inbox.js';
import { createLabels, type LabelStore } from './labels.js';
import { lockStore, type StoreLock } from './lock.js';
import { createRetention, retentionOptionsSchema, type Retention } from './retention.js';
import { createRows, type DeadLetterRow, type PredictionRow } from './rows.js';
import { createSyncRows, type SyncRows } from './sync.js';
import { migrate } from './schema.js';
import { createWriter } from './writer.js';

export type { BirthRow, WindowMark, DeadLetterRow, HistoricalRow, InboxMessage, InboxRow, ModelEventRow, PredictionRow };

/** What a batch of the styles that hold messages writes besides its rows (agent/ingest/assemble.ts). */
export interface BatchExtra {
  /** Held inbox rows the batch's models consumed: a replay gives them to those models to rebuild state only. */
  done?: readonly { inboxId: number; model: string }[];
  /** Inbox rows going (in `inboxIds`) that had consumers recorded. */
  undone?: readonly number[];
  births?: readonly BirthRow[];
  historical?: readonly HistoricalRow[];
  marks?: readonly WindowMark[];
}
export { MIGRATIONS } from './schema.js';

export const storeOptionsSchema = z
  .strictObject({
    /** The SQLite file. Its folder is created if missing. */
    path: z.string().min(1).default('/var/lib/edge-agent/edge-agent.db'),
    /** NORMAL survives a process crash; FULL also survives power loss (slower). */
    synchronous: z.enum(['NORMAL', 'FULL']).default('NORMAL'),
    busyTimeoutMs: z.number().int().nonnegative().default(5000),
    /** Age of rows, the database's byte budget and the free disk (retention.ts). */
    retention: retentionOptionsSchema,
  })
  .prefault({});

export type StoreOptions = z.infer<typeof storeOptionsSchema>;

export interface Store {
  /** One inbox row in the open group of inbox writes (opened when none is); durable once `commitGroup` ran. */
  appendInbox(msg: InboxMessage): number;
  /** Commits the open group of inbox writes (nothing when none is). */
  commitGroup(): void;
  /** Rolls back an open group after a failure; from then on the store refuses writes. */
  abortGroup(): void;
  /** One transaction: the rows go in and their inbox rows go out together. Gives prediction row ids. */
  commitBatch(predictions: readonly PredictionRow[], deadLetters: readonly DeadLetterRow[], inboxIds: readonly number[], extra?: BatchExtra): number[];
  /** Every Sparkplug B birth kept (the host's alias maps at start). */
  savedBirths(): BirthRow[];
  /** A windowed model's assets and the time of the newest window committed for each. */
  windowMarks(model: string): Map<string, number>;
  /** Inbox rows to replay, oldest first: up to `limit` after inbox id `after`. */
  inboxPage(after: number, limit: number): InboxRow[];
  /** The keys of the last `limit` QoS 1 messages; `rowsPerMessage`: the most rows one message makes (one per model taking it). */
  recentDedupKeys(limit: number, rowsPerMessage?: number): string[];
  counts(): { predictions: number; deadLetters: number; inbox: number };
  /** Predictions a shadow version made on rows the active one served: stored with role 'shadow', never published. */
  commitShadow(predictions: readonly PredictionRow[]): void;
  /** One lifecycle event of a model (installed, activated, refused, rolled back...), kept for audit and sync. */
  recordModelEvent(e: Omit<ModelEventRow, 'at'>): void;
  modelEvents(limit: number): ModelEventRow[];
  /** Folder modes that let other users read the store (the inbox holds raw payloads), for a warning. */
  readonly exposure: string | null;
  /** What the connection really runs with (asserted in tests, shown by `config check`). */
  durability(): { journalMode: string; synchronous: string; journalSizeLimit: number; autoCheckpointPages: number };
  /** Whether this connection checkpoints the WAL at commit (SQLite's default, 1,000 pages); off while checkpointer.ts does it. */
  autoCheckpoint(on: boolean): void;
  /** Upstream sync's rows, cursors and batches in flight (sync/). */
  readonly sync: SyncRows;
  /** Ground truth: label messages waiting to be joined, joined labels (agent/observe/truth.ts). */
  readonly labels: LabelStore;
  /** Deletes by age and budget (driven by startRetention). */
  readonly retention: Retention;
  readonly path: string;
  close(): void;
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
    // After a checkpoint the WAL is cut back to this: it never stays larger than one burst needed.
    db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
    migrate(db);
  } catch (err) {
    lock?.release();
    if (err instanceof EdgeError) throw err;
    throw new EdgeError('EDGE_ERR_STORE', `cannot open ${options.path}: ${(err as Error).message}`, { cause: err });
  }
  const writer = createWriter(db, options.path);
  const inbox = createInbox(db, writer);
  const rows = createRows(db);
  const events = createEvents(db);
  const sync = createSyncRows(db, writer);
  const retention = createRetention(db, writer, options.path);
  const labels = createLabels(db, writer, (dead) => rows.deadLetters(dead));
  const assembly = createAssemblyRows(db);
  let closed = false;
  return {
    path: options.path,
    sync,
    retention,
    labels,
    exposure,
    appendInbox: inbox.append,
    commitGroup: () => writer.commitGroup(),
    abortGroup: () => writer.abort(),
    commitBatch: (predictions, deadLetters, inboxIds, extra) =>
      writer.write(() => {
        const ids = rows.predictions(predictions, 'active');
        rows.deadLetters(deadLetters);
        inbox.remove(inboxIds);
        if (extra) {
          if (extra.undone?.length) inbox.undone(extra.undone);
          if (extra.done?.length) inbox.done(extra.done);
          if (extra.births?.length) assembly.births(extra.births);
          if (extra.historical?.length) assembly.historical(extra.historical);
          if (extra.marks?.length) assembly.marks(extra.marks);
        }
        return ids;
      }),
    savedBirths: assembly.savedBirths,
    windowMarks: assembly.windowMarks,
    commitShadow: (predictions) => void writer.write(() => rows.predictions(predictions, 'shadow')),
    recordModelEvent: (e) => writer.write(() => events.record(e)),
    modelEvents: events.recent,
    inboxPage: inbox.page,
    recentDedupKeys: inbox.recentKeys,
    counts: rows.counts,
    durability: () => ({
      journalSizeLimit: Number(db.pragma('journal_size_limit', { simple: true })),
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      synchronous: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][db.pragma('synchronous', { simple: true }) as number] ?? 'unknown',
      autoCheckpointPages: Number(db.pragma('wal_autocheckpoint', { simple: true })),
    }),
    autoCheckpoint: (on) => void (closed || db.pragma(`wal_autocheckpoint = ${on ? 1000 : 0}`)),
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
