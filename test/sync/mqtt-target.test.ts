// The MQTT target's answer table (README, "Wire contract (MQTT)"): what each PUBACK and CONNACK reason code
// means for a batch. The e2e test (test/e2e/sync-mqtt.test.ts) covers the codes a real mosquitto sends.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connackOutcome, pubackOutcome } from '../../sync/mqtt-target.js';

test('PUBACK reason codes: success, no subscriber, not authorized, too large, quota, other errors', { timeout: 5000 }, () => {
  assert.equal(pubackOutcome(0x00, false).type, 'ok');
  assert.equal(pubackOutcome(0x10, false).type, 'retry', 'no subscriber: the batch would have gone nowhere');
  assert.equal(pubackOutcome(0x10, true).type, 'ok', 'unless acceptNoSubscribers');
  assert.equal(pubackOutcome(0x87, false).type, 'stop');
  assert.equal(pubackOutcome(0x90, false).type, 'stop', 'topic name invalid: every batch would fail the same way');
  assert.equal(pubackOutcome(0x95, false).type, 'split');
  assert.equal(pubackOutcome(0x97, false).type, 'retry', 'quota exceeded passes');
  assert.deepEqual(pubackOutcome(0x99, false), { type: 'reject', status: 0x99, response: 'PUBACK 0x99' });
  assert.equal(pubackOutcome(0x80, false).type, 'reject');
});

test('CONNACK reason codes: credentials and identity stop the target, a busy or unavailable broker is retried', { timeout: 5000 }, () => {
  for (const rc of [4, 5, 0x86, 0x87, 0x8a, 0x8c]) assert.equal(connackOutcome(rc, 'x').type, 'stop', `CONNACK ${rc}`);
  for (const rc of [3, 0x88, 0x89, 0x9f]) assert.equal(connackOutcome(rc, 'x').type, 'retry', `CONNACK ${rc}`);
});
