// Fairness end to end: a separate process floods subscription A (QoS 0) while the test publishes 50
// sequenced readings on subscription B (QoS 1). With ingest.fairness on, B's readings are all stored and
// their results arrive while A's flood is still being worked off; A's surplus is shed, counted per
// subscription, and shed + stored never exceeds what was sent. EDGE_AGENT_TEST_FAIRNESS=off runs it with
// fairness disabled, to see it fail.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, mqttClient, openDb, readingPayload, repoRoot, spawnAgent, spawnChild, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const FLOOD = 200_000;
const FLOOD_LIMIT_MS = 60_000;
const B_READINGS = 50;
const A_TOPIC = 'plant/line-a/flood';
const B_TOPIC = 'plant/line-b/bearing';
const FAIR = process.env.EDGE_AGENT_TEST_FAIRNESS !== 'off';

/** B's reading `seq` carries it in speed_rpm (1000 + seq), stored with the prediction's features. */
const bPayload = (seq: number) => readingPayload(seq, [0.4, 1.4, 3.0, 3.5, 45, 1000 + seq]);

test('a QoS 0 flood on one subscription while another keeps its readings and its latency', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath,
    ingest: { subscriptions: [{ topic: 'plant/+/flood', qos: 0 }, { topic: 'plant/+/bearing', qos: 1 }], fairness: { enabled: FAIR } },
    inference: { maxBatchRows: 32 },
  }));
  // A slow model (batches of 32 held 20 ms each, two at once: about 3,200 rows/s): the flood outruns it
  // and the batcher's queue fills, as a real flood fills it on a line PC.
  const agent = spawnAgent(t, config, { EDGE_AGENT_TEST_WORKER_DELAY_MS: '20' });
  await agent.waitForLog('subscribed');
  const httpUrl = String((await agent.waitForLog('http listening')).url);

  const db = openDb(dbPath);
  t.after(() => db.close());
  const storedOn = db.prepare('SELECT count(*) AS n FROM predictions WHERE topic = ?');
  const aStored = () => (storedOn.get(A_TOPIC) as { n: number }).n;

  // B's results, counted by a subscriber of our own; at the 50th, how much of A is stored.
  const results = await mqttClient(t, broker.url, { clientId: 'fairness-results' });
  await results.subscribeAsync('plant/line-b/predictions/#', { qos: 1 });
  let bResults = 0;
  let aStoredAtLastB = -1;
  let floodSentAtLastB = -1;
  let floodSent = 0;
  let bStart = 0;
  let bLastMs = 0;
  const bSentAt: number[] = [];
  const bSentWall: number[] = [];
  const bLatency: number[] = [];
  results.on('message', () => {
    bLatency.push(performance.now() - (bSentAt[bLatency.length] ?? 0));
    if (++bResults !== B_READINGS) return;
    aStoredAtLastB = aStored();
    bLastMs = performance.now() - bStart;
    floodSentAtLastB = floodSent;
  });

  // The flood, from its own process: progress lines on its stdout.
  const flood = spawnChild(t, process.execPath, [join(repoRoot, 'dist', 'test', 'helpers', 'flood.js'), broker.url, A_TOPIC, String(FLOOD), String(FLOOD_LIMIT_MS)], { killAfterMs: FLOOD_LIMIT_MS + 30_000 });
  let floodDone = -1;
  flood.proc.stdout?.on('data', () => {
    const lines = flood.stdout().trim().split('\n');
    const last = JSON.parse(lines[lines.length - 1] as string) as { sent?: number; done?: number };
    if (last.sent !== undefined) floodSent = last.sent;
    if (last.done !== undefined) floodSent = floodDone = last.done;
  });
  // B, a line that keeps sending, goes on through the flood from its start: a reading every 20 ms, so it
  // counts as active throughout (fairness can only make room for a subscription it has heard from).
  await waitFor('the flood started', () => floodSent > 0, 60_000);

  const gateway = await mqttClient(t, broker.url, { clientId: 'fairness-gateway' });
  bStart = performance.now();
  for (let seq = 0; seq < B_READINGS; seq++) {
    bSentAt.push(performance.now());
    bSentWall.push(Date.now());
    await gateway.publishAsync(B_TOPIC, bPayload(seq), { qos: 1 });
    await new Promise((r) => setTimeout(r, 20)); // pacing, not synchronisation: readings a few ms apart
  }
  // What A had sent when B's last reading was in the broker: FIFO delivery would put all of it ahead of B.
  const floodSentBeforeLastB = floodSent;
  await waitFor(`${B_READINGS} results on B (got ${bResults})`, () => bResults >= B_READINGS, 90_000);
  t.diagnostic(`B latencies (ms, in order, not asserted): ${bLatency.map((x) => x.toFixed(0)).join(' ')}`);
  t.diagnostic(`B's last result ${bLastMs.toFixed(0)} ms after its first publish (not asserted); A sent before B's last reading ${floodSentBeforeLastB}; at B's last result: A stored ${aStoredAtLastB}, flood sent ${floodSentAtLastB} of ${FLOOD}`);

  // B's last result came while A's flood was still being worked off: B did not wait behind all of A that
  // was sent before it (in arrival order it would have), and more of A is stored afterwards.
  assert.ok(aStoredAtLastB < floodSentBeforeLastB, `A stored ${aStoredAtLastB} when B's last result arrived < A sent before B's last reading ${floodSentBeforeLastB}`);
  await waitFor(`more of A stored after B's last result (${aStoredAtLastB})`, () => aStored() > aStoredAtLastB, 60_000);

  const bRows = db.prepare('SELECT received_at AS r, latency_ms AS l, created_at AS c FROM predictions WHERE topic = ? ORDER BY id').all(B_TOPIC) as { r: number; l: number; c: number }[];
  t.diagnostic(`B publish->receipt ms: ${bRows.map((x, i) => x.r - (bSentWall[i] ?? 0)).join(' ')}`);
  t.diagnostic(`B receipt->stored ms: ${bRows.map((x) => x.c - x.r).join(' ')}`);
  // Every B reading stored, once each.
  const bSeqs = (db.prepare('SELECT features FROM predictions WHERE topic = ?').all(B_TOPIC) as { features: string }[])
    .map((r) => Math.round(((JSON.parse(r.features) as number[])[5] as number) - 1000))
    .sort((a, b) => a - b);
  assert.deepEqual(bSeqs, Array.from({ length: B_READINGS }, (_, i) => i), 'every B reading stored once');

  // Shed, counted per subscription; shed (read first) + stored (read after) never exceeds what was sent.
  const { code } = await flood.exited;
  assert.equal(code, 0, `flood publisher exit (stderr: ${flood.stderr()})`);
  assert.ok(floodDone > 0, 'the flood publisher reported its count');
  const metrics = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(15_000) })).text();
  const shedLine = metrics.split('\n').find((l) => l.startsWith('edge_agent_messages_shed_total{subscription="plant/+/flood"}'));
  const shed = shedLine ? Number(shedLine.split(' ').pop()) : 0;
  const aFinal = aStored();
  t.diagnostic(`flood sent ${floodDone}; A shed ${shed}, A stored ${aFinal}`);
  assert.ok(shed > 0, `A's flood was shed (edge_agent_messages_shed_total for plant/+/flood: ${shed})`);
  assert.ok(shed + aFinal <= floodDone, `shed ${shed} + stored ${aFinal} <= sent ${floodDone}`);
  assert.ok(!metrics.includes('edge_agent_messages_shed_total{subscription="plant/+/bearing"}'), 'B (QoS 1) never shed');
  const status = await (await fetch(`${httpUrl}/api/status`, { signal: AbortSignal.timeout(15_000) })).json() as { rates: { shedBySubscription: Record<string, number> } };
  assert.ok((status.rates.shedBySubscription['plant/+/flood'] ?? 0) >= shed, '/api/status counts the shed messages per subscription');
  const shedLog = agent.logs.find((l) => l.msg === 'QoS 0 messages shed: one subscription holds most of the queue while others are active');
  assert.equal(shedLog?.subscription, 'plant/+/flood', 'the shedding is logged with its subscription');

  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
});
