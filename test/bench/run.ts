// Benchmark (`npm run bench`; `npm run bench -- --quick` for the goals only, in under two minutes): prints figures,
// asserts nothing. On a real mosquitto, by BENCH_SECTIONS (all by default):
//  throughput (BENCH_DRAIN_NODE_ARGS: node flags for the draining agents): the no-op mqtt.js subscriber draining a backlog of N readings (QoS 0 and QoS 1, the ceilings), then the
//    agent (a child process) draining the same backlog end to end: decode, inbox, model, SQLite, result published;
//    for QoS 1 at synchronous=NORMAL and FULL; with its main thread's event-loop delay;
//  baselines: the no-op relay ceiling and the afternoon baseline (baselines.ts);
//  live: publish-to-result latency p50/p99 at paced rates, steady (after the first second) and of every reading
//    (BENCH_LIVE_NODE_ARGS: node flags for the agent, e.g. --cpu-prof --cpu-prof-dir=dir);
//  profile: where a QoS 1 message's time goes on the agent's main thread, by stage, from a CPU profile (profile.ts);
//  soak: the agent's RSS at a paced rate with /metrics scraped, drift on and sync running (soak.ts);
//  then Sparkplug B's backlog and latency (sparkplug.ts), the model lifecycle (lifecycle.ts), upstream sync (sync.ts),
//  the drift monitor's cost per row (drift.ts; BENCH_DRIFT=off runs the agents above without it), what /metrics
//  costs (metrics.ts), the windowed and tags payload styles (styles.ts), fairness under a flood (fairness.ts).
// Last, issue 10's goals as measured in this run. Node processes started here get the systemd unit's NODE_OPTIONS
// (BENCH_NODE_OPTIONS overrides them).

import { readdirSync, readFileSync } from 'node:fs';
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
import { printStages, profileBench } from './profile.js';
import { soakBench, statTicks, type SoakFigures } from './soak.js';
import { agentConfig, countRows, mqttClient, nodeArgsFrom, readingPayload, repoRoot, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

/** `npm run bench -- --quick` (or BENCH_QUICK=1): the goals' figures only, on smaller loads, in under two minutes. */
const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_MESSAGES ?? (QUICK ? 10000 : 50000));
const LIVE_RATES = (process.env.BENCH_LIVE_RATES ?? (QUICK ? '5000' : '500,5000')).split(',').map(Number);
const LIVE_QOS = (process.env.BENCH_LIVE_QOS ?? (QUICK ? '0' : '0,1')).split(',').map(Number) as (0 | 1)[];
const LIVE_SEC = Number(process.env.BENCH_LIVE_SEC ?? (QUICK ? 3 : 4));
/** The RSS figure: a paced QoS 1 load with metrics scraped, drift on and sync running (soak.ts). */
const SOAK_RATE = Number(process.env.BENCH_SOAK_RATE ?? 10000);
const SOAK_SEC = Number(process.env.BENCH_SOAK_SEC ?? (QUICK ? 15 : 60));
const SOAK_QOS = Number(process.env.BENCH_SOAK_QOS ?? 1) as 0 | 1;
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
async function ceiling(url: string, brokerPid: number, qos: 0 | 1): Promise<{ rate: number; cpu: CpuPerMessage }> {
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
  const [broker0, self0] = [cpuTicks(brokerPid), process.cpuUsage()];
  const t0 = performance.now();
  sub.connect();
  await finished;
  const sec = (performance.now() - t0) / 1000;
  const [broker1, self1] = [cpuTicks(brokerPid), process.cpuUsage(self0)];
  await sub.endAsync();
  return { rate: N / sec, cpu: { agentMain: 0, agentOther: 0, broker: ((broker1.all - broker0.all) * 10_000) / N, subscriber: (self1.user + self1.system) / N } };
}

interface AgentRun { perSec: number; committedPerSec: number; eventLoopP99Ms: number; eventLoopMaxMs: number; cpu: CpuPerMessage }

/** CPU time (µs) per reading during a drain, by who spent it: what the two cores went to. */
interface CpuPerMessage { agentMain: number; agentOther: number; broker: number; subscriber: number }

