// Bench, where a message's time goes: the agent drains a QoS 1 backlog under node's --cpu-prof (main thread); each
// sample's time goes to the stage of the nearest frame on its stack that belongs to a known place (our files, mqtt.js,
// the socket); gives microseconds per message by stage. The profile is a sampling one (about 1 ms between samples in
// this build of node, set finer below), so figures under ~0.5 µs are noise; profiling slows the agent a little.

import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** Stages by where a frame's code lives: first match wins, so the specific ones come first. */
const STAGES: [string, (url: string, fn: string) => boolean][] = [
  ['inbox insert and delete (SQLite)', (u) => u.includes('/agent/store/inbox.')],
  ['prediction and dead-letter inserts (SQLite)', (u) => u.includes('/agent/store/rows.')],
  ['SQLite commits', (u) => u.includes('/agent/store/writer.') || u.includes('better-sqlite3')],
  ['other store work', (u) => u.includes('/agent/store/')],
  ['result JSON and its publish', (u) => u.includes('/agent/publish.')],
  ['decode and map (JSON → features)', (u) => u.includes('/agent/ingest/features.')],
  ['ingest: dedup digest, grouping, fairness', (u) => u.includes('/agent/ingest/')],
  ['batching, commit and inference hand-off', (u) => u.includes('/agent/infer/')],
  ['metrics, drift, stats', (u) => u.includes('/agent/observe/')],
  ['mqtt.js receive, parse and send', (u) => /node_modules\/(mqtt|mqtt-packet|bl|readable-stream|process-nextick-args|debug|worker-timers)\//.test(u)],
  ['socket and streams (node)', (u) => /^node:(net|stream|internal\/streams|internal\/stream_base_commons|buffer)/.test(u)],
  ['garbage collection', (_u, f) => f === '(garbage collector)'],
  ['idle (waiting for the socket or the model)', (_u, f) => f === '(idle)'],
];

export interface StageFigures { messages: number; totalMs: number; stages: { stage: string; usPerMessage: number; share: number }[]; batches?: number }

/** Attributes a main-thread CPU profile to stages; `messages`: how many the run took. */
export function stagesOf(profile: Profile, messages: number): StageFigures {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, string>();
  const resolve = (id: number): string => {
    const hit = stageOf.get(id);
    if (hit !== undefined) return hit;
    const n = byId.get(id) as ProfileNode;
    const own = STAGES.find(([, match]) => match(n.callFrame.url, n.callFrame.functionName))?.[0];
    const p = parent.get(id);
    const s = own ?? (p === undefined ? 'other (node internals, timers, promises)' : resolve(p));
    stageOf.set(id, s);
    return s;
  };
  // Only the drain: from the first inbox insert to the last prediction insert (start-up and shutdown left out).
  const stageAt = profile.samples.map(resolve);
  const from = stageAt.findIndex((s) => s.startsWith('inbox'));
  let to = stageAt.length - 1;
  while (to > from && !stageAt[to]?.startsWith('prediction')) to--;
  const ms = new Map<string, number>();
  let total = 0;
  for (let i = Math.max(0, from) + 1; i <= to; i++) {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const s = stageAt[i] as string;
    ms.set(s, (ms.get(s) ?? 0) + dt);
  }
  const stages = [...ms].map(([stage, t]) => ({ stage, usPerMessage: (t * 1000) / messages, share: t / total })).sort((a, b) => b.usPerMessage - a.usPerMessage);
  return { messages, totalMs: total, stages };
}

/** The agent drains `n` QoS 1 readings under --cpu-prof; gives its main thread's time by stage. */
export async function profileBench(t: Teardown, url: string, n: number): Promise<StageFigures> {
  const dir = tempDir(t, 'edge-agent-bench-');
  const dbPath = join(dir, 'profile.db');
  const profDir = join(dir, 'prof');
  const clientId = `bench-profile-${Date.now()}`;
  const topic = 'plant/press-1/bearing';
  const config = writeConfig(dir, agentConfig({ url, dbPath, mqtt: { url, clientId }, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }] }, publish: { topic: 'plant/{asset}/predictions/{model}', qos: 1 } }));
  const warm = spawnAgent(t, config);
  await warm.waitForLog('subscribed');
  warm.proc.kill('SIGTERM');
  await warm.exited;
  const pub = await mqttClient(t, url, { clientId: `${clientId}-pub` });
  const payload = readingPayload(1);
  for (let i = 0; i < n; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, n - i) }, () => pub.publishAsync(topic, payload, { qos: 1 })));
  await pub.endAsync();
  const agent = spawnAgent(t, config, {}, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=250']);
  await agent.waitForLog('connected to broker');
  await waitFor(`${n} rows`, () => countRows(dbPath).predictions >= n, 300000, 50);
  // The results' acknowledgements are part of the work: wait until the agent has none pending, then stop it.
  await new Promise((r) => setTimeout(r, 1000));
  agent.proc.kill('SIGTERM');
  await agent.exited;
  // The main thread's profile (thread id 0 in the file name); worker threads write their own.
  const file = readdirSync(profDir).find((f) => /\.0\.\d+\.cpuprofile$/.test(f));
  if (!file) throw new Error(`no main-thread profile in ${profDir}: ${readdirSync(profDir).join(', ')}`);
  const batches = Number(agent.logs.find((l) => l.msg === 'agent stopped')?.batches);
  // BENCH_PROFILE_OUT=path keeps the profile (it opens in Chrome DevTools' Performance panel).
  if (process.env.BENCH_PROFILE_OUT) copyFileSync(join(profDir, file), process.env.BENCH_PROFILE_OUT);
  return { ...stagesOf(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as Profile, n), batches };
}

export function printStages(s: StageFigures): void {
  console.log(`\nWhere a QoS 1 message's time goes on the agent's main thread (CPU profile of a drain of ${s.messages.toLocaleString('en-US')} readings in ${s.batches ?? '?'} batches, µs per message)\n`);
  console.log('| stage | µs per message | share of the main thread |\n|---|---|---|');
  for (const x of s.stages) console.log(`| ${x.stage} | ${x.usPerMessage.toFixed(1)} | ${Math.round(100 * x.share)} % |`);
}
