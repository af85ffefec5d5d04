// `edge-agent status`: takes --config (of which only store.path is read) and --json; asks the running agent
// on its control socket (no network port) for the status snapshot; gives the essentials as a compact table
// for a terminal, or the whole snapshot as JSON.

import { parseArgs } from 'node:util';
import { readStorePath } from '../config.js';
import { callControl, controlSocketPath } from '../control.js';
import { EdgeError } from '../errors.js';
import type { StatusSnapshot } from './status.js';
import type { DriftStatus } from './drift.js';

export const DEFAULT_CONFIG = '/etc/edge-agent/agent.yaml';

export const STATUS_USAGE = `Usage: edge-agent status [--config FILE] [--json]

Asks the running agent, on the control socket beside its store, how it is and prints: ready or not with the
failing checks; messages a second and latency; predictions by model and label; dead letters by reason; per
model the version serving, the previous one, the shadow and the last lifecycle event; the sync backlog per
target; the store against its budget; drift over its threshold.

Only store.path is read from the config, so secrets it takes from environment variables or files need not
be set in your shell. Run it as the agent's user (or root): the socket is readable by that user only.
Exit 0 when the agent answered (ready or not), 69 when no agent answers, 78 when the config cannot be read.

Options:
  -c, --config FILE   the agent's config (default ${DEFAULT_CONFIG})
  --json              the agent's whole answer as JSON (the same as /api/status)
  -h, --help          this text

Example:
  edge-agent status --config /etc/edge-agent/agent.yaml`;

export async function runStatusCommand(args: string[], out: (s: string) => void): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args, strict: true, allowPositionals: false, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `${(err as Error).message}\n\n${STATUS_USAGE}`);
  }
  const o = parsed.values;
  if (o.help) return out(`${STATUS_USAGE}\n`);
  const storePath = readStorePath(o.config ?? DEFAULT_CONFIG);
  const socket = controlSocketPath(storePath);
  const answer = await callControl(socket, 'status', { historySec: 1 }, 15_000);
  if (!answer) throw new EdgeError('EDGE_ERR_CONTROL', `no agent is running on ${storePath} (nothing listens on ${socket}): is the service running? (systemctl status edge-agent)`);
  const s = answer.result as StatusSnapshot;
  out(o.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
}

/** The snapshot as a few lines and two tables, about 80 columns wide. */
export function formatStatus(s: StatusSnapshot): string {
  const a = s.agent;
  const r = s.rates;
  const lines: string[] = [];
  const failing = a.checks.filter((c) => !c.ok);
  lines.push(`agent ${a.id} ${a.version}, up ${duration(a.uptimeSec)}: ${a.ready ? 'READY' : 'NOT READY'}`);
  for (const c of failing) lines.push(`  failing: ${c.name}: ${c.problem ?? 'failing'}`);
  lines.push(`messages ${fixed(r.receivedPerSec)}/s received, ${fixed(r.predictionsPerSec)}/s predicted; latency p50 ${fixed(r.latencyP50Ms)} ms, p99 ${fixed(r.latencyP99Ms)} ms`);
  const labels = s.history.at(-1)?.labels ?? {};
  const byModel = Object.entries(labels).map(([m, l]) => `${m} ${Object.entries(l).sort((x, y) => y[1] - x[1]).map(([k, n]) => (k ? `${k} ${n}` : `${n}`)).join(', ')}`);
  lines.push(`predictions ${r.predictions}${byModel.length ? `: ${byModel.join('; ')}` : ''}`);
  const reasons = Object.entries(r.rejects).sort((x, y) => (y[1] ?? 0) - (x[1] ?? 0));
  lines.push(`dead letters ${r.deadLetters}${reasons.length ? `: ${reasons.map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`);
  lines.push('');

  const lastEvent = new Map<string, StatusSnapshot['events'][number]>();
  for (const e of s.events) if (!lastEvent.has(e.model)) lastEvent.set(e.model, e);
  lines.push(...table(['MODEL@SERVING', 'PREVIOUS', 'SHADOW', 'LAST EVENT'], s.models.map((m) => {
    const state = (m.state ?? {}) as { previous?: string | null };
    const sh = m.shadow as { version: string; compared: number; agreed: number } | null;
    const e = lastEvent.get(m.name);
    return [
      `${m.name}@${m.serving}${m.workerAlive ? '' : ' (worker gone)'}`,
      state.previous ?? '-',
      sh ? `${sh.version}${sh.compared ? ` (agrees ${fixed((100 * sh.agreed) / sh.compared)} %)` : ''}` : '-',
      e ? `${e.event}${e.version ? ` ${e.version}` : ''} ${when(e.at)}` : '-',
    ];
  })));
  lines.push('');

  if (!s.sync) lines.push('sync: not running yet (it starts once the agent is ready)');
  else if (!s.sync.targets.length) lines.push('sync: no target configured');
  else {
    lines.push(...table(['SYNC TARGET', 'BACKLOG', 'OLDEST', 'LAST SUCCESS', 'LAST ERROR'], s.sync.targets.map((t) => {
      const kinds = t.kinds as { kind: string; backlog: number; oldestUnsyncedSec: number | null; lastSuccess?: string | null; lastError: string | null; lastErrorAt?: string | null }[];
      const success = kinds.map((k) => k.lastSuccess).filter((x): x is string => !!x).sort().at(-1);
      const error = kinds.filter((k) => k.lastError).sort((x, y) => String(x.lastErrorAt).localeCompare(String(y.lastErrorAt))).at(-1);
      const oldest = Math.max(-1, ...kinds.map((k) => k.oldestUnsyncedSec ?? -1));
      return [t.target, String(kinds.reduce((n, k) => n + k.backlog, 0)), oldest < 0 ? '-' : duration(oldest), success ? when(Date.parse(success)) : 'never',
        error ? `${error.lastErrorAt ? `${when(Date.parse(error.lastErrorAt))} ` : ''}${error.kind}: ${error.lastError}` : '-'];
    })));
  }
  const st = s.store;
  lines.push('');
  lines.push(`store ${bytes(st.usedBytes)} of ${bytes(st.maxBytes)} (${fixed((100 * st.usedBytes) / st.maxBytes)} %)${st.full ? `, FULL (${st.onFull})` : ''}${st.freeDiskBytes !== null ? `, ${bytes(st.freeDiskBytes)} free on disk` : ''}`);
  const over = s.drift?.enabled ? overThreshold(s.drift) : [];
  lines.push(!s.drift?.enabled ? 'drift: off' : over.length ? `drift over threshold: ${over.join('; ')}` : 'drift: nothing over its threshold');
  return `${lines.join('\n')}\n`;
}

/** Each model version's features (and predicted labels) over drift's warning threshold, with their PSI. */
function overThreshold(d: DriftStatus): string[] {
  const found: string[] = [];
  for (const m of d.models) {
    const over = m.features.filter((f) => f.over).map((f) => `${f.name} (PSI ${(f.psi ?? 0).toFixed(2)})`);
    if (m.predictions?.over) over.push(`predicted labels (PSI ${(m.predictions.psi ?? 0).toFixed(2)})`);
    if (over.length) found.push(`${m.name}@${m.version} ${over.join(', ')}`);
  }
  return found;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd());
}

const fixed = (n: number) => (Number.isFinite(n) ? n.toFixed(n >= 100 || Number.isInteger(n) ? 0 : 1) : '-');

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function duration(sec: number): string {
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
}

/** A local time, e.g. 2026-11-26 17:43:05 (the line PC's clock, as the log viewer shows it). */
function when(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
