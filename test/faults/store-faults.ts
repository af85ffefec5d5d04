// Fault suite, faults around the store: the disk filling up (a real 1 MB tmpfs mounted here; needs
// root) and a second agent started on the same SQLite file. Gives their outcomes, counted from the rows.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMosquitto, teardown, tempDir } from '../helpers/parts.js';
import {
  bounded, drain, expectCleanExit, Gateway, makeStore, spawnAgent, startedOrExited, tally, writeConfig, type Scenario,
} from './harness.js';

export const diskFull: Scenario = {
  name: 'disk full (1 MB tmpfs), store moved, restart',
  budgetSec: 300,
  quick: true,
  run: async ({ t }) => {
    const small = join(tempDir(t, 'edge-agent-fault-disk-'), 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { stdio: 'pipe' }); // throws without root: the scenario fails saying so
    teardown(t, () => execFileSync('umount', ['-l', small]));
    const broker = await startMosquitto(t);
    const big = makeStore(t, broker.url, 'disk');
    const smallDb = join(small, 'agent.db');
    const base = makeStore(t, broker.url, 'disk', { store: { path: smallDb } });
    const gateway = await Gateway.connect(t, broker.url, 'disk');
    const full = spawnAgent(t, base.config);
    await full.waitForLog('subscribed');
    const publishing = gateway.publish(0, 20000, { chunk: 100, pauseMs: 0 });
    const exit = await bounded(full.exited, 90000, 'the agent stopping on the full disk');
    await publishing.done;
    // An engineer moves the store to a disk with room and starts the agent again.
    for (const suffix of ['', '-wal']) if (existsSync(smallDb + suffix)) copyFileSync(smallDb + suffix, big.dbPath + suffix);
    const again = await drain(t, big, gateway);
    const outcome = tally(big, gateway, 1);
    if (exit.code !== 74) outcome.failures.push(`on the full disk the agent exited ${exit.code ?? exit.signal}, expected 74 (stderr: ${full.stderr().slice(-200)})`);
    else outcome.notes.push('exit 74 on the full disk');
    expectCleanExit(outcome, again.exit);
    return outcome;
  },
};

export const secondAgent: Scenario = {
  name: 'second agent started on the same store',
  budgetSec: 240,
  quick: true,
  run: async ({ t }) => {
    const broker = await startMosquitto(t);
    const store = makeStore(t, broker.url, 'second');
    const gateway = await Gateway.connect(t, broker.url, 'second');
    const first = spawnAgent(t, store.config);
    await first.waitForLog('subscribed');
    // A manual start beside the service: the same store, its own client id (a copy of the config edited a little).
    const cfg = configOf(store.config);
    const copy = writeConfig(store.dir, { ...cfg, mqtt: { ...(cfg.mqtt as object), clientId: `${store.clientId}-second` } }, 'second.yaml');
    const second = spawnAgent(t, copy);
    const what = await startedOrExited(second, 'subscribed', 30000);
    const failures: string[] = [];
    const notes: string[] = [];
    if (what === 'exited') {
      const code = second.proc.exitCode;
      const said = [...second.logs].reverse().find((l) => l.level === 50 || l.err)?.err ?? second.stderr().trim().split('\n').pop();
      if (code === 0) failures.push('the second agent exited 0, expected a non-zero exit');
      notes.push(`the second agent exited ${code}: ${String(said ?? '(no message)').slice(0, 160)}`);
    } else {
      failures.push('the second agent started and served beside the first (nothing stops it)');
    }
    const publishing = gateway.publish(0, 2000);
    await publishing.done;
    second.proc.kill('SIGTERM');
    first.proc.kill('SIGTERM');
    const [a, b] = await Promise.all([bounded(first.exited, 30000, 'the first agent stopping'), bounded(second.exited, 30000, 'the second agent stopping')]);
    const again = await drain(t, store, gateway);
    const outcome = tally(store, gateway, 1);
    expectCleanExit(outcome, a, 'the first agent, stopped with SIGTERM');
    if (what === 'logged') notes.push(`the second agent exited ${b.code ?? b.signal} on SIGTERM`);
    expectCleanExit(outcome, again.exit);
    outcome.failures.unshift(...failures);
    outcome.notes.push(...notes);
    return outcome;
  },
};

function configOf(path: string): Record<string, unknown> {
  return parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}