/** A process's CPU time in clock ticks (1/100 s on Linux), its main thread (the one whose id is the pid) apart. */
function cpuTicks(pid: number): { main: number; all: number } {
  let main = 0;
  let all = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended meanwhile
    }
    const ticks = statTicks(stat);
    all += ticks;
    if (tid === String(pid)) main = ticks;
  }
  return { main, all };
}

/** The agent drains the same backlog: from its CONNACK to the last result seen on the result topic. */
/** `brokerPid`: the broker's process, for the CPU figures; `batch`: publish.batch (one result message per topic and batch). */
async function agentBacklog(url: string, brokerPid: number, qos: 0 | 1, synchronous: 'NORMAL' | 'FULL', batch = false): Promise<AgentRun> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'bench.db');
  const clientId = `bench-agent-${qos}-${synchronous}-${batch}-${Date.now()}`;
  const config = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos }] }, store: { path: dbPath, synchronous },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos, ...(batch ? { batch } : {}) }, log: { level: 'info' }, drift: DRIFT,
  }));
  const warm = spawnAgent(t, config);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await warm.exited;
  await publishBacklog(url, qos, N);

  const watcher = await mqttClient(t, url, { clientId: `bench-watch-${Date.now()}` });
  let results = 0;
  let last = 0;
  watcher.on('message', (_topic, payload) => {
    results += batch ? (JSON.parse(payload.toString()) as unknown[]).length : 1;
    last = Date.now();
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos });
  const agent = spawnAgent(t, config, {}, nodeArgsFrom('BENCH_DRAIN_NODE_ARGS'));
  const connected = await agent.waitForLog('connected to broker');
  const pid = agent.proc.pid as number;
  const [agent0, broker0, self0] = [cpuTicks(pid), cpuTicks(brokerPid), process.cpuUsage()];
  let committedAt = 0;
  await waitFor(`${N} rows`, () => countRows(dbPath).predictions >= N, 300000, 20);
  committedAt = Date.now();
  await waitFor(`${N} results`, () => results >= N, 300000, 20);
  const [agent1, broker1, self1] = [cpuTicks(pid), cpuTicks(brokerPid), process.cpuUsage(self0)];
  const perMsg = (ticks: number) => (ticks * 10_000) / N; // a tick is 10 ms
  const cpu = { agentMain: perMsg(agent1.main - agent0.main), agentOther: perMsg(agent1.all - agent1.main - (agent0.all - agent0.main)), broker: perMsg(broker1.all - broker0.all), subscriber: (self1.user + self1.system) / N };
  const start = Date.parse(connected.time as string);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped') ?? {};
  const rows = countRows(dbPath);
  if (rows.predictions !== N) throw new Error(`expected ${N} prediction rows, found ${rows.predictions}`);
  return { perSec: N / ((last - start) / 1000), committedPerSec: N / ((committedAt - start) / 1000), eventLoopP99Ms: Number(stopped.eventLoopDelayP99Ms), eventLoopMaxMs: Number(stopped.eventLoopDelayMaxMs), cpu };
}

/** The first second of a paced run: the agent's code still cold (V8 compiles it as the readings come). */
const START_MS = 1000;
interface LiveRun { p50: number; p99: number; max: number; all99: number; startMax: number; sent: number; loopP99: number; loopMax: number; agentP50: number; agentP99: number }

/**
 * Paced live load: publish-to-result latency, matched by order (one publisher, one asset, in-order delivery).
 * p50, p99 and max are of the readings sent after the first second (the steady state); `all99` is the p99 of
 * every reading and `startMax` the worst of the first second.
 */
