// Sync figures for `npm run bench` (BENCH_SECTIONS=sync): a store pre-filled with BENCH_SYNC_ROWS predictions
// (default 1,000,000) is drained by the agent (a child process) to a local HTTP receiver while the agent
// takes a backlog of readings from mosquitto at the same time; the same backlog is taken once more with no
// sync target, for comparison. Figures: rows/s synced, bytes on the wire per row, ingest msg/s with and
// without the drain.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { openStore, storeOptionsSchema, type PredictionRow } from '../../agent/store/store.js';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const ROWS = Number(process.env.BENCH_SYNC_ROWS ?? 1_000_000);
const READINGS = Number(process.env.BENCH_SYNC_READINGS ?? 50_000);
const BATCH = Number(process.env.BENCH_SYNC_BATCH ?? 10_000);
const GZIP = Number(process.env.BENCH_SYNC_GZIP ?? 6);
const NICE = Number(process.env.BENCH_SYNC_NICE ?? 5);

function prefill(path: string): void {
  const store = openStore(storeOptionsSchema.parse({ path }));
  const now = Date.now();
  const row = (i: number): PredictionRow => ({
    receivedAt: now - 86_400_000 + i, asset: `press-${i % 12}`, topic: `plant/press-${i % 12}/bearing`, modelName: 'bearing-health', modelVersion: '1.0.0',
    features: [0.41 + (i % 7) * 0.01, 1.4, 3.02, 3.5, 45.1, 1500 + (i % 100)], outputs: [0.9812, 0.0121, 0.0067], label: 'healthy', score: 0.9812, latencyMs: 0.214, inboxId: null, dedupKey: null,
  });
  for (let i = 0; i < ROWS; i += 10_000) store.commitBatch(Array.from({ length: Math.min(10_000, ROWS - i) }, (_, k) => row(i + k)), [], []);
  store.close();
}

async function receiver(t: Teardown) {
  const seen = { rows: 0, bytes: 0, first: 0, last: 0 };
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.first ||= Date.now();
      seen.rows += Number(req.headers['x-edge-agent-rows'] ?? 0);
      seen.bytes += bytes;
      seen.last = Date.now();
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`, seen };
}

/** The agent takes READINGS from a backlog on the broker, with the prefilled store; gives committed msg/s and the sync figures. */
async function run(t: Teardown, brokerUrl: string, withSync: boolean) {
  const dir = tempDir(t, 'edge-agent-bench-sync-');
  const dbPath = join(dir, 'bench.db');
  prefill(dbPath);
  const sink = await receiver(t);
  const clientId = `bench-sync-${withSync}-${Date.now()}`;
  const config = writeConfig(dir, agentConfig({
    url: brokerUrl, dbPath, mqtt: { url: brokerUrl, clientId }, log: { level: 'info' },
    sync: { schedule: '0 0 1 1 *', runDeadlineMs: 3_600_000, batchRows: BATCH, gzipLevel: GZIP, readerNice: NICE, earlyAtRows: 0, targets: withSync ? [{ type: 'http', name: 'bench', url: sink.url }] : [] },
  }));
  // Subscribe once (persistent session), then build the backlog while the agent is away.
  const first = await mqtt.connectAsync(brokerUrl, { clientId, clean: false });
  await first.subscribeAsync('plant/+/bearing', { qos: 1 });
  await first.endAsync();
  const pub = await mqttClient(t, brokerUrl, { clientId: `bench-sync-pub-${Date.now()}` });
  const payload = readingPayload(1);
  for (let i = 0; i < READINGS; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, READINGS - i) }, () => pub.publishAsync('plant/press-1/bearing', payload, { qos: 1 })));
  const agent = spawnAgent(t, config);
  const connected = await agent.waitForLog('connected to broker', 120_000);
  const start = Date.parse(connected.time as string);
  await waitFor(`${READINGS} readings`, () => countRows(dbPath).predictions >= ROWS + READINGS, 600_000, 20);
  const ingestSec = (Date.now() - start) / 1000;
  if (withSync) await waitFor(`${ROWS + READINGS} rows at the receiver`, () => sink.seen.rows >= ROWS, 1_800_000, 50);
  agent.proc.kill('SIGTERM');
  await agent.exited;
  return { ingestPerSec: READINGS / ingestSec, syncPerSec: sink.seen.rows / ((sink.seen.last - start) / 1000), bytesPerRow: sink.seen.bytes / Math.max(1, sink.seen.rows), synced: sink.seen.rows };
}

export async function syncBench(t: Teardown, brokerUrl: string): Promise<void> {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const without = await run(t, brokerUrl, false);
  const draining = await run(t, brokerUrl, true);
  console.log(`\nUpstream sync: ${f(ROWS)} predictions in the store drained to a local HTTP receiver (gzip level ${GZIP} NDJSON, ${f(BATCH)} rows a batch, reader thread nice +${NICE}) while the agent takes ${f(READINGS)} QoS 1 readings from a backlog\n`);
  console.log('| | ingest committed msg/s | sync rows/s (from the CONNACK to the last batch) | bytes on the wire per row |\n|---|---|---|---|');
  console.log(`| no sync target | ${f(without.ingestPerSec)} | | |`);
  console.log(`| draining to HTTP | ${f(draining.ingestPerSec)} (${Math.round((100 * draining.ingestPerSec) / without.ingestPerSec)} % of it) | ${f(draining.syncPerSec)} | ${draining.bytesPerRow.toFixed(1)} |`);
}
