// Benchmark (`npm run bench`): prints figures, asserts nothing. On a real mosquitto:
//  1. ceiling: a no-op mqtt.js subscriber draining a backlog of N readings (QoS 0 and QoS 1);
//  2. the agent (a child process) draining the same backlog end to end: decode, inbox, model,
//     SQLite, result published; for QoS 1 at synchronous=NORMAL and FULL;
//  3. publish-to-result latency p50/p99 at a paced live rate;
//  4. the agent's main-thread event-loop delay while serving (inference runs in a worker thread).
//  5. the drift monitor's cost per prediction row (drift.ts); BENCH_DRIFT=off runs the agents above with
//     drift.enabled: false, to compare end to end.
// With the throughput section (BENCH_SECTIONS baselines, in the default set): the no-op relay ceiling and the
// afternoon baseline (baselines.ts). Then, by BENCH_SECTIONS: Sparkplug B's backlog and latency (sparkplug.ts), the model lifecycle (lifecycle.ts),
// upstream sync (sync.ts), what /metrics costs (metrics.ts), the windowed and tags payload styles (styles.ts),
// fairness between subscriptions under a flood (fairness.ts).

import { join } from 'node:path';
import mqtt from 'mqtt';
import { lifecycleBench } from './lifecycle.js';
import { driftBench } from './drift.js';
import { fairnessBench } from './fairness.js';
import { metricsBench } from './metrics.js';
import { sparkplugBench } from './sparkplug.js';
import { syncBench } from './sync.js';
import { stylesBench } from './styles.js';
import { naiveBaseline, relayCeiling } from './baselines.js';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const N = Number(process.env.BENCH_MESSAGES ?? 50000);
const LIVE_RATES = (process.env.BENCH_LIVE_RATES ?? '500,5000').split(',').map(Number);
const LIVE_SEC = Number(process.env.BENCH_LIVE_SEC ?? 4);
/** BENCH_DRIFT=off runs the agents with drift.enabled: false, to measure what the drift monitor costs. */
const DRIFT = { enabled: process.env.BENCH_DRIFT !== 'off' };
const TOPIC = 'plant/press-1/bearing';
const cleanups: (() => unknown)[] = [];
const t: Teardown = { after: (fn) => void cleanups.push(fn as () => unknown) };

async function publishBacklog(url: string, qos: 0 | 1, n: number): Promise<void> {
  const pub = await mqttClient(t, url, { clientId: `bench-pub-${Math.random().toString(36).slice(2)}` });
  const payload = readingPayload(1);
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, n - i) }, () => pub.publishAsync(TOPIC, payload, { qos })));
  }
  await pub.endAsync();
}

/** A no-op subscriber with a persistent session: subscribe, go away, let the backlog build, come back and drain it. */
async function ceiling(url: string, qos: 0 | 1): Promise<number> {
  const clientId = `bench-noop-${qos}-${Date.now()}`;
  const first = await mqtt.connectAsync(url, { clientId, clean: false });
  await first.subscribeAsync(TOPIC, { qos });
  await first.endAsync();
  await publishBacklog(url, qos, N);
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const sub = mqtt.connect(url, { clientId, clean: false, manualConnect: true });
  sub.on('message', () => void (++got === N && done()));
  const t0 = performance.now();
  sub.connect();
  await finished;
  const sec = (performance.now() - t0) / 1000;
  await sub.endAsync();
  return N / sec;
}

interface AgentRun { perSec: number; committedPerSec: number; eventLoopP99Ms: number; eventLoopMaxMs: number }

