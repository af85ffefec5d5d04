// Result publishing against a real mosquitto: topics from each result's model's template, every result sent once,
// when more results wait than publish.maxPendingResults the oldest are skipped, counted, never lost silently;
// publish.batch gives one message per topic holding that topic's results as an array; a result whose topic a
// broker would reject is counted as invalid, never sent.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOutgoing, createSender, publishOptionsSchema, resultTopic, type Outgoing, type Result } from '../../agent/publish.js';
import { mqttClient, startMosquitto, waitFor } from '../helpers/parts.js';

const result = (id: number): Result => ({
  topicTemplate: 'plant/{asset}/predictions/{model}', id, asset: `m${id % 3}`, model: 'bearing-health', version: '1.0.0', receivedAt: 0, sourceTopic: 'plant/m/bearing',
  verdict: { kind: 'classification', label: 'healthy', probabilities: { healthy: 1 } }, latencyMs: 0.1,
});

test('the topic template fills {asset}, {model} and {version}', { timeout: 30000 }, () => {
  assert.equal(resultTopic('plant/{asset}/predictions/{model}/{version}', { asset: 'p1', model: 'm', version: '2' }), 'plant/p1/predictions/m/2');
  assert.equal(publishOptionsSchema.safeParse({ topic: 'a/{machine}' }).success, false);
});

test('every result is delivered once; past maxPendingResults or maxPendingBytes the oldest are skipped and counted; batch mode sends arrays per topic', { timeout: 30000 }, async (t) => {
  const broker = await startMosquitto(t);
  const got: number[] = [];
  const messages: string[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic, payload) => {
    messages.push(topic);
    const body = JSON.parse(payload.toString()) as { id: number } | { id: number }[];
    for (const r of Array.isArray(body) ? body : [body]) got.push(r.id);
  });
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const client = await mqttClient(t, broker.url);
  const cork = () => {
    const s = client.stream as unknown as { cork(): void; uncork(): void };
    s.cork();
    return () => s.uncork();
  };
  const invalid: string[] = [];
  const one = createOutgoing(false, (_r, topic) => void invalid.push(topic));

  const all = createSender(publishOptionsSchema.parse({}), client, cork, (err) => assert.fail(err));
  all.send(one(Array.from({ length: 3000 }, (_, i) => result(i))));
  await all.settled();
  assert.equal(all.counts.sent, 3000);
  await waitFor('3000 results', () => got.length === 3000);
  assert.equal(new Set(got).size, 3000);

  got.length = 0;
  const skipped: Outgoing[] = [];
  const small = createSender(publishOptionsSchema.parse({ maxPendingResults: 100 }), client, cork, (err) => assert.fail(err), (m) => void skipped.push(m));
  for (let i = 0; i < 1000; i++) small.send(one([result(10000 + i)]));
  await small.settled();
  assert.ok(small.counts.skipped > 0, 'some results were skipped');
  assert.equal(small.counts.sent + small.counts.skipped, 1000);
  assert.equal(skipped.length, small.counts.skipped);
  await waitFor('the sent results', () => got.length === small.counts.sent);
  assert.deepEqual([...got, ...skipped.map((m) => m.id)].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => 10000 + i));

  // The byte bound: 1,000 results handed over at once; 256 go to mqtt.js in this turn, the queue keeps at most
  // maxPendingBytes of the rest, the oldest of them are skipped. Each result is sent or skipped, once.
  got.length = 0;
  skipped.length = 0;
  const LIMIT = 16 * 1024;
  const bounded = createSender(publishOptionsSchema.parse({ maxPendingBytes: LIMIT }), client, cork, (err) => assert.fail(err), (m) => void skipped.push(m));
  const batch = one(Array.from({ length: 1000 }, (_, i) => result(30000 + i)));
  bounded.send(batch);
  assert.ok(bounded.queuedBytes > 0 && bounded.queuedBytes <= LIMIT, `${bounded.queuedBytes} bytes queued`);
  const size = Buffer.byteLength(batch[999]!.payload);
  assert.ok(bounded.counts.skipped >= 1000 - 256 - Math.ceil(LIMIT / size), `${bounded.counts.skipped} skipped of results of about ${size} bytes`);
  await bounded.settled();
  assert.equal(bounded.counts.sent + bounded.counts.skipped, 1000);
  await waitFor('the sent results', () => got.length === bounded.counts.sent);
  assert.deepEqual([...got, ...skipped.map((m) => m.id)].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => 30000 + i));
  assert.ok(publishOptionsSchema.safeParse({ maxPendingBytes: 10 }).success === false, 'a bound under 1 kB is refused');

  // Batch mode: 300 results over three assets are three messages, one per topic, 100 results each.
  got.length = 0;
  messages.length = 0;
  const batched = createSender(publishOptionsSchema.parse({}), client, cork, (err) => assert.fail(err));
  batched.send(createOutgoing(true, (_r, topic) => void invalid.push(topic))(Array.from({ length: 300 }, (_, i) => result(20000 + i))));
  await batched.settled();
  assert.equal(batched.counts.sent, 300);
  await waitFor('300 batched results', () => got.length === 300);
  assert.deepEqual(messages.sort(), ['plant/m0/predictions/bearing-health', 'plant/m1/predictions/bearing-health', 'plant/m2/predictions/bearing-health']);
  assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => 20000 + i));

  // A topic a broker would reject is never sent: counted by whoever hands it over (the results thread).
  assert.equal(one([{ ...result(1), asset: 'bad\u0000asset' }]).length, 0);
  assert.equal(invalid.length, 1);
});

