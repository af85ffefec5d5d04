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

test('every result is delivered once; past maxPendingResults the oldest are skipped and counted; batch mode sends arrays per topic', { timeout: 30000 }, async (t) => {
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
    await new Promise((r) => setImmediate(r));
  }
  // Without letting go, the queue would hold all 60,000 messages sent so far; compacted, about what is pending.
  assert.ok(sender.held <= 2 * sender.pending + 1024, `held ${sender.held} with ${sender.pending} pending`);
  assert.ok(most <= 1024, `at worst ${most} messages held beyond twice the pending`);
  await sender.settled();
  assert.equal(sender.counts.sent, TURNS * 300);
  assert.equal(sender.held, 0);
});
