// Payload-style figures for `npm run bench` (BENCH_SECTIONS=styles). On a real mosquitto, QoS 1, per style: a
// backlog drained by a no-op mqtt.js subscriber (the ceiling), then the same backlog by the agent (a child
// process) until every row is committed. Takes a broker; prints messages/s, rows/s and the ratio to the ceiling.
//  windowed: chunks of 3 axes × BENCH_STYLE_CHUNK samples, window 256, hop 64, BENCH_STYLE_WINDOW_ASSETS assets;
//  tags:     6 feature tags then a trigger tag per asset and cycle, BENCH_STYLE_TAG_ASSETS assets (demo model).

import { join } from 'node:path';
import mqtt from 'mqtt';
import { AXES, writeWindowModel } from '../helpers/window-model.js';
import { agentConfig, countRows, mqttClient, spawnAgent, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const WINDOW_MESSAGES = Number(process.env.BENCH_STYLE_WINDOW_MESSAGES ?? 8000);
const WINDOW_ASSETS = Number(process.env.BENCH_STYLE_WINDOW_ASSETS ?? 16);
const CHUNK = Number(process.env.BENCH_STYLE_CHUNK ?? 32);
const LENGTH = 256;
const HOP = 64;
const TAG_MESSAGES = Number(process.env.BENCH_STYLE_TAG_MESSAGES ?? 35000);
const TAG_ASSETS = Number(process.env.BENCH_STYLE_TAG_ASSETS ?? 500);
/** Bounds each drain (ceiling or agent), so a stuck run fails instead of hanging. */
const TIMEOUT_MS = Number(process.env.BENCH_STYLE_TIMEOUT_MS ?? 120_000);
const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;
const TAG_VALUES = [0.4, 1.4, 3.0, 3.5, 45, 1500];

interface Backlog { filter: string; messages: { topic: string; payload: string }[]; rows: number; samples?: number }

/** Per asset `chunks` chunks in time order, assets interleaved; a window every HOP / CHUNK chunks once LENGTH samples are in. */
function windowBacklog(): Backlog {
  const chunks = Math.max(LENGTH / CHUNK, 2 * Math.floor(WINDOW_MESSAGES / WINDOW_ASSETS / 2));
  // A sine of period 8 samples: every chunk of a multiple of 8 holds the same samples, so one text serves all.
  const axis = (c: number) => JSON.stringify(Array.from({ length: CHUNK }, (_, i) => Number((3 * Math.sin((2 * Math.PI * i) / 8 + c)).toFixed(5))));
  const [x, y, z] = AXES.map((_, c) => axis(c));
  const t0 = Date.now() - 3_600_000;
  const messages: Backlog['messages'] = [];
  for (let k = 0; k < chunks; k++) {
    for (let a = 0; a < WINDOW_ASSETS; a++) messages.push({ topic: `line/press-${a}/acc`, payload: `{"ts":${t0 + k * CHUNK},"dtMs":1,"x":${x},"y":${y},"z":${z}}` });
  }
  const perAsset = Math.floor((chunks * CHUNK - LENGTH) / HOP) + 1;
  return { filter: 'line/+/acc', messages, rows: perAsset * WINDOW_ASSETS, samples: messages.length * CHUNK * AXES.length };
}

/** Per cycle and asset: its six tags (JSON objects with a time, newer each cycle), then its trigger. */
function tagBacklog(): Backlog {
  const cycles = Math.max(1, Math.floor(TAG_MESSAGES / (TAG_ASSETS * 7)));
  const t0 = Date.now() - 60_000;
  const messages: Backlog['messages'] = [];
  for (let c = 0; c < cycles; c++) {
    for (let a = 0; a < TAG_ASSETS; a++) {
      FEATURES.forEach((f, i) => messages.push({ topic: `plant/line3/press-${a}/${f}`, payload: `{"value":${(TAG_VALUES[i] as number) + c * 0.001},"ts":${t0 + 2 * c}}` }));
      messages.push({ topic: `plant/line3/press-${a}/cycle_end`, payload: `{"value":1,"ts":${t0 + 2 * c + 1}}` });
    }
  }
  return { filter: 'plant/line3/+/+', messages, rows: cycles * TAG_ASSETS };
}

async function publishBacklog(t: Teardown, url: string, b: Backlog): Promise<void> {
  const pub = await mqttClient(t, url, { clientId: `bench-style-pub-${Math.random().toString(36).slice(2)}` });
  for (let i = 0; i < b.messages.length; i += 1000) {
    await Promise.all(b.messages.slice(i, i + 1000).map((m) => pub.publishAsync(m.topic, m.payload, { qos: 1 })));
  }
  await pub.endAsync();
}

/** A no-op subscriber with a persistent session drains the backlog: messages/s from its connect to the last one. */
async function ceiling(t: Teardown, url: string, b: Backlog): Promise<number> {
  const clientId = `bench-style-noop-${Date.now()}`;
  const first = await mqtt.connectAsync(url, { clientId, clean: false });
  await first.subscribeAsync(b.filter, { qos: 1 });
  await first.endAsync();
  await publishBacklog(t, url, b);
  const n = b.messages.length;
  let got = 0;
  const sub = mqtt.connect(url, { clientId, clean: false, manualConnect: true });
  sub.on('message', () => void got++);
  const t0 = performance.now();
  sub.connect();
  try {
    await waitFor(`the no-op subscriber's ${n} messages`, () => got >= n, TIMEOUT_MS, 5);
  } finally {
    await sub.endAsync(true);
  }
  return n / ((performance.now() - t0) / 1000);
}

interface Drain { messagesPerSec: number; rowsPerSec: number; samplesPerSec: number }

/** The agent drains the backlog: from its CONNACK until every row is committed; then the rows are checked. */
async function agentDrain(t: Teardown, url: string, b: Backlog, style: Record<string, unknown>): Promise<Drain> {
  const dir = tempDir(t, 'edge-agent-bench-style-');
  const dbPath = join(dir, 'bench.db');
  const clientId = `bench-style-agent-${Date.now()}`;
  const config = writeConfig(dir, agentConfig({
    url, dbPath, mqtt: { url, clientId }, ingest: { subscriptions: [{ topic: b.filter, qos: 1 }] }, mapping: undefined,
    publish: { topic: 'plant/{asset}/predictions/{model}', qos: 1 }, log: { level: 'info' }, ...style,
  }));
  // A first start makes the persistent session, so the backlog waits for the agent at the broker.
  const warm = spawnAgent(t, config);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await warm.exited;
  await publishBacklog(t, url, b);
  const agent = spawnAgent(t, config);
  const connected = await agent.waitForLog('connected to broker');
  await waitFor(`${b.rows} rows`, () => {
    if (agent.proc.exitCode !== null) throw new Error(`agent exited with ${agent.proc.exitCode}: ${agent.stderr().slice(-500)}`);
    const c = countRows(dbPath);
    return c.predictions + c.deadLetters >= b.rows;
  }, TIMEOUT_MS, 20);
  const sec = (Date.now() - Date.parse(connected.time as string)) / 1000;
  agent.proc.kill('SIGTERM');
  await agent.exited;
  const rows = countRows(dbPath);
  if (rows.predictions !== b.rows || rows.deadLetters !== 0) throw new Error(`expected ${b.rows} prediction rows and no dead letter, found ${rows.predictions} and ${rows.deadLetters}`);
  return { messagesPerSec: b.messages.length / sec, rowsPerSec: b.rows / sec, samplesPerSec: (b.samples ?? 0) / sec };
}

export async function stylesBench(t: Teardown, url: string): Promise<void> {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  const model = await writeWindowModel(t, LENGTH);
  const win = windowBacklog();
  const tags = tagBacklog();
  const windowStyle = { model: { dir: model.dir }, payload: { style: 'window', window: { signals: [...AXES], hop: HOP, asset: { topicLevel: 1 } } } };
  const tagStyle = { payload: { style: 'tags', tags: { assetLevel: 2 }, join: { trigger: 'cycle_end', maxAgeMs: 600_000 } } };
  const wc = await ceiling(t, url, win);
  const wa = await agentDrain(t, url, win, windowStyle);
  const tc = await ceiling(t, url, tags);
  const ta = await agentDrain(t, url, tags, tagStyle);
  console.log(`\nPayload styles at QoS 1, backlog drain: from the CONNACK until every row is committed; the ceiling is a no-op mqtt.js subscriber on the same messages in this run`);
  console.log(`windowed: ${f(win.messages.length)} messages of 3 axes × ${CHUNK} samples, window ${LENGTH}, hop ${HOP}, ${WINDOW_ASSETS} assets, ${f(win.rows)} windows; tags: ${f(tags.messages.length)} messages, ${TAG_ASSETS} assets × 6 tags + a trigger, ${f(tags.rows)} rows\n`);
  console.log('| style | ceiling msg/s | committed msg/s | rows/s | samples/s | of ceiling |\n|---|---|---|---|---|---|');
  console.log(`| windowed | ${f(wc)} | ${f(wa.messagesPerSec)} | ${f(wa.rowsPerSec)} (windows) | ${f(wa.samplesPerSec)} | ${Math.round((100 * wa.messagesPerSec) / wc)} % |`);
  console.log(`| tags | ${f(tc)} | ${f(ta.messagesPerSec)} | ${f(ta.rowsPerSec)} | | ${Math.round((100 * ta.messagesPerSec) / tc)} % |`);
}
