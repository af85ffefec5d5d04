// Fault suite, hostile payloads: 10,000 seeded ones (corpus.ts, nasty.ts) interleaved with good
// readings, each on a topic of its own so its rows can be found by topic. Every payload must become
// exactly one row (prediction or dead letter), the agent must stay up, and every good reading must get
// its row and its result on the result topic (counted by a subscriber).

import { startMosquitto, mqttClient } from '../helpers/parts.js';
import { hostile } from './corpus.js';
import { reading } from './nasty.js';
import { bounded, Gateway, makeStore, openDb, spawnAgent, waitFor, type Outcome, type Scenario } from './harness.js';

const GOOD_EVERY = 4;
const MARKER = 'plant/zz-marker/bearing';

export const fuzz: Scenario = {
  name: 'hostile payloads (seeded corpus + hand-picked), good readings between',
  budgetSec: 450,
  quick: true,
  run: async (ctx) => {
    const { t, random } = ctx;
    const hostileCount = ctx.quick ? 2000 : 10000;
    const broker = await startMosquitto(t);
    const store = makeStore(t, broker.url, 'fuzz', { mapping: { asset: { field: 'asset' }, features: { rms_g: 'vibration.rms_g', peak_g: 'vibration.peak_g', kurtosis: 'vibration.kurtosis', crest_factor: 'vibration.crest_factor' } } });
    const agent = spawnAgent(t, store.config);
    await agent.waitForLog('subscribed');

    // Results of the good readings, by the reading's topic (the result carries it as sourceTopic).
    const results = new Map<string, number>();
    const watcher = await mqttClient(t, broker.url, { clientId: `fuzz-watch-${process.pid}` });
    watcher.on('message', (_topic, payload) => {
      try {
        const src = (JSON.parse(payload.toString()) as { sourceTopic?: string }).sourceTopic;
        if (src?.startsWith('plant/g')) results.set(src, (results.get(src) ?? 0) + 1);
      } catch {
        /* not a result of ours */
      }
    });
    await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });

    const gateway = await Gateway.connect(t, broker.url, 'fuzz');
    const topics: { topic: string; good: boolean }[] = [];
    for (let i = 0; i < hostileCount; i++) {
      topics.push({ topic: `plant/h${i}/bearing`, good: false });
      if (i % GOOD_EVERY === 0) topics.push({ topic: `plant/g${i / GOOD_EVERY}/bearing`, good: true });
    }
    let h = 0;
    let g = 0;
    const payloads = topics.map((x) => (x.good ? Buffer.from(reading(g++, { asset: '"line-1"' })) : hostile(random, h++)));
    for (let i = 0; i < topics.length; i += 200) {
      await bounded(Promise.all(topics.slice(i, i + 200).map((x, k) => gateway.client.publishAsync(x.topic, payloads[i + k] as Buffer, { qos: 1 }))), 60000, 'publishing the corpus');
    }
    await gateway.client.publishAsync(MARKER, Buffer.from(reading(0, { asset: '"line-1"' })), { qos: 1 });
    const failures: string[] = [];
    const rowsOf = () => rowsByTopic(store.dbPath);
    // The marker comes last on the session: once it is stored, everything was delivered.
    await waitFor('the marker row', () => (rowsOf().all.get(MARKER) ?? 0) > 0, 120000, 200).catch((err: Error) => failures.push(`the marker was not stored: ${err.message}`));
    const goodTopics = topics.filter((x) => x.good).map((x) => x.topic);
    await waitFor('a result for every good reading', () => goodTopics.every((tp) => results.has(tp)), 20000, 100).catch(() => undefined);
    const alive = agent.proc.exitCode === null && agent.proc.signalCode === null;
    if (!alive) failures.push(`the agent died (exit ${agent.proc.exitCode ?? agent.proc.signalCode}): ${agent.stderr().slice(-200)}`);
    const reconnects = agent.logs.filter((l) => l.msg === 'connected to broker').length - 1;
    const dropped = agent.logs.filter((l) => l.msg === 'broker connection lost; reconnecting').length;
    agent.proc.kill('SIGTERM');
    const exit = await bounded(agent.exited, 30000, 'the agent stopping');
    if (alive && exit.code !== 0) failures.push(`the clean stop exited ${exit.code ?? exit.signal}, expected 0`);

    const rows = rowsOf();
    const all = rows.all;
    const outcome: Outcome = { injected: hostileCount, sent: topics.length, storedOnce: 0, lost: 0, doubled: 0, expectedLoss: 0, failures, notes: [] };
    let goodAsDead = 0;
    for (const x of topics) {
      const n = all.get(x.topic) ?? 0;
      if (n === 1) outcome.storedOnce++;
      else if (n === 0) outcome.lost++;
      else outcome.doubled++;
    }
    const dead = deadLetterReasons(store.dbPath);
    for (const tp of goodTopics) if (dead.topics.has(tp)) goodAsDead++;
    if (goodAsDead) failures.push(`${goodAsDead} good readings became dead letters`);
    const noResult = goodTopics.filter((tp) => !results.has(tp)).length;
    if (noResult) failures.push(`${noResult} of ${goodTopics.length} good readings got no result on the result topic`);
    const hostilePredictions = [...rows.predictions.keys()].filter((tp) => tp.startsWith('plant/h')).length;
    outcome.notes.push(
      `${hostileCount} hostile: ${dead.hostile} dead letters (${[...dead.reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r.replace('REJECT_', '')} ${n}`).join(', ')}), ${hostilePredictions} predictions`,
      `${goodTopics.length - noResult} of ${goodTopics.length} good readings got a result`,
      `the agent ${alive ? 'stayed up' : 'died'}; the broker connection dropped ${dropped} times, ${reconnects} reconnects`,
    );
    return outcome;
  },
};

/** Rows per topic: predictions, and predictions and dead letters together. */
function rowsByTopic(dbPath: string): { predictions: Map<string, number>; all: Map<string, number> } {
  const db = openDb(dbPath);
  try {
    const predictions = new Map<string, number>();
    const all = new Map<string, number>();
    for (const table of ['predictions', 'dead_letters']) {
      for (const r of db.prepare(`SELECT topic, count(*) AS n FROM ${table} GROUP BY topic`).all() as { topic: string; n: number }[]) {
        all.set(r.topic, (all.get(r.topic) ?? 0) + r.n);
        if (table === 'predictions') predictions.set(r.topic, r.n);
      }
    }
    return { predictions, all };
  } finally {
    db.close();
  }
}

function deadLetterReasons(dbPath: string): { hostile: number; reasons: Map<string, number>; topics: Set<string> } {
  const db = openDb(dbPath);
  try {
    const rows = db.prepare('SELECT topic, reason_code FROM dead_letters').all() as { topic: string; reason_code: string }[];
    const reasons = new Map<string, number>();
    let hostile = 0;
    for (const r of rows) {
      if (!r.topic.startsWith('plant/h')) continue;
      hostile++;
      reasons.set(r.reason_code, (reasons.get(r.reason_code) ?? 0) + 1);
    }
    return { hostile, reasons, topics: new Set(rows.map((r) => r.topic)) };
  } finally {
    db.close();
  }
}
