// Bench, the agent's memory under a steady load (issue 10's RSS figure): a paced load (QoS 1 by default) at `rate` readings/s for
// `sec` seconds over 12 assets, results at QoS 1 counted by a subscriber, /metrics scraped every 5 s, drift on and
// upstream sync running (an early run every 20,000 rows to a local HTTP receiver). The agent's RSS is read from
// /proc every second. Gives the RSS after the first tenth of the run, at the end, its maximum and its slope over the
// second half (a least-squares line: growth shows as a slope, not as the noise of one sample), and the main thread's
// heap at the last scrape. BENCH_SOAK_SYNC=off leaves sync out; BENCH_SOAK_NODE_ARGS gives the agent's node flags
// (e.g. --trace-gc, whose lines land in the agent's log).

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { agentConfig, mqttClient, nodeArgsFrom, readingPayload, spawnAgent, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

export interface SoakFigures {
  rate: number; sec: number; qos: 0 | 1; firstMb: number; lastMb: number; maxMb: number; slopeMbPerMin: number; behind: boolean; sent: number; results: number; synced: number;
  heap: Record<string, number>;
  /** The agent's CPU (all threads) per reading sent, in µs; its RSS at the end split into anonymous and file-backed pages (MB). */
  cpuUsPerReading: number; anonMb: number; fileMb: number;
}

/** A process's resident set (VmRSS) in MB. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** User + system CPU in clock ticks (1/100 s on Linux) from the text of a /proc/<pid>[/task/<tid>]/stat file. */
export function statTicks(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** A process's CPU time over all its threads, those that ended included, in µs. */
function cpuUs(pid: number): number {
  return statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) * 10_000;
}

/** A process's resident pages split: anonymous (heaps, malloc) and file-backed (code, mapped libraries), MB. */
function rssSplitMb(pid: number): { anonMb: number; fileMb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN) / 1024;
  return { anonMb: kb('RssAnon'), fileMb: kb('RssFile') + kb('RssShmem') };
}

/** Least-squares slope of y over x. */
function slope(points: readonly [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den ? num / den : 0;
}

export async function soakBench(t: Teardown, url: string, o: { rate: number; sec: number; qos: 0 | 1 }): Promise<SoakFigures> {
  const dir = tempDir(t, 'edge-agent-bench-soak-');
  const dbPath = join(dir, 'soak.db');
  let synced = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      synced += Number(req.headers['x-edge-agent-rows'] ?? 0);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const sink = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  const config = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId: `bench-soak-${Date.now()}` }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: o.qos }] },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos: o.qos }, http: { port: 0 }, drift: { enabled: true },
    sync: { schedule: '*/5 * * * *', earlyAtRows: 20_000, targets: process.env.BENCH_SOAK_SYNC === 'off' ? [] : [{ type: 'http', name: 'soak', url: sink }] },
  }));
  const agent = spawnAgent(t, config, {}, nodeArgsFrom('BENCH_SOAK_NODE_ARGS'));
  const metricsUrl = `${String((await agent.waitForLog('http listening', 60_000)).url).replace(/\/$/, '')}/metrics`;
  await agent.waitForLog('subscribed');
  const pid = agent.proc.pid as number;
  let results = 0;
  const watcher = await mqttClient(t, url, { clientId: `bench-soak-watch-${Date.now()}` });
  watcher.on('message', () => void results++);
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: o.qos });
  const pub = await mqttClient(t, url, { clientId: `bench-soak-pub-${Date.now()}` });
  const payloads = Array.from({ length: 12 }, (_, i) => readingPayload(i));
  const samples: [number, number][] = [];
  // The node memory figures of the last scrape (prom-client's defaults): where RSS goes, if it grows.
  const heap: Record<string, number> = {};
  const scrape = setInterval(() => void fetch(metricsUrl).then((r) => r.text()).then((text) => {
    for (const m of text.matchAll(/^(nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes|edge_agent_results_pending) (\S+)$/gm)) heap[m[1] as string] = Number(m[2]) / 2 ** 20;
  }).catch(() => undefined), 5000);
  const total = o.rate * o.sec;
  const perTick = Math.max(1, Math.round(o.rate / 100));
  let sent = 0;
  const cpu0 = cpuUs(pid);
  const t0 = performance.now();
  let nextSample = 0;
  while (sent < total) {
    const elapsed = performance.now() - t0;
    const due = Math.min(total, Math.floor((elapsed / 1000) * o.rate) + perTick);
    while (sent < due) {
      const asset = sent % 12;
      pub.publish(`plant/press-${asset}/bearing`, payloads[asset] as string, { qos: o.qos });
      sent++;
    }
    if (elapsed >= nextSample) {
      samples.push([elapsed / 1000, rssMb(pid)]);
      nextSample += 1000;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  clearInterval(scrape);
  const behind = await waitFor('the soak results', () => results >= total, 30_000, 50).then(() => false, () => true);
  samples.push([(performance.now() - t0) / 1000, rssMb(pid)]);
  const cpuUsPerReading = (cpuUs(pid) - cpu0) / sent;
  const split = rssSplitMb(pid);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  await pub.endAsync();
  await watcher.endAsync();
  const warm = samples.filter(([x]) => x >= o.sec / 10);
  const second = samples.filter(([x]) => x >= o.sec / 2);
  return {
    rate: o.rate, sec: o.sec, qos: o.qos, firstMb: (warm[0] ?? samples[0] ?? [0, NaN])[1], lastMb: (samples[samples.length - 1] as [number, number])[1],
    maxMb: Math.max(...samples.map(([, y]) => y)), slopeMbPerMin: slope(second) * 60, behind, sent, results, synced, heap,
    cpuUsPerReading, ...split,
  };
}