/** The agent drains the same backlog: from its CONNACK to the last result seen on the result topic. */
async function agentBacklog(url: string, qos: 0 | 1, synchronous: 'NORMAL' | 'FULL'): Promise<AgentRun> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'bench.db');
  const clientId = `bench-agent-${qos}-${synchronous}-${Date.now()}`;
  const config = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos }] }, store: { path: dbPath, synchronous },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos }, log: { level: 'info' }, drift: DRIFT,
  }));
  const warm = spawnAgent(t, config);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await warm.exited;
  await publishBacklog(url, qos, N);

  const watcher = await mqttClient(t, url, { clientId: `bench-watch-${Date.now()}` });
  let results = 0;
  let last = 0;
  watcher.on('message', () => {
    results++;
    last = Date.now();
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos });
  const agent = spawnAgent(t, config);
  const connected = await agent.waitForLog('connected to broker');
  let committedAt = 0;
  await waitFor(`${N} rows`, () => countRows(dbPath).predictions >= N, 300000, 20);
  committedAt = Date.now();
  await waitFor(`${N} results`, () => results >= N, 300000, 20);
  const start = Date.parse(connected.time as string);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped') ?? {};
  const rows = countRows(dbPath);
  if (rows.predictions !== N) throw new Error(`expected ${N} prediction rows, found ${rows.predictions}`);
  return { perSec: N / ((last - start) / 1000), committedPerSec: N / ((committedAt - start) / 1000), eventLoopP99Ms: Number(stopped.eventLoopDelayP99Ms), eventLoopMaxMs: Number(stopped.eventLoopDelayMaxMs) };
}

/** Paced live load: publish-to-result latency, matched by order (one publisher, one asset, in-order delivery). */
async function live(url: string, qos: 0 | 1, rate: number): Promise<{ p50: number; p99: number; max: number; sent: number; loopP99: number; loopMax: number; agentP50: number; agentP99: number }> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'live.db');
  const config = writeConfig(dir, agentConfig({ url, dbPath, mqtt: { url, clientId: `bench-live-${qos}-${Date.now()}` }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos }] }, publish: { topic: 'plant/{asset}/predictions/{model}', qos }, drift: DRIFT }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('subscribed');
  const watcher = await mqttClient(t, url, { clientId: `bench-live-watch-${Date.now()}` });
  const sentAt: number[] = [];
  const latencies: number[] = [];
  watcher.on('message', () => {
    const s = sentAt[latencies.length];
    if (s !== undefined) latencies.push(performance.now() - s);
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos });
  const pub = await mqttClient(t, url, { clientId: `bench-live-pub-${Date.now()}` });
  const payload = readingPayload(1);
  const total = rate * LIVE_SEC;
  const perTick = Math.max(1, Math.round(rate / 100));
  const t0 = performance.now();
  while (sentAt.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + perTick);
    while (sentAt.length < due) {
      sentAt.push(performance.now());
      pub.publish(TOPIC, payload, { qos });
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await waitFor('all live results', () => latencies.length >= total, 30000, 20).catch((e: unknown) => { console.error(`live qos ${qos}: ${latencies.length} of ${total} results; agent: ${JSON.stringify(agent.logs.slice(-3))}`); throw e; });
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped') ?? {};
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1] ?? NaN, sent: total, loopP99: Number(stopped.eventLoopDelayP99Ms), loopMax: Number(stopped.eventLoopDelayMaxMs), agentP50: Number(stopped.latencyP50Ms), agentP99: Number(stopped.latencyP99Ms) };
}

