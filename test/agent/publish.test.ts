// Result publishing against a real mosquitto: topics from each result's model's template, every result sent once,
// and when more results wait than publish.maxPendingResults the oldest are skipped, counted, never lost silently.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPublisher, publishOptionsSchema, resultTopic, type Result } from '../../agent/publish.js';
import { mqttClient, startMosquitto, waitFor } from '../helpers/parts.js';

const result = (id: number): Result => ({
  topicTemplate: 'plant/{asset}/predictions/{model}', id, asset: `m${id % 3}`, model: 'bearing-health', version: '1.0.0', receivedAt: 0, sourceTopic: 'plant/m/bearing',
  verdict: { kind: 'classification', label: 'healthy', probabilities: { healthy: 1 } }, latencyMs: 0.1,
});

test('the topic template fills {asset}, {model} and {version}', { timeout: 30000 }, () => {
  assert.equal(resultTopic('plant/{asset}/predictions/{model}/{version}', { asset: 'p1', model: 'm', version: '2' }), 'plant/p1/predictions/m/2');
  assert.equal(publishOptionsSchema.safeParse({ topic: 'a/{machine}' }).success, false);
});

test('every result is delivered once; past maxPendingResults the oldest are skipped and counted', { timeout: 30000 }, async (t) => {
  const broker = await startMosquitto(t);
  const got: number[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (_topic, payload) => got.push((JSON.parse(payload.toString()) as { id: number }).id));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const client = await mqttClient(t, broker.url);
  const cork = () => {
    const s = client.stream as unknown as { cork(): void; uncork(): void };
    s.cork();
    return () => s.uncork();
  };

  const all = createPublisher(publishOptionsSchema.parse({ topic: 'plant/{asset}/predictions/{model}' }), client, cork, (err) => assert.fail(err));
  for (let i = 0; i < 3000; i++) all.publish(result(i));
  await all.settled();
  assert.equal(all.sent, 3000);
  await waitFor('3000 results', () => got.length === 3000);
  assert.equal(new Set(got).size, 3000);

  got.length = 0;
  const skippedIds: number[] = [];
  const small = createPublisher(publishOptionsSchema.parse({ topic: 'plant/{asset}/predictions/{model}', maxPendingResults: 100 }), client, cork, (err) => assert.fail(err), (r) => skippedIds.push(r.id));
  for (let i = 0; i < 1000; i++) small.publish(result(10000 + i));
  await small.settled();
  assert.ok(small.skipped > 0, 'some results were skipped');
  assert.equal(small.sent + small.skipped, 1000);
  assert.equal(skippedIds.length, small.skipped);
  await waitFor('the sent results', () => got.length === small.sent);
  assert.deepEqual([...got, ...skippedIds].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => 10000 + i));
});