async function live(url: string, qos: 0 | 1, rate: number): Promise<LiveRun> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'live.db');
  const config = writeConfig(dir, agentConfig({ url, dbPath, mqtt: { url, clientId: `bench-live-${qos}-${Date.now()}` }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos }] }, publish: { topic: 'plant/{asset}/predictions/{model}', qos }, drift: DRIFT }));
  const agent = spawnAgent(t, config, {}, nodeArgsFrom('BENCH_LIVE_NODE_ARGS'));
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
  const steady = latencies.filter((_l, i) => (sentAt[i] as number) - t0 >= START_MS).sort((a, b) => a - b);
  const startMax = Math.max(...latencies.filter((_l, i) => (sentAt[i] as number) - t0 < START_MS));
  const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  const all = [...latencies].sort((a, b) => a - b);
  return {
    p50: q(steady, 0.5), p99: q(steady, 0.99), max: steady[steady.length - 1] ?? NaN, all99: q(all, 0.99), startMax, sent: total,
    loopP99: Number(stopped.eventLoopDelayP99Ms), loopMax: Number(stopped.eventLoopDelayMaxMs), agentP50: Number(stopped.latencyP50Ms), agentP99: Number(stopped.latencyP99Ms),
  };
}

/** The issue's goals (issue 10), each a ratio or figure from this run. */
interface Goals { c0?: number; c1?: number; a0?: AgentRun; a1?: AgentRun; relay?: number; live5k?: LiveRun; soak?: SoakFigures }

