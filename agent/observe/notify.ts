// Observe: systemd's notify protocol (Type=notify). Takes the environment systemd gives (NOTIFY_SOCKET,
// WATCHDOG_USEC) and the running agent; gives systemd EXTEND_TIMEOUT_USEC while starting, READY=1 once the
// broker acknowledged the subscriptions, a one-line STATUS=, WATCHDOG=1 while the process and its model
// workers answer, STOPPING=1 when the stop begins. Off (no timers, no children) when NOTIFY_SOCKET is unset.
//
// Why a child process: the protocol is one datagram on a Unix socket, and Node has no Unix datagram
// sockets (dgram is UDP only). The npm packages that send it (sd-notify, systemd-daemon) are native addons
// that need libsystemd-dev and a compiler at install, one more ABI to build for Node 20 and 24, and have
// had no release in years. So the agent runs systemd's own `systemd-notify` binary. Its messages come from
// the child's PID, not the main PID, hence NotifyAccess=all in the unit (any process of the service's
// cgroup). systemd used to drop a message when the short-lived sender had exited before systemd looked up
// its cgroup (systemd issue #2737); since 246 systemd-notify follows its message with BARRIER=1 and exits
// only once systemd has processed it (sd_notify_barrier), which closes that race (Debian 12 ships 252).

import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';
import { liveness, readiness, type ObserveSources } from './status.js';

export interface NotifyOptions {
  /** STATUS= refresh. */
  statusEveryMs: number;
  /** EXTEND_TIMEOUT_USEC while starting: sent this often, each extending the start timeout by `extendByMs`. */
  extendEveryMs: number;
  extendByMs: number;
  /** A systemd-notify child that has not exited by then is killed. */
  childTimeoutMs: number;
  /** The binary (a test may point it elsewhere). */
  command: string;
  /** /readyz's sync lag threshold: the STATUS line names the same problems. */
  maxSyncLagSec: number;
}

export const notifyDefaults: NotifyOptions = { statusEveryMs: 5000, extendEveryMs: 10_000, extendByMs: 30_000, childTimeoutMs: 5000, command: 'systemd-notify', maxSyncLagSec: 0 };

/** What the notifier reads from the agent (a subset of pipeline.ts's Agent). */
export interface NotifiedAgent {
  readonly ready: Promise<void>;
  readonly observe: ObserveSources;
}

export interface Notifier {
  /** Whether systemd listens (NOTIFY_SOCKET set). */
  readonly enabled: boolean;
  /** The agent is started (models loaded): READY=1 follows its `ready`; the watchdog adds its workers. */
  watch(agent: NotifiedAgent): void;
  /** The stop begins: STOPPING=1; no more READY or STATUS refreshes; watchdog pings on the event loop alone. */
  stopping(): void;
  /** Stops the timers (the process is about to exit). Idempotent. */
  close(): void;
}

