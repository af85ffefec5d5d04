// Fault suite, shared parts: takes a scenario's teardown context; gives the gateway that publishes
// numbered readings, the agent in rounds (start, inject a fault, restart), a marker that proves the
// broker has delivered everything, and the tally of stored rows (once / lost / doubled) read from SQLite.

import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import {
  agentConfig, countRows, mqttClient, openDb, seqPayload, spawnAgent, tempDir, waitFor, writeConfig, type AgentProcess, type Teardown,
} from '../helpers/parts.js';

/** One scenario's figures; `lost` counts only losses the agent guarantees against, `expectedLoss` the rest. */
export interface Outcome {
  injected: number;
  sent: number;
  storedOnce: number;
  lost: number;
  doubled: number;
  expectedLoss: number;
  /** Whose loss `expectedLoss` is (the broker's, QoS 0's contract). */
  expectedLossWhose?: string;
  /** A failure that is not a count (the agent crashed, a result is missing, the wrong exit code). */
  failures: string[];
  notes: string[];
}

export interface ScenarioContext {
  t: Teardown;
  quick: boolean;
  /** A seeded random number in [0, 1): the same seed gives the same injection points. */
  random: () => number;
  log: (line: string) => void;
}

export interface Scenario {
  name: string;
  /** Seconds before the run is declared overrun (everything started is then stopped). */
  budgetSec: number;
  /** Part of `--quick`. */
  quick: boolean;
  run(ctx: ScenarioContext): Promise<Outcome>;
}

/**
 * Redeliveries an agent process recognised: the running count its (rate-limited) redelivery lines carry,
 * or its `agent stopped` line's, whichever is larger (a killed agent has no `agent stopped` line).
 */
export function redeliveries(agent: { logs: Record<string, unknown>[] }): number {
  return agent.logs
    .filter((l) => l.msg === 'redelivered message already stored; acknowledged again' || l.msg === 'agent stopped')
    .reduce((max, l) => Math.max(max, Number(l.duplicates ?? 0)), 0);
}

/** The demo generator's seeded PRNG, shared. */
export { mulberry32 } from '../../models/demo/bearing.js';

export const READINGS_TOPIC = 'plant/line-1/bearing';
const MARKER_TOPIC = 'plant/marker/bearing';

export interface Store { dir: string; dbPath: string; config: string; clientId: string }

/** A store and an agent config for it (QoS 1 unless told), written to a fresh folder. */
export function makeStore(t: Teardown, url: string, name: string, overrides: Record<string, unknown> = {}, mqtt: Record<string, unknown> = {}): Store {
  const dir = tempDir(t, `edge-agent-fault-${name}-`);
  const dbPath = join(dir, 'agent.db');
  const clientId = `edge-agent-fault-${name}-${process.pid}`;
  const base = agentConfig({ url, dbPath });
  const config = writeConfig(dir, { ...base, mqtt: { ...(base.mqtt as object), url, clientId, reconnectMinMs: 100, reconnectMaxMs: 500, ...mqtt }, ...overrides });
  return { dir, dbPath, config, clientId };
}

/** The gateway: publishes seqPayload(from..to-1); `acked` holds the sequence numbers the broker acknowledged. */
export class Gateway {
  readonly acked = new Set<number>();
  sent = 0;
  private constructor(readonly client: MqttClient) {}

  static async connect(t: Teardown, url: string, name: string): Promise<Gateway> {
    return new Gateway(await mqttClient(t, url, { clientId: `gateway-${name}-${process.pid}`, reconnectPeriod: 100 }));
  }

  /** Publishes in chunks; `done` settles when the broker acknowledged every one, or after `timeoutMs` (then some stay unacked). */
  publish(from: number, to: number, opts: { qos?: 0 | 1; chunk?: number; pauseMs?: number; topic?: string; timeoutMs?: number } = {}) {
    const { qos = 1, chunk = 50, pauseMs = 5, topic = READINGS_TOPIC, timeoutMs = 60000 } = opts;
    const progress = { published: 0, done: Promise.resolve() };
    const work = (async () => {
      for (let seq = from; seq < to; seq += chunk) {
        const size = Math.min(chunk, to - seq);
        this.sent += size;
        await Promise.all(Array.from({ length: size }, (_, k) => this.client.publishAsync(topic, seqPayload(seq + k), { qos }).then(() => void this.acked.add(seq + k))));
        progress.published += size;
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      }
    })();
    progress.done = bounded(work, timeoutMs).then(() => undefined, () => undefined);
    return progress;
  }
}

/** Resolves with the promise, or rejects after ms. The timer never keeps the process alive. */
export function bounded<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Waits for a log line or the agent's exit, whichever comes first (an injected kill may land before the log). */
export async function startedOrExited(agent: AgentProcess, msg = 'subscribed', timeoutMs = 30000): Promise<'logged' | 'exited'> {
  await waitFor(`agent log "${msg}" or exit (stderr: ${agent.stderr().slice(-300)})`, () => agent.proc.exitCode !== null || agent.proc.signalCode !== null || agent.logs.some((l) => l.msg === msg), timeoutMs);
  return agent.logs.some((l) => l.msg === msg) ? 'logged' : 'exited';
}

/**
 * Starts the agent (again) and lets it drain: publishes a marker reading after everything else and waits
 * for its row. The broker delivers a session's messages in order, so when the marker is stored every
 * earlier reading has been delivered. Then a clean stop (which finishes what is in flight). Gives the exit.
 */
