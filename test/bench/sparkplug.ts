// Benchmark, Sparkplug B (`npm run bench`, section sparkplug): the figures of the JSON case for the sparkplug
// style. NDATA by alias (six features and a trigger: one row each), encoded before sending and published at
// QoS 0 by a separate process (spb-publisher.ts); the agent decodes through the birth, joins, runs the model,
// stores and publishes. 1. a backlog drained by a no-op subscriber (ceiling) and by the agent; 2. publish-to-result
// latency at paced rates (send times taken in the publisher, epoch-based with sub-ms resolution).

import { join } from 'node:path';
import mqtt from 'mqtt';
import { agentConfig, countRows, mqttClient, repoRoot, spawnAgent, spawnChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'];
const FILTER = 'spBv1.0/bench/#';
const publisherPath = join(repoRoot, 'dist', 'test', 'bench', 'spb-publisher.js');
const epochNow = () => performance.timeOrigin + performance.now();

async function publisher(t: Teardown, args: string[]) {
  const child = spawnChild(t, process.execPath, [publisherPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  return child;
}

async function backlog(t: Teardown, url: string, node: string, n: number): Promise<void> {
  const child = await publisher(t, [url, node, 'backlog', String(n)]);
  const exit = await child.exited;
  if (exit.code !== 0) throw new Error(`spb-publisher exited ${exit.code}: ${child.stderr()}`);
}

function config(t: Teardown, url: string, name: string, drift: { enabled: boolean }) {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, `${name}.db`);
  const path = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId: `bench-${name}-${Date.now()}` },
    ingest: { subscriptions: [{ topic: FILTER, qos: 0 }] }, mapping: undefined,
    payload: { style: 'sparkplug', sparkplug: { metrics: [...FEATURES, 'cycle'].map((f) => ({ metric: f, feature: f })) }, join: { trigger: 'cycle', maxAgeMs: 600_000 } },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos: 0 }, drift,
  }));
  return { dbPath, path };
}

/** A no-op subscriber with a persistent session drains the backlog (mosquitto queues QoS 0 for it: queue_qos0_messages). */
async function ceiling(t: Teardown, url: string, n: number): Promise<number> {
  const clientId = `bench-spb-noop-${Date.now()}`;
  const first = await mqtt.connectAsync(url, { clientId, clean: false });
  await first.subscribeAsync(FILTER, { qos: 0 });
  await first.endAsync();
  await backlog(t, url, 'noop', n);
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const sub = mqtt.connect(url, { clientId, clean: false, manualConnect: true });
  sub.on('message', () => void (++got === n + 1 && done())); // the birth and n NDATA
  const t0 = performance.now();
  sub.connect();
  await finished;
  const sec = (performance.now() - t0) / 1000;
  await sub.endAsync();
  return n / sec;
}

interface AgentRun { perSec: number; committedPerSec: number; eventLoopP99Ms: number; eventLoopMaxMs: number }

async function agentBacklog(t: Teardown, url: string, n: number, drift: { enabled: boolean }): Promise<AgentRun> {
  const { dbPath, path } = config(t, url, 'spb-backlog', drift);
  const warm = spawnAgent(t, path);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await warm.exited;
  await backlog(t, url, 'gw1', n);
  const watcher = await mqttClient(t, url, { clientId: `bench-spb-watch-${Date.now()}` });
  let results = 0;
  let last = 0;
  watcher.on('message', () => {
    results++;
    last = Date.now();
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 0 });
  const agent = spawnAgent(t, path);
  const connected = await agent.waitForLog('connected to broker');
  await waitFor(`${n + 1} rows`, () => countRows(dbPath).predictions >= n + 1, 300_000, 20); // the birth's row too
  const committedAt = Date.now();
  await waitFor(`${n + 1} results`, () => results >= n + 1, 300_000, 20);
  const start = Date.parse(connected.time as string);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped') ?? {};
  const rows = countRows(dbPath);
  if (rows.predictions !== n + 1 || rows.deadLetters !== 0) throw new Error(`expected ${n + 1} prediction rows and no dead letter, found ${rows.predictions} and ${rows.deadLetters}`);
  return { perSec: n / ((last - start) / 1000), committedPerSec: n / ((committedAt - start) / 1000), eventLoopP99Ms: Number(stopped.eventLoopDelayP99Ms), eventLoopMaxMs: Number(stopped.eventLoopDelayMaxMs) };
}

async function live(t: Teardown, url: string, rate: number, sec: number, drift: { enabled: boolean }) {
  const { path } = config(t, url, 'spb-live', drift);
  const agent = spawnAgent(t, path);
  await agent.waitForLog('subscribed');
  const watcher = await mqttClient(t, url, { clientId: `bench-spb-live-watch-${Date.now()}` });
  const receivedAt: number[] = [];
  watcher.on('message', () => void receivedAt.push(epochNow()));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 0 });
  const pub = await publisher(t, [url, 'gw1', 'live', String(rate), String(sec)]);
  await waitFor("the birth's result", () => receivedAt.length >= 1, 30_000, 20);
  pub.proc.stdin!.write('go\n');
  const total = rate * sec;
  const exit = await pub.exited;
  if (exit.code !== 0) throw new Error(`spb-publisher exited ${exit.code}: ${pub.stderr()}`);
  const sentAt = (JSON.parse(pub.stdout().split('\n').find((l) => l.startsWith('{"sentAt"')) ?? '{"sentAt":[]}') as { sentAt: number[] }).sentAt;
  await waitFor('all live results', () => receivedAt.length >= total + 1, 30_000, 20);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const stopped = agent.logs.find((l) => l.msg === 'agent stopped') ?? {};
  const latencies = sentAt.map((s, i) => (receivedAt[i + 1] as number) - s).sort((x, y) => x - y);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1] ?? NaN, loopP99: Number(stopped.eventLoopDelayP99Ms), loopMax: Number(stopped.eventLoopDelayMaxMs), agentP50: Number(stopped.latencyP50Ms), agentP99: Number(stopped.latencyP99Ms) };
}

export async function sparkplugBench(t: Teardown, url: string, o: { n: number; rates: readonly number[]; sec: number; drift: { enabled: boolean } }): Promise<void> {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => n.toFixed(1);
  const c = await ceiling(t, url, o.n);
  const a = await agentBacklog(t, url, o.n, o.drift);
  console.log(`\nSparkplug B: a backlog of ${o.n} NDATA by alias (QoS 0, pre-encoded, from a separate process), messages/s from the CONNACK\n`);
  console.log('| subscriber | committed msg/s | end to end msg/s | of ceiling | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|');
  console.log(`| no-op mqtt.js subscriber (ceiling) | | ${f(c)} | | |`);
  console.log(`| agent, style sparkplug | ${f(a.committedPerSec)} | ${f(a.perSec)} | ${Math.round((100 * a.perSec) / c)} % | ${ms(a.eventLoopP99Ms)} / ${ms(a.eventLoopMaxMs)} |`);
  console.log(`\nSparkplug B publish-to-result latency, QoS 0, paced for ${o.sec} s\n`);
  console.log('| msg/s | p50 (ms) | p99 (ms) | max (ms) | in the agent p50 / p99 (ms) | agent event-loop delay p99 / max (ms) |\n|---|---|---|---|---|---|');
  for (const rate of o.rates) {
    const l = await live(t, url, rate, o.sec, o.drift);
    console.log(`| ${f(rate)} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} | ${ms(l.agentP50)} / ${ms(l.agentP99)} | ${ms(l.loopP99)} / ${ms(l.loopMax)} |`);
  }
}
