// Retention and the disk budget: takes the store and how far each kind of row is synced to every target;
// deletes synced rows past their age, keeps the database (its used pages plus the WAL) within a byte
// budget, and watches the free space of the disk it lives on. When the budget is reached, synced rows go
// first; then, by config, either the oldest unsynced rows are dropped (counted, logged, and recorded as a
// gap that is synced upstream like any row: never silent) or intake holds (QoS 1 readings are not taken,
// so the broker keeps them) until sync and retention made room.
//
// The file does not shrink when rows are deleted (SQLite reuses the freed pages), so the budget counts
// the pages in use, not the file's size: a file at its budget stays there.

import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import type { SyncKind } from './sync.js';
import type { Writer } from './writer.js';

export const retentionOptionsSchema = z
  .strictObject({
    /** Rows older than this are deleted once every sync target has them (with no targets: once older). */
    maxAgeHours: z.number().positive().default(168),
    /** The database's budget: its pages in use plus the WAL. */
    maxBytes: z.number().int().min(1024 * 1024).default(2 * 1024 ** 3),
    /** At the budget, after synced rows: drop the oldest unsynced rows (recorded as gaps), or hold intake. */
    onFull: z.enum(['drop-oldest', 'hold-intake']).default('drop-oldest'),
    /** Warn when the disk holding the store has less free space than this. */
    minFreeDiskBytes: z.number().int().nonnegative().default(512 * 1024 * 1024),
    /** How often retention runs. */
    everyMs: z.number().int().min(100).max(3_600_000).default(60_000),
  })
  .prefault({});

export type RetentionOptions = z.infer<typeof retentionOptionsSchema>;

/** The kinds of row that retention trims: the ones that grow with the line's readings. */
const TRIMMED = ['predictions', 'dead_letters', 'labels'] as const;
const CHUNK = 5000;

