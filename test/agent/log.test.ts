// Rate-limited logs: one line per key per interval with the count suppressed in between, timed by the
// monotonic clock so that a wall clock stepped back cannot silence them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRateLimitedLog } from '../../agent/log.js';

test('one line per key per interval, with the number suppressed since the last one', { timeout: 5_000 }, () => {
  let now = 0;
  const limited = createRateLimitedLog(10_000, () => now);
  const emitted: [string, number][] = [];
  for (let i = 0; i < 5; i++) limited('a', (s) => emitted.push(['a', s]));
  limited('b', (s) => emitted.push(['b', s]));
  now = 10_000;
  limited('a', (s) => emitted.push(['a', s]));
  assert.deepEqual(emitted, [['a', 0], ['b', 0], ['a', 4]]);
});

test('the default clock is monotonic: the wall clock stepping back an hour does not silence the log', { timeout: 5_000 }, () => {
  const limited = createRateLimitedLog(0);
  const realNow = Date.now;
  let emitted = 0;
  try {
    limited('k', () => emitted++);
    Date.now = () => realNow() - 3_600_000; // NTP or a dead RTC battery steps the clock back
    limited('k', () => emitted++);
  } finally {
    Date.now = realNow;
  }
  assert.equal(emitted, 2);
});