async function main(): Promise<void> {
  // BENCH_MOSQUITTO='max_inflight_messages 100;...' adds lines to the test broker's config.
  const extra = (process.env.BENCH_MOSQUITTO ?? '').split(';').map((l) => l.trim()).filter(Boolean);
  const broker = await startMosquitto(t, extra);
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => n.toFixed(1);
  console.log(`edge-agent bench — ${N} readings per backlog, demo model (bearing-health), mosquitto on loopback${extra.length ? ` (${extra.join('; ')})` : ''}, drift ${DRIFT.enabled ? 'on' : 'off'}, ${new Date().toISOString()}`);
  // BENCH_SECTIONS=lifecycle,sync runs only those figures; BENCH_SWAPS sets how many swaps the RSS figure takes.
  const sections = (process.env.BENCH_SECTIONS ?? 'throughput,baselines,sparkplug,lifecycle,sync,drift,metrics,styles,fairness').split(',');
  const spb = () => sparkplugBench(t, broker.url, { n: N, rates: LIVE_RATES, sec: LIVE_SEC, drift: DRIFT });
  if (!sections.includes('throughput')) {
    if (sections.includes('sparkplug')) await spb();
    if (sections.includes('drift')) driftBench();
    if (sections.includes('lifecycle')) await lifecycleBench(t, broker.url, Number(process.env.BENCH_SWAPS ?? 200));
    if (sections.includes('sync')) await syncBench(t, broker.url);
    if (sections.includes('metrics')) await metricsBench(t, broker.url);
    if (sections.includes('styles')) await stylesBench(t, broker.url);
    if (sections.includes('fairness')) await fairnessBench(t, broker.url);
    return;
  }
  const rows: string[] = [];
  const only = process.env.BENCH_QOS ? [Number(process.env.BENCH_QOS) as 0 | 1] : ([0, 1] as const);
  for (const qos of only) {
    const c = await ceiling(broker.url, qos);
    const a = await agentBacklog(broker.url, qos, 'NORMAL');
    const row = (name: string, r: AgentRun) =>
      `| QoS ${qos} | ${name} | ${f(r.committedPerSec)} | ${f(r.perSec)} | ${Math.round((100 * r.perSec) / c)} % | ${ms(r.eventLoopP99Ms)} / ${ms(r.eventLoopMaxMs)} |`;
    rows.push(`| QoS ${qos} | no-op mqtt.js subscriber (ceiling) | | ${f(c)} | | |`);
    rows.push(row('agent, synchronous=NORMAL', a));
    if (qos === 1) rows.push(row('agent, synchronous=FULL', await agentBacklog(broker.url, 1, 'FULL')));
    // Issue 10's baselines (baselines.ts): the no-op relay (what end to end can reach) and the afternoon version.
    if (qos === 1 && sections.includes('baselines')) {
      const relay = await relayCeiling(broker.url, N);
      const naive = await naiveBaseline(t, broker.url, N);
      rows.push(`| QoS 1 | no-op relay, republishes each at QoS 1 (end-to-end ceiling) | | ${f(relay)} | ${Math.round((100 * relay) / c)} % | |`);
      rows.push(`| QoS 1 | afternoon baseline: on('message'), session.run and one insert per message, acked before stored | ${f(naive.committedPerSec)} | ${f(naive.perSec)} | ${Math.round((100 * naive.perSec) / c)} % | |`);
      rows.push(`| QoS 1 | agent end to end, of the relay ceiling | | | ${Math.round((100 * a.perSec) / relay)} % | |`);
    }
  }
  console.log('\nBacklog drain, messages/s from the CONNACK: until all rows are committed, and until a subscriber has every result\n');
  console.log('| QoS | subscriber | committed msg/s | end to end msg/s | of ceiling | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`\nPublish-to-result latency, paced for ${LIVE_SEC} s (publisher, broker, agent, result subscriber on this machine)\n`);
  console.log('| QoS | msg/s | p50 (ms) | p99 (ms) | max (ms) | in the agent p50 / p99 (ms) | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|---|---|');
  for (const rate of LIVE_RATES) {
    for (const qos of [0, 1] as const) {
      const l = await live(broker.url, qos, rate);
      console.log(`| ${qos} | ${f(rate)} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} | ${ms(l.agentP50)} / ${ms(l.agentP99)} | ${ms(l.loopP99)} / ${ms(l.loopMax)} |`);
    }
  }
  if (sections.includes('sparkplug')) await spb();
  if (sections.includes('drift')) driftBench();
  if (sections.includes('lifecycle')) await lifecycleBench(t, broker.url, Number(process.env.BENCH_SWAPS ?? 200));
  if (sections.includes('sync')) await syncBench(t, broker.url);
  if (sections.includes('metrics')) await metricsBench(t, broker.url);
  if (sections.includes('styles')) await stylesBench(t, broker.url);
  if (sections.includes('fairness')) await fairnessBench(t, broker.url);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
