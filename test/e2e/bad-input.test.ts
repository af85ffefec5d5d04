// Bad input on a real broker: every broken payload becomes a dead-letter row with its reason and
// raw payload, and the agent keeps serving the good readings around them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import {
  agentConfig, countRows, mqttClient, openDb, readingPayload, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
  teardown,
} from '../helpers/parts.js';

const good = readingPayload(1);
const reading = JSON.parse(good) as { vibration: Record<string, unknown>; temperature_c: unknown; speed_rpm: unknown };

const bad: { name: string; payload: string | Buffer; reason: string; detail: RegExp }[] = [
  { name: 'malformed JSON', payload: '{"vibration": {"rms_g": 0.4,', reason: 'REJECT_MALFORMED_JSON', detail: /JSON/ },
  { name: 'NaN literal', payload: good.replace('"temperature_c":45', '"temperature_c":NaN'), reason: 'REJECT_MALFORMED_JSON', detail: /JSON/ },
  { name: 'not an object', payload: '[1,2,3]', reason: 'REJECT_NOT_OBJECT', detail: /array/ },
  { name: 'not UTF-8', payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), reason: 'REJECT_NOT_UTF8', detail: /UTF-8/ },
  { name: 'missing field', payload: JSON.stringify({ ...reading, temperature_c: undefined }), reason: 'REJECT_MISSING_FIELD', detail: /temperature_c/ },
  { name: 'missing nested field', payload: JSON.stringify({ ...reading, vibration: { rms_g: 0.4 } }), reason: 'REJECT_MISSING_FIELD', detail: /vibration\.peak_g/ },
  { name: 'string instead of number', payload: JSON.stringify({ ...reading, speed_rpm: '1500' }), reason: 'REJECT_WRONG_TYPE', detail: /speed_rpm.*string/ },
  { name: '"NaN" as text', payload: JSON.stringify({ ...reading, temperature_c: 'NaN' }), reason: 'REJECT_WRONG_TYPE', detail: /temperature_c/ },
  { name: 'null', payload: JSON.stringify({ ...reading, temperature_c: null }), reason: 'REJECT_WRONG_TYPE', detail: /null/ },
  { name: 'infinite', payload: good.replace('"speed_rpm":1500', '"speed_rpm":1e999'), reason: 'REJECT_NOT_FINITE', detail: /Infinity/ },
  { name: 'out of range', payload: JSON.stringify({ ...reading, temperature_c: 900 }), reason: 'REJECT_OUT_OF_RANGE', detail: /900.*\[-40, 200\]/ },
  { name: 'oversized', payload: JSON.stringify({ ...reading, pad: 'x'.repeat(5000) }), reason: 'REJECT_PAYLOAD_TOO_LARGE', detail: /limit is 4096/ },
];

test('bad payloads become dead letters with their reason; good readings around them are served', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({ url: broker.url, dbPath, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }, { topic: 'plant/+/fast', qos: 0 }], maxPayloadBytes: 4096 } });
  const agent = spawnAgent(t, writeConfig(dir, config));
  await agent.waitForLog('subscribed');

  const results: string[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic) => results.push(topic));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });

  const gateway = await mqttClient(t, broker.url);
  for (const [i, b] of bad.entries()) {
    await gateway.publishAsync(`plant/good-${i}/bearing`, good, { qos: 1 });
    await gateway.publishAsync(`plant/bad-${i}/bearing`, b.payload, { qos: 1 });
  }
  // QoS 0 readings take the same path without the inbox.
  await gateway.publishAsync('plant/fast-good/fast', good, { qos: 0 });
  await gateway.publishAsync('plant/fast-bad/fast', '{oops', { qos: 0 });
  const n = bad.length;
  await waitFor('all rows', () => {
    const c = countRows(dbPath);
    return c.predictions >= n + 1 && c.deadLetters >= n + 1;
  });
  await waitFor('results for the good readings', () => results.length >= n + 1);

  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  assert.deepEqual(countRows(dbPath), { predictions: n + 1, deadLetters: n + 1, inbox: 0 });

  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const rows = db.prepare('SELECT topic, reason_code, reason, payload FROM dead_letters').all() as { topic: string; reason_code: string; reason: string; payload: Buffer }[];
  for (const [i, b] of bad.entries()) {
    const row = rows.find((r) => r.topic === `plant/bad-${i}/bearing`);
    assert.ok(row, `dead letter for ${b.name}`);
    assert.equal(row.reason_code, b.reason, b.name);
    assert.match(row.reason, b.detail, b.name);
    const raw = Buffer.isBuffer(b.payload) ? b.payload : Buffer.from(b.payload);
    if (b.reason === 'REJECT_PAYLOAD_TOO_LARGE') assert.deepEqual(row.payload, raw.subarray(0, 4096), 'oversized: its first maxPayloadBytes are kept');
    else assert.deepEqual(row.payload, raw, `${b.name}: raw payload kept`);
  }
  assert.equal(rows.find((r) => r.topic === 'plant/fast-bad/fast')?.reason_code, 'REJECT_MALFORMED_JSON');
  const assets = (db.prepare('SELECT asset FROM predictions ORDER BY asset').all() as { asset: string }[]).map((r) => r.asset);
  assert.deepEqual(assets, [...bad.map((_, i) => `good-${i}`), 'fast-good'].sort());
  // The agent logged the rejections (rate-limited, one line per reason at most every 10 s).
  const logged = new Set(agent.logs.filter((l) => l.msg === 'message rejected').map((l) => l.reason));
  for (const b of bad) assert.ok(logged.has(b.reason), `logged ${b.reason}`);
});
