// `edge-agent sync now|status`: takes the words after `sync`; asks the running agent on its control socket
// (no network port) to sync now, or for the state of every target, and prints the answer.

import { parseArgs } from 'node:util';
import { EdgeError } from '../agent/errors.js';
import { loadConfig } from '../agent/config.js';
import { callControl, controlSocketPath } from '../agent/control.js';
import type { RunReport, Sync } from './upstream.js';

const USAGE = {
  sync: `Usage: edge-agent sync COMMAND --config FILE   (edge-agent sync COMMAND --help for each)

Commands:
  now --config FILE      sync every target now, wait for the run and print what it sent
  status --config FILE   per target and kind of row: backlog, oldest unsynced row, last success and error`,
  now: `Usage: edge-agent sync now --config FILE [--timeout SEC]

Asks the running agent to sync now (or waits for the run under way) and prints, per target, the rows and
bytes the target acknowledged, the batches it refused for good, and why a target stopped early. Exit 0
when every target took everything it was given; 69 when a target was unavailable or refused this agent.

Example:
  edge-agent sync now --config /etc/edge-agent/agent.yaml`,
  status: `Usage: edge-agent sync status --config FILE [--json]

Prints, per target and kind of row (predictions, dead_letters, model_events): the rows not yet
acknowledged, how old the oldest of them is, the batch in flight, rows and bytes sent, the last success
and the last error; and the last run. --json prints the agent's answer as it is.

Example:
  edge-agent sync status --config /etc/edge-agent/agent.yaml`,
} as const;

function usage(message: string, command: keyof typeof USAGE): never {
  throw new EdgeError('EDGE_ERR_CLI_USAGE', `${message}\n\n${USAGE[command]}`);
}

export async function runSyncCommand(args: string[], out: (s: string) => void): Promise<void> {
  const command = args[0];
  if (command === undefined || command === '--help' || command === '-h') return out(`${USAGE.sync}\n`);
  if (command !== 'now' && command !== 'status') usage(`unknown sync command "${command}"`, 'sync');
  let parsed;
  try {
    parsed = parseArgs({ args: args.slice(1), strict: true, allowPositionals: false, options: { config: { type: 'string', short: 'c' }, timeout: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    usage((err as Error).message, command);
  }
  const o = parsed.values;
  if (o.help) return out(`${USAGE[command]}\n`);
  if (typeof o.config !== 'string') usage('--config FILE is required', command);
  const timeoutSec = o.timeout === undefined ? 900 : Number(o.timeout);
  if (!(timeoutSec > 0)) usage(`--timeout: got "${o.timeout}", expected seconds above 0`, command);
  const config = loadConfig(o.config);
  const answer = await callControl(controlSocketPath(config.store.path), `sync.${command}`, {}, command === 'now' ? timeoutSec * 1000 : 30_000);
  if (!answer) throw new EdgeError('EDGE_ERR_CONTROL', `no agent is running on ${config.store.path}`);
  if (o.json) return out(`${JSON.stringify(answer.result, null, 2)}\n`);
  if (command === 'now') {
    const r = answer.result as RunReport;
    out(r.targets.map((t) => `${t.target}: ${t.rows} rows, ${t.bytes} bytes acknowledged${t.rejected ? `, ${t.rejected} batches refused for good` : ''}${t.stopped ? ` — stopped: ${t.stopped}` : ''}\n`).join('') + `run took ${r.ms} ms\n`);
    if (r.targets.some((t) => t.stopped)) throw new EdgeError('EDGE_ERR_SYNC', `not every target took its rows: ${r.targets.filter((t) => t.stopped).map((t) => `${t.target} (${t.stopped})`).join(', ')}`);
    return;
  }
  const s = answer.result as ReturnType<Sync['status']> & { store: { usedBytes: number; maxBytes: number; freeDiskBytes: number; full: boolean; onFull: string; expired: number; trimmed: number; dropped: number; gaps: number } };
  const st = s.store;
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  out(`store ${mib(st.usedBytes)} of its ${mib(st.maxBytes)} budget${st.full ? ` — FULL (${st.onFull})` : ''}, ${mib(st.freeDiskBytes)} free on its disk; ` +
    `deleted since start: ${st.expired} past their age, ${st.trimmed} synced for room, ${st.dropped} unsynced dropped in ${st.gaps} gaps\n`);
  out(`schedule ${s.schedule}${s.running ? ', a run is under way' : ''}; last run: ${s.lastRun ? `${s.lastRun.startedAt} (${s.lastRun.reason}, ${s.lastRun.ms} ms)` : 'none yet'}\n` +
    s.targets.map((t) => `${t.target}${t.rejectedBatches ? ` (${t.rejectedBatches} batches refused for good, see sync_rejected)` : ''}\n` +
      t.kinds.map((k) => `  ${k.kind.padEnd(13)} backlog ${k.backlog}${k.oldestUnsyncedSec !== null ? ` (oldest ${k.oldestUnsyncedSec} s)` : ''}, sent ${k.rowsSent} rows / ${k.bytesSent} bytes, last success ${k.lastSuccess ?? 'never'}` +
        `${k.inFlight ? `, in flight ${k.inFlight}` : ''}${k.lastError ? `, last error ${k.lastErrorAt}: ${k.lastError}` : ''}\n`).join('')).join(''));
}