test('under a steady load whose queue never empties, the sender lets go of the messages it has sent', { timeout: 60000 }, async (t) => {
  const broker = await startMosquitto(t);
  const client = await mqttClient(t, broker.url);
  const cork = () => {
    const s = client.stream as unknown as { cork(): void; uncork(): void };
    s.cork();
    return () => s.uncork();
  };
  const sender = createSender(publishOptionsSchema.parse({ qos: 0 }), client, cork, (err) => assert.fail(err));
  const one = createOutgoing(false, () => assert.fail('no invalid topic here'));
  // 300 a turn in, at most 256 a turn out: the queue grows and never empties while this runs.
  const TURNS = 200;
  let most = 0;
  for (let turn = 0; turn < TURNS; turn++) {
    sender.send(one(Array.from({ length: 300 }, (_, i) => result(turn * 300 + i))));
    most = Math.max(most, sender.held - 2 * sender.pending);
    // A message handed to mqtt.js is let go of at once (QoS 0: nothing awaits an acknowledgement).
    assert.equal(sender.referenced, sender.pending);
    await new Promise((r) => setImmediate(r));
  }
  // Without letting go, the queue would hold all 60,000 messages sent so far; compacted, about what is pending.
  assert.ok(sender.held <= 2 * sender.pending + 1024, `held ${sender.held} with ${sender.pending} pending`);
  assert.ok(most <= 1024, `at worst ${most} messages held beyond twice the pending`);
  await sender.settled();
  assert.equal(sender.counts.sent, TURNS * 300);
  assert.equal(sender.held, 0);
});

test('while a frozen broker keeps the socket full, at most 256 kB wait in it and the sender waits on one drain listener, not one per message; all arrive after', { timeout: 90000 }, async (t) => {
  const broker = await startMosquitto(t);
  t.after(() => void broker.proc.kill('SIGCONT'));
  const got = new Set<number>();
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (_topic, payload) => void got.add((JSON.parse(payload.toString()) as { id: number }).id));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const client = await mqttClient(t, broker.url);
  const stream = client.stream as unknown as { cork(): void; uncork(): void; writableNeedDrain: boolean; writableLength: number; listenerCount(e: string): number };
  const cork = () => {
    stream.cork();
    return () => stream.uncork();
  };
  const sender = createSender(publishOptionsSchema.parse({ qos: 0 }), client, cork, (err) => assert.fail(err));
  const one = createOutgoing(false, () => assert.fail('no invalid topic here'));
  // About 2.3 kB a result: the loopback socket's buffers (a few MB) fill long before 8,000 of them are written.
  const big = (id: number): Result => ({ ...result(id), sourceTopic: `plant/m/${'x'.repeat(2000)}` });
  const N = 8000;
  broker.proc.kill('SIGSTOP');
  let most = 0;
  let buffered = 0;
  const sample = () => {
    most = Math.max(most, stream.listenerCount('drain'));
    buffered = Math.max(buffered, stream.writableLength);
  };
  for (let turn = 0; turn < N / 200; turn++) {
    sender.send(one(Array.from({ length: 200 }, (_, i) => big(turn * 200 + i))));
    sample();
    await new Promise((r) => setImmediate(r));
    sample();
  }
  await waitFor('the socket to be full', () => stream.writableNeedDrain, 20000);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setImmediate(r));
    sample();
  }
  // The README's bound: 256 kB waiting in the socket, and at most one more message over it.
  assert.ok(buffered <= 256 * 1024 + 4096, `${buffered} bytes waited in the socket`);
  assert.ok(sender.pending > 0, 'results wait behind the full socket');
  // mqtt.js would add one per publish handed over while the socket is full: hundreds to thousands.
  assert.ok(most <= 3, `at most ${most} 'drain' listeners`);
  broker.proc.kill('SIGCONT');
  await sender.settled();
  assert.equal(sender.counts.sent, N);
  await waitFor(`${N} results at the subscriber`, () => got.size === N, 60000);
});
