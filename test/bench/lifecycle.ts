// Benchmark of the model lifecycle (part of `npm run bench`): prints figures, asserts nothing.
//  1. publish-to-result latency of a live QoS 1 stream, steady and while versions are swapped in;
//  2. the agent's RSS before and after 200 swaps in a row (each a new worker, loaded and warmed);
//  3. the time from `model push` to every agent of a group of three having committed the release.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callControl, controlSocketPath } from '../../agent/control.js';
import { pushRelease } from '../../sync/push-command.js';
import { agentConfig, demoModelDir, mqttClient, readingPayload, spawnAgent, tempDir, type Teardown } from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';
import { rssMb } from './soak.js';


export async function lifecycleBench(t: Teardown, url: string, swaps: number): Promise<void> {
  const dir = tempDir(t, 'edge-agent-bench-life-');
  const { key } = await keygen(dir);
  const release = await signedRelease(dir, '1.1.0', key);
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({
    url, dbPath, mqtt: { url, clientId: `bench-life-${Date.now()}` },
    model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 0 } },
  });
  const configPath = join(dir, 'agent.yaml');
  writeFileSync(configPath, JSON.stringify(config));
  const agent = spawnAgent(t, configPath);
  await agent.waitForLog('agent ready', 60_000);
  const sock = controlSocketPath(dbPath);
  await callControl(sock, 'model.install', { path: release }, 60_000);

  // 1. Latency at 500 msg/s QoS 1: steady for 4 s, then 10 swaps back and forth while it goes on.
  const watcher = await mqttClient(t, url, { clientId: `bench-life-watch-${Date.now()}` });
  const sentAt: number[] = [];
  const latency: { at: number; ms: number }[] = [];
  watcher.on('message', () => {
    const s = sentAt[latency.length];
    if (s !== undefined) latency.push({ at: s, ms: performance.now() - s });
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const pub = await mqttClient(t, url, { clientId: `bench-life-pub-${Date.now()}` });
  const payload = readingPayload(1);
  let streaming = true;
  const stream = (async () => {
    const t0 = performance.now();
    while (streaming) {
      const due = Math.floor(((performance.now() - t0) / 1000) * 500) + 5;
      while (sentAt.length < due) {
        sentAt.push(performance.now());
        pub.publish('plant/press-1/bearing', payload, { qos: 1 });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await new Promise((r) => setTimeout(r, 4000));
  const windows: [number, number][] = [];
  for (let i = 0; i < 10; i++) {
    const s = performance.now();
    await callControl(sock, 'model.rollback', { reason: 'bench' }, 60_000);
    windows.push([s, performance.now() + 200]);
    await new Promise((r) => setTimeout(r, 300));
  }
  await new Promise((r) => setTimeout(r, 1000));
  streaming = false;
  await stream;
  await new Promise((r) => setTimeout(r, 1000));
  const inSwap = (at: number) => windows.some(([a, b]) => at >= a && at <= b);
  const p = (xs: number[], q: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
  const steady = latency.filter((l) => l.at < (windows[0]?.[0] ?? 0)).map((l) => l.ms);
  const during = latency.filter((l) => inSwap(l.at)).map((l) => l.ms);

  // 2. RSS over 200 swaps (10 already done above).
  const pid = agent.proc.pid as number;
  const rss0 = Math.round(rssMb(pid));
  const t0 = performance.now();
  for (let i = 0; i < swaps; i++) await callControl(sock, 'model.rollback', { reason: 'bench' }, 60_000);
  const perSwap = (performance.now() - t0) / swaps;
  await new Promise((r) => setTimeout(r, 1000));
  const rss1 = Math.round(rssMb(pid));
  agent.proc.kill('SIGTERM');
  await agent.exited;

  // 3. Push to a group of three agents, until each has committed.
  const agents = ['a', 'b', 'c'].map((n) => {
    const cfg = agentConfig({
      url, dbPath: join(dir, n, 'agent.db'), mqtt: { url, clientId: `bench-push-${n}-${Date.now()}` },
      model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 0 } }, releases: { groups: ['bench-line'] },
    });
    const p2 = join(dir, `${n}.yaml`);
    writeFileSync(p2, JSON.stringify(cfg));
    return spawnAgent(t, p2);
  });
  await Promise.all(agents.map((a) => a.waitForLog('agent ready', 60_000)));
  const settleMs = 1000; // for the agents' retained statuses to reach the command
  const push0 = performance.now();
  await pushRelease({ dir: release, broker: url, target: 'group:bench-line', timeoutMs: 120_000, topicPrefix: 'edge-agent', settleMs }, () => undefined);
  const pushMs = performance.now() - push0 - settleMs;
  for (const a of agents) {
    a.proc.kill('SIGTERM');
    await a.exited;
  }

  console.log('\nModel lifecycle (demo model; swaps through the control socket, as `edge-agent model install|rollback` does)\n');
  console.log('| figure | value |\n|---|---|');
  console.log(`| publish-to-result p99 at 500 msg/s QoS 1, steady | ${p(steady, 0.99).toFixed(1)} ms (${steady.length} readings) |`);
  console.log(`| the same, readings sent during one of 10 swaps (and 200 ms after) | ${p(during, 0.99).toFixed(1)} ms (${during.length} readings), max ${Math.max(...during).toFixed(1)} ms |`);
  console.log(`| RSS before / after ${swaps} more swaps | ${rss0} MB / ${rss1} MB (${rss1 - rss0 >= 0 ? '+' : ''}${rss1 - rss0} MB); ${perSwap.toFixed(0)} ms per swap |`);
  console.log(`| \`model push\` to a group of 3 agents until all committed (inline, no probation) | ${(pushMs / 1000).toFixed(1)} s |`);
}
