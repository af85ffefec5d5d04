// Upstream sync: takes the store and the configured targets; gives every row (predictions, dead letters,
// lifecycle events) to each target, in batches, on a node-cron schedule, at start (what was missed while
// the agent was down), early when the backlog passes a threshold, and on `edge-agent sync now`.
//
// Per target and kind a cursor in the store says which rows the target acknowledged. A batch's bounds
// and idempotency key are stored before it leaves, so after a crash exactly that batch goes again with
// the same key; the cursor moves only once the target acknowledged the batch, in one transaction with
// the counters. node-cron's pitfalls are guarded: schedules run in UTC unless told otherwise, one run at
// a time by a promise of our own (not only the library's noOverlap), every run has a deadline, and a run
// at start catches up whatever a stopped or sleeping agent missed.

import { setTimeout as sleep } from 'node:timers/promises';
import cron from 'node-cron';
import { z } from 'zod';
import type { Logger } from '../agent/log.js';
import type { Store } from '../agent/store/store.js';
import { SYNC_KINDS, type SyncKind } from '../agent/store/sync.js';
import type { Outcome, Target } from './http.js';
import { targetSchema } from './targets.js';
import { createReader, type ReadBatch } from './reader.js';
import { batchKey } from './wire.js';

const validZone = (tz: string) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};

export const syncOptionsSchema = z
  .strictObject({
    /** When to sync: a cron expression (5 fields, or 6 with seconds first), evaluated in `timezone`. */
    schedule: z.string().refine((s) => cron.validate(s), 'a cron expression such as "*/5 * * * *"').default('*/5 * * * *'),
    /** The time zone of the schedule. UTC has no daylight-saving skips or doubles. */
    timezone: z.string().refine(validZone, 'an IANA time zone such as "UTC" or "Europe/Berlin"').default('UTC'),
    /** gzip level of the batches: 1 fastest, 9 smallest; in the reader's thread, 6 drains as fast as 1 here (bench). */
    gzipLevel: z.number().int().min(1).max(9).default(6),
    /**
     * How far below the agent's own threads the thread that reads, formats and gzips batches runs (a nice
     * value added on Linux; 0: the same). A drain then takes the CPU ingest leaves over (bench: ingest during
     * a drain 85 % of itself at 5, 78 % at 0, medians of 5 runs).
     */
    readerNice: z.number().int().min(0).max(19).default(5),
    /** The most rows in one batch (one POST). */
    batchRows: z.number().int().min(1).max(100_000).default(10_000),
    /** One run stops starting new batches after this; the batch in flight finishes or is sent again next run. */
    runDeadlineMs: z.number().int().min(1000).max(86_400_000).default(300_000),
    /** A run starts early once this many rows were stored since the last one (0: only on the schedule). */
    earlyAtRows: z.number().int().nonnegative().default(50_000),
    /** During a long drain, a `sync progress` log line this often (rows done, rows/s, backlog, time left). */
    progressEveryMs: z.number().int().min(1).default(10_000),
    /** Waits between retries of a batch: exponential with full jitter, at least what Retry-After asks. */
    retry: z
      .strictObject({ minMs: z.number().int().min(1).default(1000), maxMs: z.number().int().min(1).default(300_000) })
      .prefault({}),
    /** What is synced. */
    kinds: z.array(z.enum(SYNC_KINDS)).min(1).default([...SYNC_KINDS]),
    /** Where rows go; none: nothing is synced. */
    targets: z.array(targetSchema).default([]),
  })
  .prefault({});

export type SyncOptions = z.infer<typeof syncOptionsSchema>;

/**
 * Test-only fault injection: EDGE_AGENT_TEST_KILL_AT_SYNC_STEP=before-post|after-response kills the process
 * with SIGKILL once a batch is stored as in flight and about to leave, or once the target acknowledged it
 * and before the cursor moved. Unset in production.
 */
function testKillPoint(step: 'before-post' | 'after-response'): void {
  if (process.env.EDGE_AGENT_TEST_KILL_AT_SYNC_STEP === step) process.kill(process.pid, 'SIGKILL');
}

