// Fault suite, faults of the broker: mosquitto restarted (SIGTERM) with and without persistence, and
// killed with SIGKILL, on the same port while the gateway publishes and the agent serves. The agent
// must lose nothing the broker still holds; what the broker itself forgets is its loss, reported apart.

import { freePort, startMosquitto, stopProcess, tempDir, type Mosquitto } from '../helpers/parts.js';
import {
  ackedAtLeast, behind, between, drain, expectCleanExit, Gateway, makeStore, spawnAgent, tally, waitFor, type Outcome, type Scenario, type ScenarioContext,
} from './harness.js';

interface BrokerFault {
  name: string;
  persistence: boolean;
  signal: NodeJS.Signals;
  lossWhose?: string;
}

async function brokerScenario(ctx: ScenarioContext, spec: BrokerFault): Promise<Outcome> {
  const { t } = ctx;
  const port = await freePort();
  const dataDir = tempDir(t, 'edge-agent-fault-mosq-data-');
  // autosave_interval 3600: mosquitto writes its persistence file on a clean exit and then only hourly.
  const extra = spec.persistence ? ['persistence true', `persistence_location ${dataDir}/`, 'autosave_interval 3600'] : [];
  let broker: Mosquitto = await startMosquitto(t, extra, port);
  const store = makeStore(t, broker.url, spec.name);
  const gateway = await Gateway.connect(t, broker.url, spec.name);
  const agent = spawnAgent(t, store.config);
  await agent.waitForLog('subscribed');
  const rounds = ctx.quick ? 1 : 3;
  const perRound = 2000;
  const notes: string[] = [];
  const lags: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const publishing = gateway.publish(r * perRound, (r + 1) * perRound, { timeoutMs: 60000 });
    // A random point in the stream (seeded), then the broker goes away and comes back on the same port.
    await ackedAtLeast(gateway, r * perRound + between(ctx.random, 0, perRound - 1));
    const lag = behind(store, gateway);
    const atFault = gateway.acked.size;
    const connects = agent.logs.filter((l) => l.msg === 'connected to broker').length;
    await stopProcess(broker.proc, spec.signal);
    broker = await startMosquitto(t, extra, port);
    await waitFor('the agent reconnecting to the restarted broker', () => {
      if (agent.proc.exitCode !== null) throw new Error(`the agent exited ${agent.proc.exitCode}`);
      return agent.logs.filter((l) => l.msg === 'connected to broker').length > connects;
    }, 30000);
    await publishing.done;
    lags.push(lag);
    ctx.log(`  round ${r + 1}/${rounds}: broker ${spec.signal} after ${atFault} acked readings (${lag} not yet stored); gateway acked ${gateway.acked.size} of ${gateway.sent}`);
  }
  notes.push(`at the faults, readings acknowledged to the gateway but not yet stored: ${lags.join(', ')}`);
  notes.push(`agent reconnected ${agent.logs.filter((l) => l.msg === 'connected to broker').length - 1} times`);
  agent.proc.kill('SIGTERM');
  const first = await agent.exited;
  const { exit } = await drain(t, store, gateway);
  const outcome = tally(store, gateway, rounds, spec.lossWhose);
  expectCleanExit(outcome, first, 'the agent that lived through the broker faults, stopped with SIGTERM');
  expectCleanExit(outcome, exit);
  outcome.notes.push(...notes);
  return outcome;
}

export const brokerRestartPersistent: Scenario = {
  name: 'broker restart (SIGTERM) with persistence',
  budgetSec: 300,
  quick: true,
  run: (ctx) => brokerScenario(ctx, { name: 'broker-persist', persistence: true, signal: 'SIGTERM' }),
};

export const brokerRestartVolatile: Scenario = {
  name: 'broker restart (SIGTERM) without persistence',
  budgetSec: 300,
  quick: false,
  run: (ctx) =>
    brokerScenario(ctx, {
      name: 'broker-volatile', persistence: false, signal: 'SIGTERM',
      lossWhose: "the broker's: without persistence it forgets the agent's session and the readings queued in it",
    }),
};

export const brokerKill: Scenario = {
  name: 'broker kill -9 (persistence on)',
  budgetSec: 300,
  quick: false,
  run: (ctx) =>
    brokerScenario(ctx, {
      name: 'broker-kill', persistence: true, signal: 'SIGKILL',
      lossWhose: "the broker's: mosquitto saves its state only on exit and every autosave_interval, so kill -9 loses what it queued since",
    }),
};
