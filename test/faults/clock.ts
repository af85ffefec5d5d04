// Fault suite, the wall clock stepping (NTP on a line PC, a dead RTC battery): readings stored at the
// real time, then an agent run with the clock an hour back (or ahead) through libfaketime, killed right
// after an inbox commit (before its PUBACKs), restarted on the stepped clock. The broker redelivers the
// unacknowledged readings; they must be recognised, not stored twice.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startMosquitto } from '../helpers/parts.js';
import { bounded, drain, expectCleanExit, Gateway, makeStore, openDb, redeliveries, spawnAgent, tally, type Outcome, type Scenario, type ScenarioContext } from './harness.js';

/** Debian's faketime package puts the library under the multiarch folder (x86_64-linux-gnu, aarch64-linux-gnu...). */
function libfaketime(): string | undefined {
  return readdirSync('/usr/lib').map((d) => join('/usr/lib', d, 'faketime', 'libfaketime.so.1')).find((p) => existsSync(p));
}
/** Small enough that the readings stored before the step fill it (the default is 20000). */
const DEDUP_WINDOW = 300;

async function clockScenario(ctx: ScenarioContext, name: string, offset: '-1h' | '+1h'): Promise<Outcome> {
  const lib = libfaketime();
  if (!lib) throw new Error('libfaketime.so.1 is missing: install the Debian package faketime');
  // Only the wall clock steps; the monotonic clock goes on, as with an NTP step.
  const stepped = { LD_PRELOAD: lib, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  const { t } = ctx;
  const broker = await startMosquitto(t);
  const store = makeStore(t, broker.url, name, { ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }], dedupWindow: DEDUP_WINDOW } });
  const gateway = await Gateway.connect(t, broker.url, name);
  // The agent's session exists before anything is published, so the broker queues for it.
  const warm = spawnAgent(t, store.config);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await bounded(warm.exited, 30000, 'the first agent stopping');

  // 1. Real clock: 500 readings stored.
  await gateway.publish(0, 500).done;
  await drain(t, store, gateway);
  // 2. The clock steps; a backlog of 1000 waits; the agent dies at its first inbox commit, before the PUBACKs.
  await gateway.publish(500, 1500).done;
  const killed = spawnAgent(t, store.config, { ...stepped, EDGE_AGENT_TEST_KILL_AFTER_INBOX: '1' });
  const k = await bounded(killed.exited, 30000, 'the agent killing itself after its first inbox commit');
  // 3. Restart on the stepped clock: inbox replay, then the broker's redeliveries (DUP).
  const { exit, agent } = await drain(t, store, gateway, stepped);
  const outcome = tally(store, gateway, 1);
  if (k.signal !== 'SIGKILL') outcome.failures.push(`the injected kill did not happen (exit ${k.code ?? k.signal})`);
  expectCleanExit(outcome, exit);
  const replayed = Number(agent.logs.find((l) => l.msg === 'replaying inbox rows left by an unclean stop')?.rows ?? 0);
  const recognised = redeliveries(agent);
  outcome.notes.push(`clock ${offset}: received_at after the step is ${stepMinutes(store.dbPath)} min from before it; dedupWindow ${DEDUP_WINDOW}; ${replayed} inbox rows replayed, ${recognised} redeliveries recognised`);
  return outcome;
}

/** How far the stored receipt times jumped: the marker stored after the step against the one stored before it. */
function stepMinutes(dbPath: string): number {
  const db = openDb(dbPath);
  try {
    const at = (db.prepare("SELECT received_at AS r FROM predictions WHERE asset = 'marker' ORDER BY id").all() as { r: number }[]).map((x) => x.r);
    return Math.round(((at[1] ?? NaN) - (at[0] ?? NaN)) / 60000);
  } finally {
    db.close();
  }
}

export const clockBack: Scenario = {
  name: 'clock steps back 1 h, kill -9 after an inbox commit, restart',
  budgetSec: 180,
  quick: true,
  run: (ctx) => clockScenario(ctx, 'clock-back', '-1h'),
};

export const clockForward: Scenario = {
  name: 'clock steps forward 1 h, kill -9 after an inbox commit, restart',
  budgetSec: 180,
  quick: false,
  run: (ctx) => clockScenario(ctx, 'clock-fwd', '+1h'),
};
