// The embedded broker's hand-written parts: the packet size guard follows MQTT fixed headers across
// any chunking of the byte stream, and the result-topic pattern covers every topic the agent publishes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPacketSizeGuard, resultTopicPattern } from '../../agent/ingest/broker.js';

/** An MQTT packet as on the wire: type byte, Remaining Length (7 bits a byte, high bit: more), body. */
function frame(type: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    len.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([type, ...len]), body]);
}
const topic = Buffer.from('\x00\x10plant/m1/bearing', 'latin1');
const packet = (payloadBytes: number) => frame(0x30, Buffer.concat([topic, Buffer.alloc(payloadBytes, 1)]));
const pingreq = () => frame(0xc0, Buffer.alloc(0));

function feed(maxBytes: number, stream: Buffer, chunk: number): string | null {
  const guard = createPacketSizeGuard(maxBytes);
  for (let i = 0; i < stream.length; i += chunk) {
    const problem = guard(stream.subarray(i, i + chunk));
    if (problem) return problem;
  }
  return null;
}

test('packet size guard: packets up to the limit pass in any chunking; a larger one is caught from its header', { timeout: 30000 }, () => {
  const ok = Buffer.concat([packet(0), packet(100), packet(200_000), pingreq(), packet(5)]);
  const limit = packet(200_000).length;
  for (const chunk of [1, 2, 3, 7, 1000, ok.length]) assert.equal(feed(limit, ok, chunk), null, `chunks of ${chunk}`);
  const over = Buffer.concat([packet(10), packet(200_001)]);
  for (const chunk of [1, 3, over.length]) assert.equal(feed(limit, over, chunk), 'packet too large', `chunks of ${chunk}`);
  // Only the header of a 250 MB packet is needed to refuse it.
  const header = frame(0x30, Buffer.alloc(0)).subarray(0, 1);
  const big = Buffer.concat([header, Buffer.from([0x80, 0x80, 0x80, 0x7d])]); // type byte + Remaining Length 250 MiB
  assert.equal(feed(1024 * 1024, big, 1), 'packet too large');
  // A Remaining Length longer than 4 bytes is not MQTT.
  assert.equal(feed(Number.MAX_SAFE_INTEGER, Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]), 1), 'malformed remaining length');
});

test('result topic pattern: placeholders match anything, other topics do not', { timeout: 30000 }, () => {
  const p = resultTopicPattern('plant/{asset}/predictions/{model}');
  for (const t of ['plant/m1/predictions/bearing-health', 'plant/a/b/predictions/x', 'plant//predictions/']) assert.ok(p.test(t), t);
  for (const t of ['plant/m1/bearing', 'plant/m1/predictions', 'x/plant/m1/predictions/y', 'plant/m1/predictionsX']) assert.ok(!p.test(t), t);
  assert.ok(resultTopicPattern('results.v1/{asset}+{version}').test('results.v1/m+2'));
  assert.ok(!resultTopicPattern('results.v1/{asset}').test('resultsXv1/m'), 'dots are literal');
});