export interface SyncDeps {
  store: Store;
  targets: Target[];
  agentId: string;
  log: Logger;
  /** After every run (retention can delete what the targets now have). */
  afterRun?: (report: RunReport) => void;
  /**
   * longestGapMs(schedule), when the caller took it already: node-cron needs about 50 ms of a cold start to
   * list 200 runs, a stall the agent takes before it connects rather than in front of its first readings.
   */
  gapMs?: number;
}

/**
 * The longest gap between two runs of the schedule when nothing goes wrong: the expression's matches in UTC
 * (no daylight-saving shifts there), over its next 200 runs. Plus the slack below, it bounds how long the
 * agent waits before it catches up a run that did not come: a local time that does not exist on the day
 * the clocks spring forward (node-cron skips it: tested), or a machine that slept through it.
 */
export function longestGapMs(schedule: string): number {
  const twin = cron.createTask(schedule, () => undefined, { timezone: 'UTC' });
  const runs = twin.getNextRuns(200).map((d) => d.getTime());
  void twin.destroy();
  let gap = 0;
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap, (runs[i] as number) - (runs[i - 1] as number));
  return gap;
}

/** Past the longest gap, how long before a missed run is caught up: more than a daylight-saving shift (1 h). */
const slackMs = (gap: number) => Math.min(2 * 3_600_000, gap / 2);

export interface RunReport {
  reason: string;
  startedAt: string;
  ms: number;
  /** Per target: rows acknowledged in this run, batches refused for good, and why it stopped early (if it did). */
  targets: { target: string; rows: number; bytes: number; rejected: number; stopped: string | null }[];
}

