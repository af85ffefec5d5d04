// Metrics figures for `npm run bench` (BENCH_SECTIONS=metrics): what /metrics costs.
//  1. The agent (a child process) drains a backlog of BENCH_METRICS_MESSAGES QoS 1 readings with every observer
//     off (HTTP and drift), and with them on: drift, /metrics fetched every second and /api/status every two (as
//     the status page asks it), without a sync target and with one whose backlog (every row, as it sends nothing
//     meanwhile) each scrape reads; rounds alternate, medians of BENCH_METRICS_ROUNDS.
//  2. The scrape time of /metrics (median and p99 of BENCH_METRICS_SCRAPES scrapes in a row) with a store of
//     BENCH_METRICS_ROWS predictions, all of them unsynced to a target (so the sync backlog is counted in full).

import { join } from 'node:path';
import mqtt from 'mqtt';
import { openStore, storeOptionsSchema, type PredictionRow } from '../../agent/store/store.js';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const MESSAGES = Number(process.env.BENCH_METRICS_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_METRICS_ROUNDS ?? 3);
const ROWS = Number(process.env.BENCH_METRICS_ROWS ?? 1_000_000);
const SCRAPES = Number(process.env.BENCH_METRICS_SCRAPES ?? 100);

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? NaN;
const quantile = (a: number[], q: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(q * a.length))] ?? NaN;

/** `rows` predictions; with `synced`, acknowledged by the target "usb" (its backlog then empty). */
function prefill(path: string, rows: number, synced: boolean): void {
  const store = openStore(storeOptionsSchema.parse({ path }));
  const now = Date.now();
  const row = (i: number): PredictionRow => ({
    receivedAt: now - 86_400_000 + i, asset: `press-${i % 12}`, topic: `plant/press-${i % 12}/bearing`, modelName: 'bearing-health', modelVersion: '1.0.0',
    features: [0.41, 1.4, 3.02, 3.5, 45.1, 1500 + (i % 100)], outputs: [0.9812, 0.0121, 0.0067], label: 'healthy', score: 0.9812, latencyMs: 0.214, inboxId: null, dedupKey: null,
  });
  let last = 0;
  for (let i = 0; i < rows; i += 10_000) last = Math.max(...store.commitBatch(Array.from({ length: Math.min(10_000, rows - i) }, (_, k) => row(i + k)), [], []));
  if (synced) store.sync.ack('usb', 'predictions', last, rows, 0);
  store.close();
}

/** The agent drains MESSAGES readings from a backlog: committed msg/s from its CONNACK; with `metrics`, scraped every second meanwhile. */
async function drain(t: Teardown, brokerUrl: string, metrics: boolean, withTarget: boolean): Promise<{ perSec: number; scrapes: number }> {
  const dir = tempDir(t, 'edge-agent-bench-metrics-');
  const dbPath = join(dir, 'bench.db');
  const clientId = `bench-metrics-${metrics}-${withTarget}-${Date.now()}`;
  const config = writeConfig(dir, agentConfig({
    url: brokerUrl, dbPath, mqtt: { url: brokerUrl, clientId }, log: { level: 'info' },
    http: metrics ? { port: 0 } : { enabled: false },
    drift: { enabled: metrics },
    // A sync target as a line has one, that sends nothing during the drain (its folder is not there: sync stops
    // until the next run, a year away): its backlog is counted at every scrape.
    sync: { schedule: '0 0 1 1 *', earlyAtRows: 0, targets: withTarget ? [{ type: 'dir', name: 'usb', path: join(dir, 'not-mounted') }] : [] },
  }));
  const first = await mqtt.connectAsync(brokerUrl, { clientId, clean: false });
  await first.subscribeAsync('plant/+/bearing', { qos: 1 });
  await first.endAsync();
  const pub = await mqttClient(t, brokerUrl, { clientId: `bench-metrics-pub-${Date.now()}` });
  const payload = readingPayload(1);
  for (let i = 0; i < MESSAGES; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, MESSAGES - i) }, () => pub.publishAsync('plant/press-1/bearing', payload, { qos: 1 })));
  await pub.endAsync();
  const agent = spawnAgent(t, config);
  let scrapes = 0;
  let scraping = true;
  let scraper: Promise<void> = Promise.resolve();
  if (metrics) {
    const url = String((await agent.waitForLog('http listening', 120_000)).url);
    scraper = (async () => {
      while (scraping) {
        const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) }).catch(() => null);
        if (res?.ok) {
          await res.text();
          scrapes++;
        }
        // The status page's question, every other second.
        if (scrapes % 2 === 0) await fetch(`${url}/api/status?historySec=10`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => null);
        for (let i = 0; i < 20 && scraping; i++) await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }
  const connected = await agent.waitForLog('connected to broker', 120_000);
  await waitFor(`${MESSAGES} rows`, () => countRows(dbPath).predictions >= MESSAGES, 600_000, 20);
  const sec = (Date.now() - Date.parse(connected.time as string)) / 1000;
  scraping = false;
  await scraper;
  agent.proc.kill('SIGTERM');
  await agent.exited;
  return { perSec: MESSAGES / sec, scrapes };
}

