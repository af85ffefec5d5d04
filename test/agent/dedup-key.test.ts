// The dedup key's digest is what older versions stored in the inbox and the prediction rows: a redelivery of a
// message taken before an upgrade must still be recognised. The one-shot digest over a reused scratch buffer (and
// the streaming one for large payloads) gives exactly SHA-1 of topic, a zero byte and payload, for any topic and size.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { digestOf } from '../../agent/ingest/ingest.js';

const reference = (topic: string, payload: Buffer) => createHash('sha1').update(topic).update('\0').update(payload).digest('base64');

test('the dedup digest is SHA-1 of topic, NUL and payload, for small, multi-byte, growing and large inputs', { timeout: 30000 }, () => {
  const cases: [string, Buffer][] = [
    ['plant/press-1/bearing', Buffer.from('{"v":1}')],
    ['plant/Pressé-7/ünit/温度', Buffer.from('{"v":"ä"}')],
    ['a', Buffer.alloc(0)],
    ['plant/x', Buffer.alloc(10_000, 7)], // grows the scratch buffer
    ['plant/y', Buffer.alloc(3 * 1024 * 1024, 1)], // past the scratch limit: streamed
    ['plant/press-1/bearing', Buffer.from('{"v":2}')], // small again, after both
  ];
  for (const [topic, payload] of cases) assert.equal(digestOf(topic, payload), reference(topic, payload), `${topic} (${payload.length} bytes)`);
  // A shorter message after a longer one: nothing of the longer one's bytes leaks into the digest.
  assert.equal(digestOf('t', Buffer.from('1')), reference('t', Buffer.from('1')));
});