/** The watchdog interval: half of WATCHDOG_USEC (sd_watchdog_enabled(3)), or null when systemd wants none for this process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

export function createNotifier(log: Logger, env: NodeJS.ProcessEnv = process.env, options: Partial<NotifyOptions> = {}): Notifier {
  const o = { ...notifyDefaults, ...options };
  if (!env.NOTIFY_SOCKET) return { enabled: false, watch: () => undefined, stopping: () => undefined, close: () => undefined };

  // One systemd-notify child at a time: what is asked for meanwhile is merged into one pending message
  // (later values win), so a slow or hung child never lets children pile up.
  let child: ReturnType<typeof spawn> | null = null;
  let pending: Map<string, string> | null = null;
  let failureLogged = false;
  const failed = (problem: Record<string, unknown>) => {
    // Notifications are a courtesy to systemd: a failing binary never stops the agent. Logged once.
    if (failureLogged) return;
    failureLogged = true;
    log.warn({ command: o.command, ...problem }, 'systemd-notify failed; the agent goes on without it');
  };
  function send(fields: Record<string, string>): void {
    pending ??= new Map();
    for (const [k, v] of Object.entries(fields)) pending.set(k, v);
    if (!child) flush();
  }
  function flush(): void {
    if (!pending) return;
    const message = [...pending].map(([k, v]) => `${k}=${v}`);
    pending = null;
    let c: ReturnType<typeof spawn>;
    try {
      c = spawn(o.command, message, { stdio: ['ignore', 'ignore', 'pipe'], env });
    } catch (err) {
      failed({ err: (err as Error).message });
      return;
    }
    child = c;
    let stderr = '';
    c.stderr?.setEncoding('utf8').on('data', (s: string) => void (stderr.length < 500 && (stderr += s)));
    const timer = setTimeout(() => {
      failed({ problem: `did not exit within ${o.childTimeoutMs} ms; killed` });
      c.kill('SIGKILL');
    }, o.childTimeoutMs);
    timer.unref();
    let done = false;
    const end = (problem: Record<string, unknown> | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (problem) failed(problem);
      child = null;
      flush();
    };
    c.once('error', (err) => end({ err: err.message }));
    c.once('close', (code, signal) => end(code === 0 ? null : { exitCode: code, signal, stderr: stderr.trim().slice(0, 300) }));
  }

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => void) => {
    const t = setInterval(fn, ms);
    t.unref();
    timers.push(t);
  };
  let agent: NotifiedAgent | null = null;
  let isReady = false;
  let isStopping = false;
  let workersAnswer = true;

  // EXTEND_TIMEOUT_USEC while starting: loading models and running their golden vectors can take longer
  // than TimeoutStartSec, and so can waiting for a broker that is down (a restart would not bring it back).
  // Sent from this event loop: a start that hangs the loop stops extending and still times out.
  const extend = () => {
    if (isReady || isStopping) return;
    send({ EXTEND_TIMEOUT_USEC: String(o.extendByMs * 1000), STATUS: startingStatus() });
  };
  const startingStatus = () => {
    if (!agent) return 'starting: loading and checking the models';
    const b = agent.observe.broker();
    return b.connected ? `starting: waiting for ${b.url} to acknowledge the subscriptions` : `starting: waiting for the broker ${b.url}`;
  };
  extend();
  every(o.extendEveryMs, extend);

  // STATUS=: one line, what `systemctl status` shows.
  every(o.statusEveryMs, () => {
    if (isStopping || !agent) return;
    send({ STATUS: isReady ? statusLine(agent.observe, o.maxSyncLagSec, workersAnswer) : startingStatus() });
  });

  // WATCHDOG=1: only while this event loop turns (the timer fires) and every model worker answers a ping.
  // Never tied to the broker: an outage of the network must not turn into a restart loop.
  const watchdogMs = watchdogIntervalMs(env);
  let checking = false;
  if (watchdogMs !== null) {
    every(watchdogMs, () => {
      if (checking) return;
      // Starting (the models load in their workers) or stopping (the workers are closing): this loop turns,
      // which is all there is to check; a stop that hangs is TimeoutStopSec's to end.
      if (!agent || isStopping) return send({ WATCHDOG: '1' });
      checking = true;
      void liveness(agent.observe, Math.max(100, Math.min(5000, Math.floor(watchdogMs / 2)))).then((r) => {
        checking = false;
        if (isStopping) return;
        if (r.ok !== workersAnswer) {
          const silent = r.checks.filter((c) => !c.ok).map((c) => c.name);
          if (r.ok) log.info({}, 'model workers answer again; watchdog pings resumed');
          else log.error({ silent }, 'a model worker does not answer; watchdog pings withheld (systemd restarts the agent after WatchdogSec)');
        }
        workersAnswer = r.ok;
        if (r.ok) send({ WATCHDOG: '1' });
      });
    });
  }
  log.info({ socket: env.NOTIFY_SOCKET, watchdogMs }, 'systemd notify on');

  return {
    enabled: true,
    watch(a) {
      agent = a;
      extend();
      void a.ready.then(() => {
        if (isStopping) return;
        isReady = true;
        send({ READY: '1', STATUS: statusLine(a.observe, o.maxSyncLagSec, workersAnswer) });
      });
    },
    stopping() {
      if (isStopping) return;
      isStopping = true;
      pending?.delete('READY');
      send({ STOPPING: '1', STATUS: 'stopping' });
    },
    close() {
      for (const t of timers) clearInterval(t);
      timers.length = 0;
    },
  };
}

/** The STATUS= line: the models serving, the rates, the sync backlog, and the problems /readyz would name. */
export function statusLine(observe: ObserveSources, maxSyncLagSec: number, workersAnswer: boolean): string {
  const s = observe.stats.snapshot();
  const parts = [
    observe.models().map((m) => `${m.name}@${m.serving}`).join(', '),
    `${s.receivedPerSec.toFixed(1)} msg/s`,
  ];
  const sync = observe.sync();
  if (sync) parts.push(`sync backlog ${sync.targets.reduce((n, t) => n + t.kinds.reduce((m, k) => m + k.backlog, 0), 0)}`);
  if (s.resultsPending) parts.push(`${s.resultsPending} results pending`);
  const problems = readiness(observe, maxSyncLagSec, sync).checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.problem ?? 'failing'}`);
  if (!workersAnswer) problems.unshift('a model worker does not answer');
  parts.push(problems.length ? `problems: ${problems.join('; ')}` : 'ok');
  // One line, short: systemd shows it in `systemctl status`.
  return parts.join(' · ').replace(/[\r\n]+/g, ' ').slice(0, 300);
}
