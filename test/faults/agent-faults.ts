// Fault suite, faults of the agent process: kill -9 at random points and right after an inbox commit,
// SIGTERM under load, the inference worker crashing, SIGSTOP past the keepalive, kill -9 under QoS 0.
// Each runs rounds of (start, publish, inject, wait for the exit) on one store, then drains and tallies.

import { startMosquitto, type AgentProcess, type Mosquitto } from '../helpers/parts.js';
import {
  ackedAtLeast, behind, between, bounded, drain, waitFor, expectCleanExit, Gateway, makeStore, spawnAgent, startedOrExited, tally,
  type Outcome, type Scenario, type ScenarioContext, type Store, redeliveries,
} from './harness.js';

interface Round { broker: Mosquitto; gateway: Gateway; store: Store; from: number; to: number }

interface Rounds {
  name: string;
  rounds: number;
  perRound: number;
  qos?: 0 | 1;
  /** Environment of the agent in round r (fault injection hooks). */
  env?: (r: number) => NodeJS.ProcessEnv;
  /** The fault, while the round's readings are being published; gives a note when there is something to say. */
  inject: (agent: AgentProcess, r: number, round: Round) => Promise<string | void>;
  /** The exit the round must end with (a code, or a signal name). */
  expectExit: number | NodeJS.Signals;
  mosquitto?: string[];
  /** Extra mqtt options of the agent (keepalive). */
  mqtt?: Record<string, unknown>;
  lossWhose?: string;
  /** The fault ends the round (a kill, a crash), so the lag at the exit says whether it landed mid-stream. */
  lagAtExit?: boolean;
}

async function runRounds(ctx: ScenarioContext, spec: Rounds): Promise<Outcome> {
  const { t } = ctx;
  const qos = spec.qos ?? 1;
  const broker = await startMosquitto(t, spec.mosquitto ?? []);
  const store = makeStore(t, broker.url, spec.name, { ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos }] } }, spec.mqtt);
  const gateway = await Gateway.connect(t, broker.url, spec.name);
  const failures: string[] = [];
  const notes: string[] = [];
  const lag: number[] = [];
  const agents: AgentProcess[] = [];
  for (let r = 0; r < spec.rounds; r++) {
    const t0 = Date.now();
    const agent = spawnAgent(t, store.config, spec.env?.(r) ?? {});
    agents.push(agent);
    await startedOrExited(agent);
    const t1 = Date.now();
    const publishing = gateway.publish(r * spec.perRound, (r + 1) * spec.perRound, { qos });
    const note = await spec.inject(agent, r, { broker, gateway, store, from: r * spec.perRound, to: (r + 1) * spec.perRound });
    if (note) notes.push(note);
    const exit = await bounded(agent.exited, 30000, `round ${r + 1}: the agent's exit`);
    lag.push(behind(store, gateway));
    const got = exit.signal ?? exit.code;
    if (got !== spec.expectExit) failures.push(`round ${r + 1}: exit ${got}, expected ${spec.expectExit} (stderr: ${agent.stderr().slice(-200)})`);
    await publishing.done;
    ctx.log(`  round ${r + 1}/${spec.rounds}: exit ${got}, gateway acked ${gateway.acked.size}; started in ${t1 - t0} ms, round took ${Date.now() - t0} ms`);
  }
  const { exit, agent: last } = await drain(t, store, gateway);
  agents.push(last);
  const outcome = tally(store, gateway, spec.rounds, spec.lossWhose);
  const logged = (msg: string) => agents.flatMap((a) => a.logs).filter((l) => l.msg === msg);
  const replayed = logged('replaying inbox rows left by an unclean stop').reduce((sum, l) => sum + Number(l.rows ?? 0), 0);
  if (qos === 1) notes.push(`${replayed} inbox rows replayed at restarts, ${agents.reduce((n, a) => n + redeliveries(a), 0)} redeliveries recognised`);
  expectCleanExit(outcome, exit);
  outcome.failures.unshift(...failures);
  outcome.notes.push(...notes);
  const sorted = [...lag].sort((a, b) => a - b);
  if (spec.lagAtExit !== false) outcome.notes.push(`at the exits, readings acknowledged by the broker but not yet stored: ${lag.filter((x) => x > 0).length} of ${lag.length} rounds mid-stream, median ${sorted[Math.floor(sorted.length / 2)] ?? 0}, max ${sorted[sorted.length - 1] ?? 0}`);
  return outcome;
}

/** A random point (seeded) in round r's stream: after k of its readings were acknowledged, k in [0, perRound). */
async function randomPoint(ctx: ScenarioContext, round: Round): Promise<void> {
  await ackedAtLeast(round.gateway, round.from + between(ctx.random, 0, round.to - round.from - 1));
}