async function main(): Promise<void> {
  // BENCH_MOSQUITTO='max_inflight_messages 100;...' adds lines to the test broker's config.
  const extra = (process.env.BENCH_MOSQUITTO ?? '').split(';').map((l) => l.trim()).filter(Boolean);
  // A fresh broker for each section: the persistent sessions an earlier section leaves behind (its subscribers
  // gone, their subscriptions kept) would have the broker queue every later reading for each of them.
  let broker = await startMosquitto(t, extra);
  const fresh = async () => {
    await stopChild(broker);
    broker = await startMosquitto(t, extra);
    return broker.url;
  };
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => n.toFixed(1);
  const started = performance.now();
  // The agents (and every other node process started from here) run with the systemd unit's NODE_OPTIONS, as the
  // service does; BENCH_NODE_OPTIONS overrides them ('' for node's defaults).
  const unitOptions = /^Environment=NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(repoRoot, 'systemd', 'edge-agent.service'), 'utf8'))?.[1] ?? '';
  process.env.NODE_OPTIONS = process.env.BENCH_NODE_OPTIONS ?? unitOptions;
  console.log(`edge-agent bench${QUICK ? ' --quick' : ''} — ${N} readings per backlog, demo model (bearing-health), mosquitto on loopback${extra.length ? ` (${extra.join('; ')})` : ''}, drift ${DRIFT.enabled ? 'on' : 'off'}, node ${process.version}, agents' NODE_OPTIONS "${process.env.NODE_OPTIONS}", ${new Date().toISOString()}`);
  // BENCH_SECTIONS=lifecycle,sync runs only those figures; BENCH_SWAPS sets how many swaps the RSS figure takes.
  const sections = (process.env.BENCH_SECTIONS ?? (QUICK ? 'throughput,baselines,live,profile,soak' : 'throughput,baselines,live,profile,soak,sparkplug,lifecycle,sync,drift,metrics,styles,fairness')).split(',');
  const goals: Goals = {};
  if (sections.includes('throughput')) {
    const rows: string[] = [];
    const cpuRows: string[] = [];
    const cpuRow = (name: string, c: CpuPerMessage) =>
      `| ${name} | ${c.agentMain.toFixed(0)} | ${c.agentOther.toFixed(0)} | ${c.broker.toFixed(0)} | ${c.subscriber.toFixed(0)} | ${(c.agentMain + c.agentOther + c.broker + c.subscriber).toFixed(0)} |`;
    const only = process.env.BENCH_QOS ? [Number(process.env.BENCH_QOS) as 0 | 1] : ([0, 1] as const);
    for (const qos of only) {
      if (qos === 1) await fresh();
      const { rate: c, cpu: noop } = await ceiling(broker.url, broker.proc.pid as number, qos);
      cpuRows.push(cpuRow(`no-op subscriber, QoS ${qos} (the subscriber's column is the no-op subscriber)`, noop));
      const a = await agentBacklog(broker.url, broker.proc.pid as number, qos, 'NORMAL');
      if (qos === 0) Object.assign(goals, { c0: c, a0: a });
      else Object.assign(goals, { c1: c, a1: a });
      const row = (name: string, r: AgentRun) =>
        `| QoS ${qos} | ${name} | ${f(r.committedPerSec)} (${Math.round((100 * r.committedPerSec) / c)} %) | ${f(r.perSec)} (${Math.round((100 * r.perSec) / c)} %) | ${ms(r.eventLoopP99Ms)} / ${ms(r.eventLoopMaxMs)} |`;
      rows.push(`| QoS ${qos} | no-op mqtt.js subscriber (ceiling) | | ${f(c)} | |`);
      rows.push(row('agent, synchronous=NORMAL', a));
      if (qos === 1 && !QUICK) rows.push(row('agent, synchronous=FULL', await agentBacklog(broker.url, broker.proc.pid as number, 1, 'FULL')));
      // BENCH_BATCH_ROW=off leaves it out (an agent from before publish.batch refuses the key).
      if (qos === 1 && process.env.BENCH_BATCH_ROW !== 'off') {
        const b = await agentBacklog(broker.url, broker.proc.pid as number, 1, 'NORMAL', true);
        rows.push(row('agent, publish.batch (one result message per batch)', b));
        cpuRows.push(cpuRow('agent, publish.batch', b.cpu));
      }
      cpuRows.push(cpuRow(`agent, QoS ${qos}`, a.cpu));
      // Issue 10's baselines (baselines.ts): the no-op relay (what end to end can reach) and the afternoon version.
      if (qos === 1 && sections.includes('baselines')) {
        const relay = (goals.relay = await relayCeiling(broker.url, N));
        const naive = await naiveBaseline(t, broker.url, N);
        rows.push(`| QoS 1 | no-op relay, republishes each at QoS 1 (end-to-end ceiling) | | ${f(relay)} (${Math.round((100 * relay) / c)} %) | |`);
        rows.push(`| QoS 1 | afternoon baseline: on('message'), session.run and one insert per message, acked before stored | ${f(naive.committedPerSec)} (${Math.round((100 * naive.committedPerSec) / c)} %) | ${f(naive.perSec)} (${Math.round((100 * naive.perSec) / c)} %) | |`);
      }
    }
    console.log('\nBacklog drain, messages/s from the CONNACK (and of the no-op ceiling of the same QoS): until all rows are committed, and until a subscriber has every result\n');
    console.log('| QoS | subscriber | committed msg/s | end to end msg/s | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log('\nCPU per reading during those drains (µs; from /proc, a tick is 10 ms): the two cores are shared by all of these\n');
    console.log('| drain | agent main thread | agent, other threads (model worker, GC helpers) | mosquitto | result subscriber (this bench process) | total |\n|---|---|---|---|---|---|');
    for (const r of cpuRows) console.log(r);
  }
  if (sections.includes('live')) {
    console.log(`\nPublish-to-result latency, paced for ${LIVE_SEC} s (publisher, broker, agent, result subscriber on this machine).`);
    console.log(`p50, p99, max: readings sent after the first ${START_MS / 1000} s (steady); then the p99 of all and the worst of the first second (the agent's code still cold); the agent's own figures are of the whole run.\n`);
    console.log('| QoS | msg/s | p50 (ms) | p99 (ms) | max (ms) | p99 of all (ms) | first second, max (ms) | in the agent p50 / p99 (ms) | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|---|---|---|---|');
    for (const rate of LIVE_RATES) {
      for (const qos of LIVE_QOS) {
        const l = await live(await fresh(), qos, rate);
        if (qos === 0 && rate === 5000) goals.live5k = l;
        console.log(`| ${qos} | ${f(rate)} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} | ${ms(l.all99)} | ${ms(l.startMax)} | ${ms(l.agentP50)} / ${ms(l.agentP99)} | ${ms(l.loopP99)} / ${ms(l.loopMax)} |`);
      }
    }
  }
  if (sections.includes('profile')) printStages(await profileBench(t, await fresh(), N));
  if (sections.includes('soak')) {
    const k = (goals.soak = await soakBench(t, await fresh(), { rate: SOAK_RATE, sec: SOAK_SEC, qos: SOAK_QOS }));
    console.log(`\nSteady load: ${f(k.rate)} QoS ${k.qos} readings/s for ${k.sec} s (/metrics scraped every 5 s, drift on, sync to a local HTTP receiver)\n`);
    console.log('| readings sent | results received | rows synced | agent RSS after the first tenth / at the end / max (MB) | at the end: anonymous / file-backed (MB) | RSS slope over the second half | agent CPU per reading (µs, all threads) |\n|---|---|---|---|---|---|---|');
    console.log(`| ${f(k.sent)} | ${f(k.results)}${k.behind ? ' (fell behind)' : ''} | ${f(k.synced)} | ${k.firstMb.toFixed(0)} / ${k.lastMb.toFixed(0)} / ${k.maxMb.toFixed(0)} | ${k.anonMb.toFixed(0)} / ${k.fileMb.toFixed(0)} | ${k.slopeMbPerMin.toFixed(2)} MB/min | ${k.cpuUsPerReading.toFixed(0)} |`);
    console.log(`\nAt the last scrape (MB): ${Object.entries(k.heap).map(([name, mb]) => `${name} ${mb.toFixed(0)}`).join(', ')}`);
  }
  if (sections.includes('sparkplug')) await sparkplugBench(t, await fresh(), { n: N, rates: LIVE_RATES, sec: LIVE_SEC, drift: DRIFT });
  if (sections.includes('drift')) driftBench();
  if (sections.includes('lifecycle')) await lifecycleBench(t, await fresh(), Number(process.env.BENCH_SWAPS ?? 200));
  if (sections.includes('sync')) await syncBench(t, await fresh());
  if (sections.includes('metrics')) await metricsBench(t, await fresh());
  if (sections.includes('styles')) await stylesBench(t, await fresh());
  if (sections.includes('fairness')) await fairnessBench(t, await fresh());
  printGoals(goals);
  console.log(`\nbench took ${Math.round((performance.now() - started) / 1000)} s`);
}