export function startSync(o: Readonly<Omit<SyncOptions, 'targets' | 'kinds'>> & { readonly kinds: readonly SyncKind[] }, deps: SyncDeps) {
  const { store, log } = deps;
  const rows = store.sync;
  // Batches are read, formatted and gzipped in a thread of their own (reader.ts); none without targets.
  const reader = deps.targets.length ? createReader(store.path, { agent: deps.agentId, store: rows.storeId }, o.gzipLevel, o.readerNice) : null;
  const stop = new AbortController();
  let running: Promise<RunReport> | null = null;
  let lastRun: RunReport | null = null;
  let sinceRun = 0;
  // Consecutive failures per target: the exponent of its backoff.
  const failures = new Map<string, number>();

  function backoffMs(target: string, retryAfter: number | null): number {
    const n = failures.get(target) ?? 0;
    failures.set(target, n + 1);
    const cap = Math.min(o.retry.maxMs, o.retry.minMs * 2 ** Math.min(n, 30));
    return Math.max(Math.random() * cap, retryAfter ?? 0);
  }

  /** One target, every kind, until nothing is left, the deadline passes or the target says stop. */
  async function runTarget(t: Target, deadline: number): Promise<RunReport['targets'][number]> {
    const report = { target: t.name, rows: 0, bytes: 0, rejected: 0, stopped: null as string | null };
    let progressAt = Date.now() + o.progressEveryMs;
    const started = Date.now();
    let limit = o.batchRows;
    for (const kind of o.kinds) {
      // The next batch is read while the current one is on the wire: it starts after the current one's last
      // row, so it is right whenever the current one is acknowledged or refused for good.
      let ahead: { after: number; limit: number; batch: Promise<ReadBatch | null> } | null = null;
      while (!stop.signal.aborted) {
        if (Date.now() >= deadline) {
          report.stopped = `run deadline (${o.runDeadlineMs} ms) passed`;
          return report;
        }
        const st = rows.state(t.name, kind);
        // The batch in flight when the agent stopped goes again: exactly its rows, with its key.
        const r = reader as NonNullable<typeof reader>;
        const read: ReadBatch | null = st.pending
          ? await r.read(kind, { first: st.pending.first, last: st.pending.last })
          : ahead && ahead.after === st.ackedId && ahead.limit === limit
            ? await ahead.batch
            : await r.read(kind, { after: st.ackedId, limit });
        ahead = null;
        if (!read) {
          if (!st.pending) break;
          rows.clearPending(t.name, kind);
          continue;
        }
        const batch: { count: number; first: number; last: number; key: string } = { count: read.count, first: st.pending?.first ?? read.first, last: st.pending?.last ?? read.last, key: st.pending?.key ?? batchKey(rows.storeId, kind, read.first, read.last) };
        if (!st.pending) rows.setPending(t.name, kind, batch.first, batch.last, batch.key);
        const body = read.body;
        const nextAfter: number = batch.last;
        ahead = { after: nextAfter, limit, batch: r.read(kind, { after: nextAfter, limit }).catch(() => null) };
        testKillPoint('before-post');
        let outcome: Outcome;
        try {
          outcome = await t.send({ kind, key: batch.key, body, rows: batch.count, first: batch.first, last: batch.last }, stop.signal);
        } catch (err) {
          outcome = { type: 'retry', reason: (err as Error).message, retryAfterMs: null };
        }
        if (outcome.type === 'ok') testKillPoint('after-response');
        if (outcome.type === 'ok') {
          rows.ack(t.name, kind, batch.last, batch.count, body.length);
          failures.delete(t.name);
          report.rows += batch.count;
          report.bytes += body.length;
          limit = o.batchRows;
        } else if (outcome.type === 'reject') {
          rows.reject(t.name, kind, batch.first, batch.last, batch.key, outcome.status, outcome.response);
          report.rejected++;
          log.error({ target: t.name, kind, key: batch.key, rows: batch.count, status: outcome.status, response: outcome.response.slice(0, 300) }, 'sync batch refused by the target; recorded in sync_rejected, sync goes on');
        } else if (outcome.type === 'split' && batch.count > 1) {
          // Too large for the receiver: the batch was not taken, so it may go again smaller, with new keys.
          rows.clearPending(t.name, kind);
          limit = Math.max(1, Math.floor(batch.count / 2));
          log.warn({ target: t.name, kind, rows: batch.count, next: limit, reason: outcome.reason }, 'sync batch too large for the target; sending smaller batches');
        } else if (outcome.type === 'split') {
          rows.reject(t.name, kind, batch.first, batch.last, batch.key, 413, outcome.reason);
          report.rejected++;
        } else if (outcome.type === 'stop') {
          rows.noteError(t.name, kind, outcome.reason);
          log.error({ target: t.name, kind, reason: outcome.reason }, 'sync target cannot take rows from this agent; stopped until the next run');
          report.stopped = outcome.reason;
          return report;
        } else {
          rows.noteError(t.name, kind, outcome.reason);
          const wait = backoffMs(t.name, outcome.retryAfterMs);
          if (Date.now() + wait >= deadline) {
            log.warn({ target: t.name, kind, reason: outcome.reason }, 'sync target unavailable; trying again at the next run');
            report.stopped = outcome.reason;
            return report;
          }
          log.warn({ target: t.name, kind, reason: outcome.reason, retryInMs: Math.round(wait) }, 'sync batch not taken; retrying');
          try {
            await sleep(wait, undefined, { signal: stop.signal });
          } catch {
            break;
          }
        }
        if (Date.now() >= progressAt) {
          progressAt = Date.now() + o.progressEveryMs;
          const left = rows.backlog(t.name, kind).rows;
          const rate = report.rows / ((Date.now() - started) / 1000);
          log.info({ target: t.name, kind, rowsDone: report.rows, rowsPerSec: Math.round(rate), backlog: left, secondsLeft: rate > 0 ? Math.round(left / rate) : null }, 'sync progress');
        }
      }
    }
    return report;
  }

  let lastRunAt = Date.now();
  async function run(reason: string): Promise<RunReport> {
    const t0 = Date.now();
    lastRunAt = t0;
    sinceRun = 0;
    const deadline = t0 + o.runDeadlineMs;
    const targets = await Promise.all(deps.targets.map((t) => runTarget(t, deadline)));
    const report: RunReport = { reason, startedAt: new Date(t0).toISOString(), ms: Date.now() - t0, targets };
    lastRun = report;
    deps.afterRun?.(report);
    const sent = targets.reduce((n, t) => n + t.rows, 0);
    if (sent || targets.some((t) => t.rejected || t.stopped)) log.info({ reason, ms: report.ms, targets }, 'sync run finished');
    return report;
  }

  /** Starts a run unless one is under way (then gives that one): never two at once. */
  function trigger(reason: string): Promise<RunReport> {
    if (!running) {
      running = run(reason)
        .catch((err: unknown) => {
          log.error({ reason, err: (err as Error).message }, 'sync run failed');
          throw err;
        })
        .finally(() => (running = null));
    }
    return running;
  }

  const task = deps.targets.length ? cron.schedule(o.schedule, () => void trigger('schedule').catch(() => undefined), { timezone: o.timezone, noOverlap: true, name: 'upstream-sync' }) : null;
  // At start: whatever accumulated while the agent was down (or the machine asleep) goes now.
  if (deps.targets.length) void trigger('start').catch(() => undefined);
  // A run that did not come when the schedule said (a skipped local time, a machine that slept): checked on
  // the wall clock, which moves on through a suspend while timers do not.
  const gap = deps.targets.length ? (deps.gapMs ?? longestGapMs(o.schedule)) : 0;
  const watchdog = deps.targets.length
    ? setInterval(() => {
        if (!running && Date.now() - lastRunAt > gap + slackMs(gap)) {
          log.warn({ lastRunAt: new Date(lastRunAt).toISOString(), schedule: o.schedule, timezone: o.timezone }, 'a scheduled sync did not run; catching up');
          void trigger('missed').catch(() => undefined);
        }
      }, Math.min(60_000, Math.max(1000, gap / 4)))
    : null;

  return {
    /** `edge-agent sync now`: a run now (or the one under way), and its report. */
    now: () => (deps.targets.length ? trigger('sync now') : Promise.reject(new Error('no sync targets are configured (sync.targets)'))),
    /** Rows were stored: an early run once the backlog since the last run passes sync.earlyAtRows. */
    stored(n: number): void {
      sinceRun += n;
      if (o.earlyAtRows > 0 && sinceRun >= o.earlyAtRows && !running && deps.targets.length) {
        sinceRun = 0;
        void trigger('backlog').catch(() => undefined);
      }
    },
    /** A run is under way. */
    get running(): boolean {
      return running !== null;
    },
    /** Per target and kind: backlog, the oldest unsynced row's age, last success and error, rows and bytes sent. */
    status() {
      const now = Date.now();
      return {
        running: running !== null,
        schedule: `${o.schedule} (${o.timezone})`,
        lastRun,
        targets: deps.targets.map((t) => ({
          target: t.name,
          rejectedBatches: rows.rejected(t.name),
          kinds: o.kinds.map((kind) => {
            const st = rows.state(t.name, kind);
            const b = rows.backlog(t.name, kind);
            return {
              kind, backlog: b.rows, oldestUnsyncedSec: b.oldestAt === null ? null : Math.round((now - b.oldestAt) / 1000),
              ackedId: st.ackedId, inFlight: st.pending?.key ?? null, rowsSent: st.rowsSent, bytesSent: st.bytesSent,
              lastSuccess: st.lastSuccessAt === null ? null : new Date(st.lastSuccessAt).toISOString(),
              lastError: st.lastError, lastErrorAt: st.lastErrorAt === null ? null : new Date(st.lastErrorAt).toISOString(),
            };
          }),
        })),
      };
    },
    async close(): Promise<void> {
      stop.abort();
      if (watchdog) clearInterval(watchdog);
      await task?.destroy();
      await running?.catch(() => undefined);
      for (const t of deps.targets) t.close();
      await reader?.close();
    },
  };
}

export type Sync = ReturnType<typeof startSync>;
