// Bench section `fairness` (BENCH_SECTIONS=fairness): subscription B's publish-to-result latency while a
// separate process floods subscription A at QoS 0, with ingest.fairness on and off, and A's shed rate.
// The model is made slower than the flood (the test-only worker delay, batches of 32), as a flood outruns
// a line PC's model: BENCH_FAIRNESS_FLOOD messages of A, B a QoS 1 reading every 20 ms from the flood's start.

import { join } from 'node:path';
import { agentConfig, mqttClient, readingPayload, repoRoot, spawnAgent, spawnChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const FLOOD = Number(process.env.BENCH_FAIRNESS_FLOOD ?? 60_000);
const DELAY_MS = process.env.BENCH_FAIRNESS_DELAY_MS ?? '20';
const B_READINGS = 100;
const B_EVERY_MS = 20;

interface Run { p50: number; p99: number; max: number; got: number; shed: number; sent: number; sec: number }

async function once(t: Teardown, url: string, fair: boolean): Promise<Run> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'fair.db');
  const config = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId: `bench-fair-${fair}-${Date.now()}` },
    ingest: { subscriptions: [{ topic: 'plant/+/flood', qos: 0 }, { topic: 'plant/+/bearing', qos: 1 }], fairness: { enabled: fair } },
    inference: { maxBatchRows: 32 },
  }));
  const agent = spawnAgent(t, config, { EDGE_AGENT_TEST_WORKER_DELAY_MS: DELAY_MS });
  await agent.waitForLog('subscribed');
  const httpUrl = String((await agent.waitForLog('http listening')).url);
  const watcher = await mqttClient(t, url, { clientId: `bench-fair-watch-${Date.now()}` });
  const sentAt: number[] = [];
  const latencies: number[] = [];
  watcher.on('message', () => {
    const s = sentAt[latencies.length];
    if (s !== undefined) latencies.push(performance.now() - s);
  });
  await watcher.subscribeAsync('plant/line-b/predictions/#', { qos: 1 });
  const flood = spawnChild(t, process.execPath, [join(repoRoot, 'dist', 'test', 'helpers', 'flood.js'), url, 'plant/line-a/flood', String(FLOOD), '60000'], { killAfterMs: 120_000 });
  let started = false;
  flood.proc.stdout?.once('data', () => (started = true));
  await waitFor('the flood started', () => started, 30_000);
  const t0 = performance.now();
  const pub = await mqttClient(t, url, { clientId: `bench-fair-b-${Date.now()}` });
  for (let i = 0; i < B_READINGS; i++) {
    sentAt.push(performance.now());
    pub.publish('plant/line-b/bearing', readingPayload(i), { qos: 1 });
    await new Promise((r) => setTimeout(r, B_EVERY_MS));
  }
  await waitFor('B results', () => latencies.length >= B_READINGS, 180_000, 20).catch(() => undefined);
  await flood.exited;
  const lines = flood.stdout().trim().split('\n');
  const sent = (JSON.parse(lines[lines.length - 1] as string) as { done?: number }).done ?? NaN;
  const metrics = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(15_000) })).text();
  const shedLine = metrics.split('\n').find((l) => l.startsWith('edge_agent_messages_shed_total{subscription="plant/+/flood"}'));
  const sec = (performance.now() - t0) / 1000;
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const sorted = [...latencies].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), max: sorted[sorted.length - 1] ?? NaN, got: latencies.length, shed: shedLine ? Number(shedLine.split(' ').pop()) : 0, sent, sec };
}

export async function fairnessBench(t: Teardown, url: string): Promise<void> {
  const ms = (n: number) => n.toFixed(0);
  console.log(`\nFairness: B (QoS 1, a reading every ${B_EVERY_MS} ms, ${B_READINGS} readings) during a QoS 0 flood of ${FLOOD.toLocaleString('en-US')} on A from its own process; model held ${DELAY_MS} ms per batch of 32\n`);
  console.log('| ingest.fairness | B results | B p50 (ms) | B p99 (ms) | B max (ms) | A shed | of A sent | A shed/s (flood start to end of run) |\n|---|---|---|---|---|---|---|---|');
  for (const fair of [true, false]) {
    const r = await once(t, url, fair);
    console.log(`| ${fair ? 'on' : 'off'} | ${r.got} of ${B_READINGS} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.shed.toLocaleString('en-US')} | ${Math.round((100 * r.shed) / r.sent)} % | ${Math.round(r.shed / r.sec).toLocaleString('en-US')} |`);
  }
}