export const killRandom: Scenario = {
  name: 'kill -9 under QoS 1 load, random points',
  budgetSec: 480,
  quick: true,
  run: (ctx) =>
    runRounds(ctx, {
      name: 'kill-random',
      rounds: ctx.quick ? 5 : 20,
      perRound: 500,
      expectExit: 'SIGKILL',
      async inject(agent, _r, round) {
        // The point is random on purpose (seeded): a point in this round's stream.
        await randomPoint(ctx, round);
        agent.proc.kill('SIGKILL');
      },
    }),
};

export const killAfterInbox: Scenario = {
  name: 'kill -9 between inbox commit and PUBACK',
  budgetSec: 360,
  quick: true,
  run: async (ctx) => {
    const points: number[] = [];
    const outcome = await runRounds(ctx, {
      name: 'kill-inbox',
      rounds: ctx.quick ? 3 : 10,
      perRound: 500,
      // The hook kills the agent after the group commit that brings its inbox writes to N, before its PUBACKs leave.
      env: (r) => ((points[r] = between(ctx.random, 1, 400)), { EDGE_AGENT_TEST_KILL_AFTER_INBOX: String(points[r]) }),
      expectExit: 'SIGKILL',
      inject: async () => undefined,
    });
    outcome.notes.push(`killed after inbox writes no. ${points.join(', ')}`);
    return outcome;
  },
};

export const sigtermUnderLoad: Scenario = {
  name: 'SIGTERM under QoS 1 load',
  budgetSec: 300,
  quick: true,
  run: (ctx) =>
    runRounds(ctx, {
      name: 'sigterm',
      rounds: ctx.quick ? 2 : 5,
      perRound: 1000,
      expectExit: 0,
      async inject(agent, _r, round) {
        await randomPoint(ctx, round);
        agent.proc.kill('SIGTERM');
      },
    }),
};

export const workerCrash: Scenario = {
  name: 'inference worker crash',
  budgetSec: 240,
  quick: true,
  run: (ctx) =>
    runRounds(ctx, {
      name: 'worker',
      rounds: ctx.quick ? 1 : 3,
      perRound: 1000,
      // The worker thread exits at its N+1th batch, as a crash in native code would: the agent must exit 70.
      env: () => ({ EDGE_AGENT_TEST_WORKER_EXIT_AFTER: String(between(ctx.random, 1, 30)) }),
      expectExit: 70,
      inject: async () => undefined,
    }),
};

export const sigstop: Scenario = {
  name: 'agent stopped (SIGSTOP) past the keepalive, then SIGCONT',
  budgetSec: 240,
  quick: false,
  run: (ctx) =>
    runRounds(ctx, {
      name: 'sigstop',
      rounds: 2,
      perRound: 1000,
      mosquitto: ['log_type notice'],
      // keepaliveSec 1: mosquitto drops a client silent for 1.5 keepalives, and says so in its log.
      mqtt: { keepaliveSec: 1 },
      expectExit: 0,
      lagAtExit: false,
      async inject(agent, r, round) {
        await randomPoint(ctx, round);
        agent.proc.kill('SIGSTOP');
        const lag = behind(round.store, round.gateway);
        try {
          await waitFor('the broker dropping the stopped agent', () => count(round.broker.log(), /exceeded timeout/g) >= r + 1, 20000);
        } finally {
          agent.proc.kill('SIGCONT');
        }
        // Serving again after SIGCONT: it reconnects to its session (a second CONNACK in this process); then a clean stop.
        await waitFor('the agent reconnecting after SIGCONT', () => agent.logs.filter((l) => l.msg === 'connected to broker').length >= 2 || agent.proc.exitCode !== null, 30000);
        agent.proc.kill('SIGTERM');
        return `round ${r + 1}: stopped with ${lag} acknowledged readings not yet stored, dropped by the broker, resumed`;
      },
    }),
};

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

export const killQos0: Scenario = {
  name: 'kill -9 under QoS 0 load',
  budgetSec: 240,
  quick: false,
  run: (ctx) =>
    runRounds(ctx, {
      name: 'kill-qos0',
      rounds: 3,
      perRound: 1000,
      qos: 0,
      expectExit: 'SIGKILL',
      lossWhose: "QoS 0's: at most once by contract; readings in the broker's queue or the agent's memory at the kill",
      async inject(agent, _r, round) {
        await randomPoint(ctx, round);
        agent.proc.kill('SIGKILL');
      },
    }),
};

