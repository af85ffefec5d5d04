// Test helpers: real parts, each registered for teardown so a failing test never leaves a broker
// or an agent running. Takes a node:test context; gives a mosquitto on a free loopback port, temp
// folders, the agent as a child process, MQTT clients, and read-only views of the SQLite store.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const cliPath = join(repoRoot, 'dist', 'agent', 'cli.js');
export const demoModelDir = join(repoRoot, 'models', 'demo', 'bearing-health', '1.0.0');

/** What the helpers need of a test context; the benchmark passes its own. */
export type Teardown = Pick<TestContext, 'after'>;

const stacks = new WeakMap<Teardown, (() => unknown)[]>();

/** Registers a cleanup with the test; cleanups run last-registered first, even when the test fails. */
export function teardown(t: Teardown, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const fns: (() => unknown)[] = [];
    stack = fns;
    stacks.set(t, fns);
    t.after(async () => {
      while (fns.length) await (fns.pop() as () => unknown)();
    });
  }
  stack.push(fn);
}

export function tempDir(t: Teardown, prefix = 'edge-agent-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  teardown(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20000, everyMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export interface Mosquitto { port: number; url: string; proc: ChildProcess; exited: Promise<Exit>; log: () => string }

/** A real mosquitto on a free loopback port, with queue limits high enough that it never drops QoS 1. */
export async function startMosquitto(t: Teardown, extra: string[] = [], fixedPort?: number): Promise<Mosquitto> {
  const dir = tempDir(t, 'edge-agent-mosq-');
  const port = fixedPort ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'user root',
      'persistence false',
      'max_queued_messages 1000000',
      'max_queued_bytes 0',
      'queue_qos0_messages true',
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...extra,
      '',
    ].join('\n'),
  );
  const child = spawnChild(t, 'mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'], stopSignal: 'SIGTERM' });
  const { proc } = child;
  await waitFor(`mosquitto on port ${port} (log: ${child.stderr()})`, () => {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${child.stderr()}`);
    return portOpen(port);
  }, 10000);
  return { port, url: `mqtt://127.0.0.1:${port}`, proc, exited: child.exited, log: child.stderr };
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

export interface Child {
  proc: ChildProcess;
  /** Created at spawn, before any event can fire: a child that exits at once is never missed. */
  exited: Promise<Exit>;
  stdout: () => string;
  stderr: () => string;
}

/**
 * Spawns a child process and creates its exit promise in the same turn (so a fast exit is never
 * missed), collects its piped output, and registers its stop for teardown: `stopSignal`, then SIGKILL
 * after 15 s (a stopped process gets SIGCONT first). With `t` null the caller waits for `exited`
 * itself; `killAfterMs` bounds that wait either way.
 */
export function spawnChild(
  t: Teardown | null,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { stopSignal?: NodeJS.Signals; killAfterMs?: number } = {},
): Child {
  const { stopSignal = 'SIGKILL', killAfterMs, ...spawnOptions } = options;
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
  let out = '';
  let errOut = '';
  const exited = new Promise<Exit>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    // A command that cannot start (ENOENT) emits 'error' and no 'exit'.
    proc.once('error', (err) => {
      errOut += `spawn ${command}: ${err.message}\n`;
      resolve({ code: null, signal: null });
    });
  });
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (errOut += d.toString()));
  if (killAfterMs !== undefined) {
    const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    void exited.then(() => clearTimeout(timer));
  }
  if (t) teardown(t, () => stopChild({ proc, exited }, stopSignal));
  return { proc, exited, stdout: () => out, stderr: () => errOut };
}

/** Stops a child (signal, then SIGKILL after 15 s) and gives its exit code. */
export async function stopChild(child: Pick<Child, 'proc' | 'exited'>, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const { proc } = child;
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGCONT'); // a test may have stopped it (SIGSTOP)
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
    await child.exited;
    clearTimeout(timer);
  }
  return (await child.exited).code;
}

/** stopChild for a process spawned elsewhere (its exit is read from the process itself). */
export async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  return stopChild({ proc, exited: new Promise<Exit>((resolve) => proc.once('exit', (code, sig) => resolve({ code, signal: sig }))) }, signal);
}

