// The HTTP target's reading of an answer (the README's wire contract, row by row) and of Retry-After.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outcomeOf, retryAfterMs } from '../../sync/http.js';

test('each status means what the wire contract says', { timeout: 10000 }, () => {
  const type = (status: number) => outcomeOf(status, 'x', undefined).type;
  for (const s of [200, 201, 202, 204, 299]) assert.equal(type(s), 'ok', String(s));
  for (const s of [408, 425, 429, 500, 502, 503, 504, 599]) assert.equal(type(s), 'retry', String(s));
  assert.equal(type(413), 'split');
  for (const s of [401, 403, 404, 405, 407]) assert.equal(type(s), 'stop', String(s));
  for (const s of [400, 409, 410, 415, 422, 451]) assert.equal(type(s), 'reject', String(s));
  assert.deepEqual(outcomeOf(400, 'row 3: bad', undefined), { type: 'reject', status: 400, response: 'row 3: bad' });
});

test('Retry-After in seconds or as a date; unreadable or absent is null; capped at an hour', { timeout: 10000 }, () => {
  const now = Date.parse('2026-11-26T10:00:00Z');
  assert.equal(retryAfterMs('7', now), 7000);
  assert.equal(retryAfterMs('Thu, 26 Nov 2026 10:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Thu, 26 Nov 2026 09:00:00 GMT', now), 0, 'a date in the past: now');
  assert.equal(retryAfterMs('999999', now), 3_600_000);
  assert.equal(retryAfterMs('soon', now), null);
  assert.equal(retryAfterMs(undefined, now), null);
  const outcome = outcomeOf(503, '', '2', now);
  assert.deepEqual(outcome, { type: 'retry', reason: 'HTTP 503', retryAfterMs: 2000 });
});
