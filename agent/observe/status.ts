// Observe: takes what the agent's parts can tell (stats, models, sync, store, liveness); gives the
// operator's views of it: liveness (/healthz, the systemd watchdog), readiness (/readyz) and the status
// snapshot that the status page, `edge-agent status` and the control socket's `status` command show.

import type { DriftStatus } from './drift.js';
import type { HistoryPoint, Stats, StatsSnapshot } from './stats.js';
import type { TruthStatus } from './truth.js';

/** A check's verdict: ok, or the problem in a few words. */
export interface Check { name: string; ok: boolean; problem?: string }

/** What the agent hands to its observers: readers only, none of them changes a part. */
export interface ObserveSources {
  agentId: string;
  version: string;
  startedAt: number;
  stats: Stats;
  /** Each served model: its name, the version serving, its versions on disk and lifecycle state. */
  models(): { name: string; serving: string; state: unknown; versions: string[]; shadow: unknown; workerAlive: boolean }[];
  /** The last lifecycle events of every model, newest first. */
  events(limit: number): { at: number; model: string; version: string | null; event: string; reason: string }[];
  /** Upstream sync's state (null before the agent is ready, or when no target is configured). */
  sync(): { running: boolean; targets: { target: string; kinds: { kind: string; backlog: number; oldestUnsyncedSec: number | null; lastError: string | null }[] }[] } | null;
  /**
   * The store's size, budget and what retention dropped; `wal`: the checkpoint thread's last checkpoint (pages in
   * the WAL, pages a reader kept it from copying), null while the store checkpoints at commit itself.
   */
  store(): { usedBytes: number; maxBytes: number; full: boolean; onFull: string; freeDiskBytes: number | null; wal?: { walPages: number; behindPages: number } | null } & Record<string, unknown>;
  /** The broker connection: connected now, and the subscriptions acknowledged. */
  /** `results`: the results connection's state and client id (absent: results are not published). */
  broker(): { connected: boolean; subscribed: boolean; url: string; results?: { connected: boolean; clientId: string } };
  /** Each serving model's worker answers a probe within `timeoutMs`. */
  pingWorkers(timeoutMs: number): Promise<{ model: string; alive: boolean }[]>;
  /** Drift and ground truth (issue 8's observers), when present. */
  drift?(): DriftStatus;
  truth?(): TruthStatus;
  /** Per model: its payload style's state and counters (join, Sparkplug B host, windows) and its quality gate's. */
  ingest?(): IngestStatus;
}

/** The process answers (this runs on its event loop) and every serving model's worker answers its probe. */
export async function liveness(s: ObserveSources, timeoutMs = 5000): Promise<{ ok: boolean; checks: Check[] }> {
  const workers = await s.pingWorkers(timeoutMs);
  const checks: Check[] = [{ name: 'event loop', ok: true }];
  for (const w of workers) checks.push(w.alive ? { name: `model worker ${w.model}`, ok: true } : { name: `model worker ${w.model}`, ok: false, problem: `did not answer within ${timeoutMs} ms` });
  return { ok: checks.every((c) => c.ok), checks };
}

/** Ready to serve: connected and subscribed, every model loaded with a live worker, the store taking rows, sync not stuck. */
export function readiness(s: ObserveSources, maxSyncLagSec: number, sync = s.sync()): { ok: boolean; checks: Check[] } {
  const b = s.broker();
  const checks: Check[] = [
    b.connected ? { name: 'broker', ok: true } : { name: 'broker', ok: false, problem: `not connected to ${b.url}` },
    b.subscribed ? { name: 'subscriptions', ok: true } : { name: 'subscriptions', ok: false, problem: 'not acknowledged by the broker yet' },
  ];
  // Readings stored but no verdict reaching the line (e.g. a broker ACL that refuses the results client id) is not serving.
  if (b.results) checks.push(b.results.connected ? { name: 'results connection', ok: true } : { name: 'results connection', ok: false, problem: `client id ${b.results.clientId} not connected to ${b.url}` });
  for (const m of s.models()) checks.push(m.workerAlive ? { name: `model ${m.name}`, ok: true } : { name: `model ${m.name}`, ok: false, problem: `worker of ${m.name}@${m.serving} is gone` });
  const st = s.store();
  checks.push(st.full && st.onFull === 'hold-intake' ? { name: 'store', ok: false, problem: `at its byte budget (${st.usedBytes} of ${st.maxBytes} bytes): intake held` } : { name: 'store', ok: true });
  if (maxSyncLagSec > 0) {
    for (const t of sync?.targets ?? []) {
      const worst = Math.max(0, ...t.kinds.map((k) => k.oldestUnsyncedSec ?? 0));
      const lastError = t.kinds.find((k) => k.lastError)?.lastError;
      checks.push(worst > maxSyncLagSec
        ? { name: `sync ${t.target}`, ok: false, problem: `rows unsynced for ${worst} s (limit ${maxSyncLagSec} s)${lastError ? `; last error: ${lastError}` : ''}` }
        : { name: `sync ${t.target}`, ok: true });
    }
  }
  return { ok: checks.every((c) => c.ok), checks };
}

/** One entry per model the agent serves. */
export type IngestStatus = { model: string; style: string; [counter: string]: unknown }[];

export interface StatusSnapshot {
  agent: { id: string; version: string; startedAt: string; uptimeSec: number; ready: boolean; checks: Check[] };
  rates: StatsSnapshot;
  history: HistoryPoint[];
  models: ReturnType<ObserveSources['models']>;
  events: ReturnType<ObserveSources['events']>;
  sync: ReturnType<ObserveSources['sync']>;
  store: ReturnType<ObserveSources['store']>;
  drift: DriftStatus | null;
  truth: TruthStatus | null;
  ingest: IngestStatus;
}

/** Everything the status page and `edge-agent status` show, in one JSON object. `historySec` 0 leaves the history out. */
export function statusSnapshot(s: ObserveSources, maxSyncLagSec: number, historySec: number): StatusSnapshot {
  const sync = s.sync();
  const ready = readiness(s, maxSyncLagSec, sync);
  return {
    agent: { id: s.agentId, version: s.version, startedAt: new Date(s.startedAt).toISOString(), uptimeSec: Math.round((Date.now() - s.startedAt) / 1000), ready: ready.ok, checks: ready.checks },
    rates: s.stats.snapshot(),
    history: historySec > 0 ? s.stats.history(historySec) : [],
    models: s.models(),
    events: s.events(50),
    sync,
    store: s.store(),
    drift: s.drift?.() ?? null,
    truth: s.truth?.() ?? null,
    ingest: s.ingest?.() ?? [],
  };
}