export function agentConfig(overrides: { url?: string; dbPath: string; [k: string]: unknown }): Record<string, unknown> {
  const { url, dbPath, ...rest } = overrides;
  return {
    mqtt: { ...(url ? { url } : {}), clientId: `edge-agent-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectMinMs: 100, reconnectMaxMs: 1000 },
    ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }] },
    mapping: {
      asset: { topicLevel: 1 },
      features: { rms_g: 'vibration.rms_g', peak_g: 'vibration.peak_g', kurtosis: 'vibration.kurtosis', crest_factor: 'vibration.crest_factor' },
    },
    model: { dir: demoModelDir },
    store: { path: dbPath },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos: 1 },
    log: { level: 'info' },
    // A free port: several agents of one test must not share the default.
    http: { port: 0 },
    ...rest,
  };
}

export function writeConfig(dir: string, config: unknown, name = 'agent.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : stringify(config));
  return path;
}

export interface AgentProcess {
  proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<Exit>;
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** The agent as a real child process (`edge-agent run --config FILE`). */
/** `nodeArgs`: flags for node itself (e.g. --cpu-prof, which NODE_OPTIONS does not take). */
/** Node flags from an environment variable, space-separated (the bench's BENCH_*_NODE_ARGS). */
export const nodeArgsFrom = (name: string): string[] => (process.env[name] ?? '').split(' ').filter(Boolean);

export function spawnAgent(t: Teardown, configPath: string, env: NodeJS.ProcessEnv = {}, nodeArgs: readonly string[] = []): AgentProcess {
  const child = spawnChild(t, process.execPath, [...nodeArgs, cliPath, 'run', '--config', configPath], { env: { ...process.env, ...env } });
  const { proc } = child;
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  return {
    proc,
    logs,
    stderr: child.stderr,
    exited: child.exited,
    async waitForLog(msg, timeoutMs = 30000) {
      let found: Record<string, unknown> | undefined;
      await waitFor(`agent log "${msg}" (stderr: ${child.stderr().slice(-500)})`, () => {
        found = logs.find((l) => l.msg === msg);
        if (found) return true;
        if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode} before logging "${msg}": ${child.stderr()}`);
        return false;
      }, timeoutMs);
      return found as Record<string, unknown>;
    },
  };
}

/** Runs the CLI to completion; gives its exit code and output. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnChild(null, process.execPath, [cliPath, ...args], { env, killAfterMs: 60000 });
  const { code } = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

export async function mqttClient(t: Teardown, url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, ...opts });
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  teardown(t, () => client.endAsync(true));
  return client;
}

export function openDb(path: string): Database.Database {
  return new Database(path, { readonly: true, fileMustExist: true });
}

/** Row counts, read through a separate read-only connection (WAL lets it read while the agent writes). */
/** The rows a query gives, read from the store file with a connection of its own (closed after). */
export function query<T>(dbPath: string, sql: string): T[] {
  const db = openDb(dbPath);
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

export function countRows(path: string): { predictions: number; deadLetters: number; inbox: number } {
  const db = openDb(path);
  try {
    return db
      .prepare('SELECT (SELECT count(*) FROM predictions) AS predictions, (SELECT count(*) FROM dead_letters) AS deadLetters, (SELECT count(*) FROM inbox) AS inbox')
      .get() as { predictions: number; deadLetters: number; inbox: number };
  } finally {
    db.close();
  }
}

/** A bearing reading in the simulated gateway's JSON layout. */
export function readingPayload(seq: number, v: readonly number[] = [0.4, 1.4, 3.0, 3.5, 45, 1500]): string {
  return JSON.stringify({
    seq,
    vibration: { rms_g: v[0], peak_g: v[1], kurtosis: v[2], crest_factor: v[3] },
    temperature_c: v[4],
    speed_rpm: v[5],
  });
}

/** A reading whose speed_rpm carries a sequence number (0..20000), so each stored row says which reading it came from. */
export const seqPayload = (seq: number) => readingPayload(seq, [0.4, 1.4, 3.0, 3.5, 45, 1000 + seq * 0.25]);

/** The sequence numbers of the stored predictions (see seqPayload), one per row. */
export function storedSeqs(dbPath: string): number[] {
  const db = openDb(dbPath);
  try {
    return (db.prepare('SELECT features FROM predictions').all() as { features: string }[]).map((r) =>
      Math.round(((JSON.parse(r.features) as number[])[5] as number) * 4 - 4000),
    );
  } finally {
    db.close();
  }
}

/**
 * Publishes seqPayload(from..n-1) at QoS 1 in chunks, pausing between chunks; `progress.published` counts.
 * `done` resolves when the broker has acknowledged every one.
 */
export function publishSequence(client: MqttClient, topic: string, n: number, chunk = 50, pauseMs = 5, from = 0) {
  const progress = { published: 0, done: Promise.resolve() };
  progress.done = (async () => {
    for (let seq = from; seq < n; seq += chunk) {
      const size = Math.min(chunk, n - seq);
      await Promise.all(Array.from({ length: size }, (_, k) => client.publishAsync(topic, seqPayload(seq + k), { qos: 1 })));
      progress.published += size;
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return progress;
}

/**
 * Starts the agent on `configPath` (again), waits until `n` rows (predictions + dead letters) are stored,
 * stops it with SIGTERM, and gives its exit, its logs and the stored sequence numbers (see seqPayload).
 */
export async function runUntilStored(t: Teardown, configPath: string, dbPath: string, n: number) {
  const agent = spawnAgent(t, configPath);
  await agent.waitForLog('agent started');
  await waitFor(`${n} rows`, () => {
    const c = countRows(dbPath);
    return c.predictions + c.deadLetters >= n;
  }, 60000);
  // A clean stop drains everything in flight, so a late redelivery would still be counted.
  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  return { exit, logs: agent.logs, seqs: storedSeqs(dbPath) };
}