/** Scrape times with a loaded store: SCRAPES scrapes in a row, each timed from request to the last byte. */
async function scrapeTimes(t: Teardown, brokerUrl: string, synced: boolean): Promise<{ ms: number[]; bytes: number }> {
  const dir = tempDir(t, 'edge-agent-bench-scrape-');
  const dbPath = join(dir, 'bench.db');
  prefill(dbPath, ROWS, synced);
  const config = writeConfig(dir, agentConfig({
    url: brokerUrl, dbPath, mqtt: { url: brokerUrl, clientId: `bench-scrape-${Date.now()}` }, http: { port: 0 },
    sync: { schedule: '0 0 1 1 *', earlyAtRows: 0, targets: [{ type: 'dir', name: 'usb', path: join(dir, 'not-mounted') }] },
  }));
  const agent = spawnAgent(t, config);
  const url = String((await agent.waitForLog('http listening', 120_000)).url);
  await agent.waitForLog('agent ready', 120_000);
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    bytes = (await res.text()).length;
    ms.push(performance.now() - t0);
  }
  agent.proc.kill('SIGTERM');
  await agent.exited;
  return { ms, bytes };
}

export async function metricsBench(t: Teardown, brokerUrl: string): Promise<void> {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const modes = [
    { name: 'observers off (http.enabled, drift.enabled false)', metrics: false, withTarget: false },
    { name: 'drift on, /metrics scraped every second, /api/status every two', metrics: true, withTarget: false },
    { name: 'the same, with a sync target whose whole backlog each scrape reads', metrics: true, withTarget: true },
  ].map((m) => ({ ...m, runs: [] as number[], scrapes: 0 }));
  for (let r = 0; r < ROUNDS; r++) {
    for (const m of modes) {
      const run = await drain(t, brokerUrl, m.metrics, m.withTarget);
      m.runs.push(run.perSec);
      m.scrapes += run.scrapes;
    }
  }
  const base = median((modes[0] as (typeof modes)[number]).runs);
  const unsynced = await scrapeTimes(t, brokerUrl, false);
  const synced = await scrapeTimes(t, brokerUrl, true);
  console.log(`\nMetrics: the agent drains ${f(MESSAGES)} QoS 1 readings from a backlog (committed msg/s from its CONNACK), medians of ${ROUNDS} alternating rounds\n`);
  console.log('| | committed msg/s (median) | runs |\n|---|---|---|');
  for (const m of modes) {
    const change = m.metrics ? ` (${(100 * (median(m.runs) / base - 1)).toFixed(1)} %)` : '';
    console.log(`| ${m.name}${m.metrics ? ` (${m.scrapes} scrapes in all)` : ''} | ${f(median(m.runs))}${change} | ${m.runs.map(f).join(', ')} |`);
  }
  console.log(`\nScrape time of /metrics (${f(unsynced.bytes)} bytes of text) with ${f(ROWS)} predictions in the store, ${SCRAPES} scrapes in a row\n`);
  console.log('| the store\'s predictions | median (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|');
  for (const [name, s] of [['all unsynced (each scrape reads the whole backlog)', unsynced], ['all synced', synced]] as const) {
    console.log(`| ${name} | ${median(s.ms).toFixed(1)} | ${quantile(s.ms, 0.99).toFixed(1)} | ${Math.max(...s.ms).toFixed(1)} |`);
  }
}