export async function drain(t: Teardown, store: Store, gateway: Gateway, env: NodeJS.ProcessEnv = {}, timeoutMs = 90000) {
  const agent = spawnAgent(t, store.config, env);
  await agent.waitForLog('subscribed', 30000);
  const id = markersStored(store.dbPath) + 1;
  await bounded(gateway.client.publishAsync(MARKER_TOPIC, seqPayload(id), { qos: 1 }), 20000, 'the marker publish');
  await waitFor(`the marker reading stored (rows: ${JSON.stringify(countRows(store.dbPath))})`, () => markerStored(store.dbPath, id), timeoutMs, 50);
  agent.proc.kill('SIGTERM');
  const exit = await bounded(agent.exited, 30000, 'the agent stopping after SIGTERM');
  return { exit, agent };
}

function markersStored(dbPath: string): number {
  const db = openDb(dbPath);
  try {
    return (db.prepare("SELECT count(*) AS n FROM predictions WHERE asset = 'marker'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function markerStored(dbPath: string, id: number): boolean {
  const db = openDb(dbPath);
  try {
    const rows = db.prepare("SELECT features FROM predictions WHERE asset = 'marker'").all() as { features: string }[];
    return rows.some((r) => Math.round(((JSON.parse(r.features) as number[])[5] as number) * 4 - 4000) === id);
  } finally {
    db.close();
  }
}

/** Sequence number -> rows stored for it (predictions from their speed_rpm feature, dead letters from the raw payload). */
export function storedBySeq(dbPath: string, asset = 'line-1'): { rows: Map<number, number>; deadLetters: number; inbox: number } {
  const db = openDb(dbPath);
  try {
    const rows = new Map<number, number>();
    const bump = (q: number) => rows.set(q, (rows.get(q) ?? 0) + 1);
    for (const r of db.prepare('SELECT features FROM predictions WHERE asset = ?').all(asset) as { features: string }[]) {
      bump(Math.round(((JSON.parse(r.features) as number[])[5] as number) * 4 - 4000));
    }
    let deadLetters = 0;
    for (const r of db.prepare('SELECT topic, payload FROM dead_letters').all() as { topic: string; payload: Buffer }[]) {
      if (r.topic !== READINGS_TOPIC) continue;
      deadLetters++;
      try {
        bump((JSON.parse(r.payload.toString('utf8')) as { seq: number }).seq);
      } catch {
        /* not one of ours */
      }
    }
    const inbox = (db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n;
    return { rows, deadLetters, inbox };
  } finally {
    db.close();
  }
}

/**
 * The tally: every reading the broker acknowledged to the gateway must have exactly one row. Readings
 * never acknowledged (the broker died first) count only if stored twice. `lossWhose` marks missing
 * readings as an expected loss (the broker's, or QoS 0's) instead of the agent's.
 */
export function tally(store: Store, gateway: Gateway, injected: number, lossWhose?: string): Outcome {
  const { rows, deadLetters, inbox } = storedBySeq(store.dbPath);
  let storedOnce = 0;
  let missing = 0;
  let doubled = 0;
  let unackedMissing = 0;
  for (let q = 0; q < gateway.sent; q++) {
    const n = rows.get(q) ?? 0;
    if (n === 1) storedOnce++;
    else if (n > 1) doubled++;
    else if (gateway.acked.has(q)) missing++;
    else unackedMissing++;
  }
  const notes: string[] = [];
  const failures: string[] = [];
  if (deadLetters) notes.push(`${deadLetters} readings became dead letters`);
  if (inbox) failures.push(`${inbox} inbox rows left after a clean stop`);
  if (unackedMissing) notes.push(`${unackedMissing} never acknowledged to the gateway by the broker and not stored (the gateway's to resend)`);
  if (gateway.sent - gateway.acked.size - unackedMissing > 0) notes.push(`${gateway.sent - gateway.acked.size - unackedMissing} unacknowledged to the gateway but stored`);
  return {
    injected, sent: gateway.sent, storedOnce, doubled,
    lost: lossWhose ? 0 : missing,
    expectedLoss: lossWhose ? missing : 0,
    ...(lossWhose && missing ? { expectedLossWhose: lossWhose } : {}),
    failures, notes,
  };
}

/** A clean stop must exit 0; anything else is a failure of its own. */
export function expectCleanExit(outcome: Outcome, exit: { code: number | null; signal: NodeJS.Signals | null }, what = 'the final clean stop'): void {
  if (exit.code !== 0) outcome.failures.push(`${what} exited ${exit.code ?? exit.signal}, expected 0`);
}

/** A whole number in [lo, hi] from the scenario's seeded random. */
export function between(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

/**
 * Waits until the broker has acknowledged `n` readings to the gateway: an injection point inside the
 * stream (chosen at random by the caller), found by an event rather than a guess at timing.
 */
export function ackedAtLeast(gateway: Gateway, n: number, timeoutMs = 30000): Promise<void> {
  return waitFor(`the broker acknowledging ${n} readings (acked: ${gateway.acked.size})`, () => gateway.acked.size >= n, timeoutMs, 5);
}

/** Readings acknowledged to the gateway but without a row yet: how far behind the agent was at a fault. */
export function behind(store: Store, gateway: Gateway): number {
  const c = countRows(store.dbPath);
  return Math.max(0, gateway.acked.size - (c.predictions + c.deadLetters - markersStored(store.dbPath)));
}

export { countRows, openDb, spawnAgent, waitFor, writeConfig };
