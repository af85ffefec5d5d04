// Sparkplug B against a real mosquitto: an edge node in its own process (test/helpers/edge-node.ts) and
// the host application (agent/ingest/sparkplug.ts) driven by this test over a real MQTT connection. The
// host's clock is the test's (`now` is passed in), so reorder timeouts and the rebirth interval do not
// depend on how busy the machine is; what is counted is what the edge node printed it received.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';
import { createSparkplugHost, type SparkplugOutcome } from '../../agent/ingest/sparkplug.js';
import { mqttClient, repoRoot, spawnChild, startMosquitto, waitFor, type Teardown } from '../helpers/parts.js';

const codec = sparkplug.get('spBv1.0')!;
const edgeNodePath = join(repoRoot, 'dist', 'test', 'helpers', 'edge-node.js');
interface Line { event: string; id?: number; metrics?: { name: string; value: unknown }[]; qos?: number; retain?: boolean; hasSeq?: boolean; topic?: string }

function edgeNode(t: Teardown, url: string, node: string) {
  const child = spawnChild(t, process.execPath, [edgeNodePath, url, 'plant', node, '--auto-rebirth'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let nextId = 1;
  const lines = (): Line[] => child.stdout().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Line);
  const check = () => {
    if (child.proc.exitCode !== null) throw new Error(`edge node exited ${child.proc.exitCode}: ${child.stderr()}`);
  };
  return {
    lines,
    async until(what: string, pred: (l: Line) => boolean, count = 1) {
      await waitFor(what, () => (check(), lines().filter(pred).length >= count), 30000);
    },
    async send(cmd: Record<string, unknown>) {
      const id = nextId++;
      child.proc.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
      await waitFor(`edge node done with ${JSON.stringify(cmd)}`, () => (check(), lines().some((l) => l.event === 'done' && l.id === id)), 30000);
    },
  };
}

/** The host side: every message on spBv1.0/plant/# taken in arrival order at the test's clock. */
async function host(t: Teardown, url: string, options: { reorderTimeoutMs: number; rebirthMinIntervalMs: number }) {
  const h = createSparkplugHost({ ...options, hostId: 'edge-agent-test', metrics: [{ metric: 'temp', feature: 'temp' }, { metric: 'pressure', feature: 'pressure' }] }, { saved: [] });
  const clock = { now: Date.now() };
  const state = h.stateBirth(clock.now)!;
  const client: MqttClient = await mqttClient(t, url, { clean: true, will: { ...state.will, qos: 1, retain: true } });
  const taken: { topic: string; out: SparkplugOutcome }[] = [];
  const publish = (c: { topic: string; payload: Buffer } | undefined) => c && client.publish(c.topic, c.payload, { qos: 0, retain: false });
  client.on('message', (topic, payload) => {
    const out = h.take(topic, payload, clock.now);
    taken.push({ topic, out });
    publish(out.rebirth);
  });
  await client.subscribeAsync(['spBv1.0/plant/#', state.topic], { qos: 0 });
  await client.publishAsync(state.topic, state.payload, { qos: 1, retain: true });
  const seen = (type: string) => taken.filter((x) => x.topic.split('/')[2] === type);
  return {
    h, clock, client, taken, seen,
    async waitTaken(type: string, n: number) {
      await waitFor(`${n} ${type} at the host`, () => seen(type).length >= n, 30000);
    },
    tick(advanceMs: number) {
      clock.now += advanceMs;
      for (const c of h.tick(clock.now).rebirths) publish(c);
    },
  };
}

const isRebirth = (l: Line) => l.event === 'ncmd' && !!l.metrics?.some((m) => m.name === 'Node Control/Rebirth' && m.value === true);
const isMarker = (n: number) => (l: Line) => l.event === 'ncmd' && !!l.metrics?.some((m) => m.name === 'Test/Marker' && m.value === n);

test('a lost seq makes exactly one rebirth NCMD reach the edge node; the next one waits for the interval', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const hostSide = await host(t, broker.url, { reorderTimeoutMs: 2000, rebirthMinIntervalMs: 60000 });
  const node = edgeNode(t, broker.url, 'gw1');
  await node.until('edge node ready', (l) => l.event === 'ready');
  const marker = async (n: number) => {
    const p = codec.encodePayload({ timestamp: hostSide.clock.now, metrics: [{ name: 'Test/Marker', type: 'Int32', value: n }] });
    hostSide.client.publish('spBv1.0/plant/NCMD/gw1', Buffer.from(p), { qos: 0 });
    await node.until(`marker ${n}`, isMarker(n));
  };

  await node.send({ cmd: 'birth', metrics: [{ name: 'temp', alias: 1, type: 'Double', value: 20 }], devices: { press1: [{ name: 'pressure', alias: 10, type: 'Float', value: 1.5 }] } });
  await node.send({ cmd: 'data', values: [[1, 21]] });
  await node.send({ cmd: 'data', device: 'press1', values: [[10, 1.75]] });
  await hostSide.waitTaken('DDATA', 1);
  assert.deepEqual(hostSide.taken.flatMap((x) => x.out.samples.map((s) => [s.asset, s.feature, s.value])), [
    ['gw1', 'temp', 20], ['gw1.press1', 'pressure', 1.5], ['gw1', 'temp', 21], ['gw1.press1', 'pressure', 1.75],
  ]);

  // seq 3 is skipped: nothing until the reorder timeout, then one rebirth; the node births again.
  await node.send({ cmd: 'data', values: [[1, 22]], skip: 1 });
  await hostSide.waitTaken('NDATA', 2);
  hostSide.tick(1999);
  hostSide.tick(1);
  await node.until('the rebirth NCMD', isRebirth);
  await hostSide.waitTaken('NBIRTH', 2);
  await hostSide.waitTaken('DBIRTH', 2);

  // Two more reasons inside the interval: an undeclared alias, and another lost seq.
  await node.send({ cmd: 'data', values: [[99, 1]] });
  await node.send({ cmd: 'data', values: [[1, 23]], skip: 2 });
  await hostSide.waitTaken('NDATA', 4);
  assert.equal(hostSide.seen('NDATA')[2]!.out.reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  hostSide.tick(2000);
  await marker(1); // NCMDs from one client on one topic arrive in order: a second rebirth would be before it
  const rebirths = node.lines().filter(isRebirth);
  assert.equal(rebirths.length, 1, 'exactly one rebirth within rebirthMinIntervalMs');
  assert.deepEqual([rebirths[0]!.qos, rebirths[0]!.retain, rebirths[0]!.hasSeq, rebirths[0]!.topic], [0, false, false, 'spBv1.0/plant/NCMD/gw1']);
  let s = hostSide.h.status().nodes[0]!;
  assert.deepEqual([s.lost, s.gaps, s.births, s.rebirths, s.rebirthPending], [3, 2, 2, 1, true]);

  // After the interval the remembered request goes out, once.
  hostSide.tick(60000);
  hostSide.tick(1000);
  await node.until('the second rebirth', isRebirth, 2);
  await marker(2);
  assert.equal(node.lines().filter(isRebirth).length, 2);
  await hostSide.waitTaken('NBIRTH', 3);
  s = hostSide.h.status().nodes[0]!;
  assert.deepEqual([s.rebirths, s.rebirthPending, s.online], [2, false, true]);
});

test("an edge node's restart: the broker's Will (old bdSeq) takes it offline, a stale NDEATH changes nothing; the host's Will is its STATE", { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const hostSide = await host(t, broker.url, { reorderTimeoutMs: 2000, rebirthMinIntervalMs: 0 });
  const node = edgeNode(t, broker.url, 'gw2');
  await node.until('edge node ready', (l) => l.event === 'ready');
  await node.send({ cmd: 'birth', metrics: [{ name: 'temp', alias: 1, type: 'Double', value: 20 }], devices: { press1: [{ name: 'pressure', alias: 10, type: 'Float', value: 1 }] } });
  await node.send({ cmd: 'restart' });
  await hostSide.waitTaken('NBIRTH', 2);
  const death = hostSide.seen('NDEATH')[0]!.out;
  assert.deepEqual(death.offline, ['gw2', 'gw2.press1'], 'the Will NDEATH carries the bdSeq of the first birth');
  await node.send({ cmd: 'ndeath', bdSeq: 0 });
  await hostSide.waitTaken('NDEATH', 2);
  assert.match(hostSide.seen('NDEATH')[1]!.out.ignored ?? '', /bdSeq 0, the current birth 1/);
  await node.send({ cmd: 'data', values: [[1, 30]] });
  await hostSide.waitTaken('NDATA', 1);
  assert.deepEqual(hostSide.seen('NDATA')[0]!.out.samples.map((x) => x.value), [30]);
  assert.equal(hostSide.h.status().nodes[0]!.online, true);

  // The host's connection drops without DISCONNECT: the broker publishes its Will, the retained offline STATE.
  const observer = await mqttClient(t, broker.url, { clean: true });
  const states: { online: boolean; timestamp: number }[] = [];
  observer.on('message', (_topic, payload) => states.push(JSON.parse(payload.toString()) as { online: boolean; timestamp: number }));
  await observer.subscribeAsync('spBv1.0/STATE/edge-agent-test', { qos: 1 });
  await waitFor('the retained STATE birth', () => states.length >= 1, 30000);
  assert.deepEqual(states[0], { online: true, timestamp: states[0]!.timestamp });
  hostSide.client.options.reconnectPeriod = 0;
  hostSide.client.stream.destroy();
  await waitFor('the STATE Will', () => states.length >= 2, 30000);
  assert.deepEqual(states[1], { online: false, timestamp: states[0]!.timestamp }, 'Will and birth carry the CONNECT timestamp');
});
