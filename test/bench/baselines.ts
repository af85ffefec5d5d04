// Bench, baselines for the backlog drain at QoS 1 (issue 10's table): takes the broker and a backlog size;
// gives two figures to set the agent's against, measured in the same run:
//  - the no-op relay ceiling: a subscriber that republishes each message at QoS 1 through the same broker, timed
//    until a watcher has every copy (what "end to end" can reach when the agent does no work at all);
//  - what a plant engineer would write in an afternoon: mqtt.js on('message') (acknowledged before anything is
//    stored), one onnxruntime session.run and one SQLite insert (autocommit, WAL, synchronous=NORMAL) per
//    message, the result published at QoS 1. No inbox, no batching, no worker thread, no guarantee.

import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import * as ort from 'onnxruntime-node';
import { demoModelDir, readingPayload, tempDir, waitFor, type Teardown } from '../helpers/parts.js';

const TOPIC = 'plant/press-1/bearing';
const FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;

/** A persistent-session client subscribes, goes away while `n` readings are published at QoS 1, and gives its id. */
async function backlog(url: string, id: string, n: number): Promise<void> {
  const first = await mqtt.connectAsync(url, { clientId: id, clean: false });
  await first.subscribeAsync(TOPIC, { qos: 1 });
  await first.endAsync();
  const pub = await mqtt.connectAsync(url, { clientId: `${id}-pub` });
  const payload = readingPayload(1);
  for (let i = 0; i < n; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, n - i) }, () => pub.publishAsync(TOPIC, payload, { qos: 1 })));
  await pub.endAsync();
}

/** Counts messages on `topic` until `n` arrived; resolves with the time of the last. */
async function watch(url: string, topic: string, n: number): Promise<{ done: Promise<number>; close: () => Promise<void> }> {
  const w = await mqtt.connectAsync(url, { clientId: `bench-baseline-watch-${Date.now()}` });
  let got = 0;
  const done = new Promise<number>((resolve) => w.on('message', () => void (++got === n && resolve(performance.now()))));
  await w.subscribeAsync(topic, { qos: 1 });
  return { done, close: () => w.endAsync() };
}

/** The no-op relay: each reading republished at QoS 1 to a topic a watcher counts. Gives msg/s end to end. */
export async function relayCeiling(url: string, n: number): Promise<number> {
  const id = `bench-relay-${Date.now()}`;
  await backlog(url, id, n);
  const w = await watch(url, 'bench/relay/#', n);
  const relay = mqtt.connect(url, { clientId: id, clean: false, manualConnect: true });
  relay.on('message', (_topic, payload) => void relay.publish('bench/relay/out', payload, { qos: 1 }));
  const t0 = performance.now();
  relay.connect();
  const end = await w.done;
  await relay.endAsync();
  await w.close();
  return n / ((end - t0) / 1000);
}

/** The afternoon baseline. Gives msg/s until every row is in SQLite, and until a watcher has every result. */
export async function naiveBaseline(t: Teardown, url: string, n: number): Promise<{ committedPerSec: number; perSec: number }> {
  const id = `bench-naive-${Date.now()}`;
  await backlog(url, id, n);
  const db = new Database(join(tempDir(t, 'edge-agent-bench-'), 'naive.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE predictions (id INTEGER PRIMARY KEY, received_at INTEGER, topic TEXT, features TEXT, outputs TEXT)');
  const insert = db.prepare('INSERT INTO predictions (received_at, topic, features, outputs) VALUES (?, ?, ?, ?)');
  const session = await ort.InferenceSession.create(join(demoModelDir, 'model.onnx'));
  const w = await watch(url, 'bench/naive/#', n);
  let stored = 0;
  let committedAt = 0;
  const client = mqtt.connect(url, { clientId: id, clean: false, manualConnect: true });
  client.on('message', (topic, payload) => {
    void (async () => {
      const r = JSON.parse(payload.toString()) as { vibration: Record<string, number>; temperature_c: number; speed_rpm: number };
      const values = FEATURES.map((f) => (f === 'temperature_c' || f === 'speed_rpm' ? r[f] : (r.vibration[f] as number)));
      const out = await session.run({ features: new ort.Tensor('float32', Float32Array.from(values), [1, values.length]) });
      const probabilities = Array.from((out.probabilities as ort.Tensor).data as Float32Array);
      insert.run(Date.now(), topic, JSON.stringify(values), JSON.stringify(probabilities));
      if (++stored === n) committedAt = performance.now();
      client.publish('bench/naive/result', JSON.stringify({ topic, probabilities }), { qos: 1 });
    })();
  });
  const t0 = performance.now();
  client.connect();
  const end = await w.done;
  await waitFor('every naive row', () => committedAt > 0, 60_000, 20);
  await client.endAsync();
  await w.close();
  await session.release();
  db.close();
  return { committedPerSec: n / ((committedAt - t0) / 1000), perSec: n / ((end - t0) / 1000) };
}