export function createRetention(db: Database.Database, writer: Writer, path: string) {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.prepare('SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()) AS n');
  const expired = Object.fromEntries(TRIMMED.map((k) => [k, db.prepare(`DELETE FROM ${k} WHERE id IN (SELECT id FROM ${k} WHERE id <= ? AND created_at < ? ORDER BY id LIMIT ${CHUNK})`)]));
  const oldestSynced = Object.fromEntries(TRIMMED.map((k) => [k, db.prepare(`DELETE FROM ${k} WHERE id IN (SELECT id FROM ${k} WHERE id <= ? ORDER BY id LIMIT ${CHUNK})`)]));
  const oldest = Object.fromEntries(TRIMMED.map((k) => [k, db.prepare(`SELECT min(id) AS first, max(id) AS last, count(*) AS n FROM (SELECT id FROM ${k} ORDER BY id LIMIT ${CHUNK})`)]));
  const deleteRange = Object.fromEntries(TRIMMED.map((k) => [k, db.prepare(`DELETE FROM ${k} WHERE id BETWEEN ? AND ?`)]));
  const insertGap = db.prepare('INSERT INTO gaps (at, kind, first_id, last_id, rows, reason) VALUES (?, ?, ?, ?, ?, ?)');

  function walBytes(): number {
    try {
      return statSync(`${path}-wal`).size;
    } catch {
      return 0;
    }
  }

  return {
    /** The budget's measure: pages in use plus the WAL. */
    usedBytes: () => (pages.get() as { n: number }).n * pageSize + walBytes(),
    /** Free space for unprivileged writers on the store's disk. */
    freeDiskBytes(): number {
      const s = statfsSync(dirname(path));
      return s.bavail * s.bsize;
    },
    /** Deletes up to one chunk of synced rows stored before `before`; gives how many. */
    expire: (kind: (typeof TRIMMED)[number], syncedUpTo: number, before: number) => writer.write(() => expired[kind]!.run(syncedUpTo, before).changes),
    /** Deletes up to one chunk of the oldest synced rows, whatever their age; gives how many. */
    trimSynced: (kind: (typeof TRIMMED)[number], syncedUpTo: number) => writer.write(() => oldestSynced[kind]!.run(syncedUpTo).changes),
    /** Drops up to one chunk of the oldest rows, synced or not, and records the gap; gives the gap. */
    dropOldest(kind: (typeof TRIMMED)[number], reason: string): { first: number; last: number; rows: number } | null {
      return writer.write(() => {
        const r = oldest[kind]!.get() as { first: number | null; last: number | null; n: number };
        if (r.first === null || r.last === null || r.n === 0) return null;
        deleteRange[kind]!.run(r.first, r.last);
        insertGap.run(Date.now(), kind, r.first, r.last, r.n, reason);
        return { first: r.first, last: r.last, rows: r.n };
      });
    },
    /** Moves the WAL's content into the file and truncates it (to the journal size limit). */
    checkpoint: () => {
      writer.commitGroup();
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    kinds: TRIMMED,
  };
}

export type Retention = ReturnType<typeof createRetention>;
export type TrimmedKind = (typeof TRIMMED)[number];
export type { SyncKind };

export interface RetentionDeps {
  retention: Retention;
  /** The highest row id of `kind` that every sync target acknowledged (no targets: every row counts as synced). */
  syncedUpTo(kind: TrimmedKind): number;
  log: import('../log.js').Logger;
}

/** The retention loop: every `everyMs`, and when asked (after a sync run). */
export function startRetention(o: Readonly<RetentionOptions>, deps: RetentionDeps) {
  const { retention: r, log } = deps;
  let busy: Promise<void> | null = null;
  let stopped = false;
  let full = false;
  let waiting: (() => void)[] = [];
  const totals = { expired: 0, trimmed: 0, dropped: 0, gaps: 0 };
  let lastFreeWarning = 0;
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

  async function run(): Promise<void> {
    const before = Date.now() - o.maxAgeHours * 3_600_000;
    for (const kind of r.kinds) {
      for (let n = -1; n !== 0 && !stopped; await turn()) totals.expired += n = r.expire(kind, deps.syncedUpTo(kind), before);
    }
    let used = r.usedBytes();
    if (used > o.maxBytes) {
      r.checkpoint();
      used = r.usedBytes();
    }
    // Synced rows first, oldest first, whatever their age.
    for (const kind of r.kinds) {
      while (used > o.maxBytes && !stopped) {
        const n = r.trimSynced(kind, deps.syncedUpTo(kind));
        if (n === 0) break;
        totals.trimmed += n;
        r.checkpoint();
        used = r.usedBytes();
        await turn();
      }
    }
    if (used > o.maxBytes && o.onFull === 'drop-oldest') {
      for (const kind of r.kinds) {
        while (used > o.maxBytes && !stopped) {
          const gap = r.dropOldest(kind, `disk budget store.retention.maxBytes=${o.maxBytes} reached`);
          if (!gap) break;
          totals.dropped += gap.rows;
          totals.gaps++;
          log.error({ kind, firstId: gap.first, lastId: gap.last, rows: gap.rows, usedBytes: used, maxBytes: o.maxBytes }, 'disk budget reached: oldest unsynced rows dropped (recorded as a gap)');
          r.checkpoint();
          used = r.usedBytes();
          await turn();
        }
      }
    }
    const nowFull = used > o.maxBytes;
    if (nowFull !== full) {
      full = nowFull;
      if (full) log.error({ usedBytes: used, maxBytes: o.maxBytes, onFull: o.onFull }, 'disk budget reached: intake holds until sync makes room');
      else log.info({ usedBytes: used, maxBytes: o.maxBytes }, 'disk budget: room again');
    }
    if (!full) {
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    }
    const free = r.freeDiskBytes();
    if (free < o.minFreeDiskBytes && Date.now() - lastFreeWarning > 600_000) {
      lastFreeWarning = Date.now();
      log.warn({ freeDiskBytes: free, minFreeDiskBytes: o.minFreeDiskBytes }, 'the disk holding the store is nearly full');
    }
  }

  /** One pass now (or the one under way). */
  function check(): Promise<void> {
    busy ??= run()
      .catch((err: unknown) => log.error({ err: (err as Error).message }, 'retention failed'))
      .finally(() => (busy = null));
    return busy;
  }
  const timer = setInterval(() => void check(), o.everyMs);
  void check();

  return {
    check,
    /** Intake asks before taking a reading: null when there is room, else a promise that resolves when there is. */
    room(): Promise<void> | null {
      if (!full || o.onFull !== 'hold-intake') return null;
      return new Promise((resolve) => waiting.push(resolve));
    },
    status: () => ({ usedBytes: r.usedBytes(), maxBytes: o.maxBytes, freeDiskBytes: r.freeDiskBytes(), full, onFull: o.onFull, ...totals }),
    async close(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await busy;
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    },
  };
}

export type RetentionLoop = ReturnType<typeof startRetention>;