/** Issue 10's table, from this run: a dash where the section that measures it did not run. */
function printGoals(g: Goals): void {
  const pct = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${Math.round((100 * a) / b)} %` : '—');
  const loop = [g.a0?.eventLoopP99Ms, g.a1?.eventLoopP99Ms].filter((x): x is number => x !== undefined && Number.isFinite(x));
  const s = g.soak;
  console.log('\nGoals (issue 10), from this run\n');
  console.log('| figure | this run | goal |\n|---|---|---|');
  console.log(`| QoS 1 backlog, committed (synchronous=NORMAL), of the no-op QoS 1 ceiling | ${pct(g.a1?.committedPerSec, g.c1)} | ≥ 50 % |`);
  console.log(`| QoS 1 backlog, end to end, of the no-op relay ceiling | ${pct(g.a1?.perSec, g.relay)} | ≥ 60 % |`);
  console.log(`| QoS 0 backlog, committed, of the no-op QoS 0 ceiling | ${pct(g.a0?.committedPerSec, g.c0)} | ≥ 70 % |`);
  const l = g.live5k;
  console.log(`| publish → result p99 at 5,000 msg/s, QoS 0 | ${l === undefined ? '—' : `${l.p99.toFixed(1)} ms after the first second (all readings: ${l.all99.toFixed(1)} ms; first second at most ${l.startMax.toFixed(0)} ms)`} | ≤ 10 ms |`);
  console.log(`| RSS, steady, at ${s ? `${s.rate.toLocaleString("en-US")} msg/s QoS ${s.qos} for ${s.sec} s` : "a paced rate"} (metrics, drift and sync running) | ${s ? `${s.firstMb.toFixed(0)} → ${s.lastMb.toFixed(0)} MB (max ${s.maxMb.toFixed(0)}, ${s.slopeMbPerMin >= 0 ? '+' : ''}${s.slopeMbPerMin.toFixed(2)} MB/min over the second half; ${s.behind ? 'fell behind' : 'kept up'})` : '—'} | ≤ 150 MB, no growth |`);
  console.log(`| event-loop delay p99 during a flat-out drain | ${loop.length ? `${Math.max(...loop).toFixed(1)} ms` : '—'} | ≤ 10 ms |`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
