// End to end on a real mosquitto: JSON readings in (from mqtt.js and from mosquitto_pub), one
// prediction row and one published result per reading, and the golden inputs give the manifest's outputs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { readManifest } from '../../models/manifest.js';
import {
  agentConfig, countRows, demoModelDir, mqttClient, openDb, readingPayload, spawnAgent, spawnChild, startMosquitto, tempDir, waitFor, writeConfig,
  teardown,
} from '../helpers/parts.js';

test('N readings give N prediction rows and N results; golden inputs give the manifest outputs', { timeout: 90000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath })));
  await agent.waitForLog('subscribed');

  const results: { topic: string; body: Record<string, unknown> }[] = [];
  let marker = false;
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic, payload) => {
    if (topic === 'test/marker') marker = true;
    else results.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> });
  });
  await watcher.subscribeAsync(['plant/+/predictions/#', 'test/marker'], { qos: 1 });

  const manifest = readManifest(demoModelDir);
  const gateway = await mqttClient(t, broker.url);
  for (const [i, g] of manifest.golden.entries()) {
    await gateway.publishAsync(`plant/golden-${i}/bearing`, readingPayload(i, g.input), { qos: 1 });
  }
  const N = 400;
  for (let i = 0; i < N; i++) await gateway.publishAsync(`plant/press-${i % 4}/bearing`, readingPayload(i), { qos: 1 });

  // mosquitto_pub, a real third-party client: one message per stdin line.
  const M = 50;
  const pub = spawnChild(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 'plant/line-pc-7/bearing', '-q', '1', '-l'], { stdio: ['pipe', 'pipe', 'pipe'] });
  pub.proc.stdin?.end(Array.from({ length: M }, (_, i) => readingPayload(1000 + i)).join('\n') + '\n');
  assert.equal((await pub.exited).code, 0, `mosquitto_pub exits 0 (${pub.stderr()})`);

  const total = manifest.golden.length + N + M;
  await waitFor(`${total} rows`, () => countRows(dbPath).predictions >= total);
  // A clean stop waits for the broker's PUBACK of every result, so the broker holds them all by now.
  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
  // mosquitto delivers one client's queue in order: the watcher's own marker, published after the
  // agent stopped, arrives after every result. Then the count is exact, not "at least".
  await watcher.publishAsync('test/marker', 'end', { qos: 1 });
  await waitFor('the marker', () => marker);
  assert.equal(results.length, total, 'one result per reading, none twice');

  for (const [i, g] of manifest.golden.entries()) {
    const r = results.find((x) => x.topic === `plant/golden-${i}/predictions/bearing-health`);
    assert.ok(r, `result for golden vector ${i}`);
    const probs = r.body.probabilities as Record<string, number>;
    const labels = manifest.output.kind === 'classification' ? manifest.output.labels : [];
    labels.forEach((label, k) => assert.ok(Math.abs((probs[label] ?? NaN) - (g.output[k] ?? NaN)) <= g.tolerance, `golden ${i} ${label}: ${probs[label]} vs ${g.output[k]}`));
    const best = labels[g.output.indexOf(Math.max(...g.output))];
    assert.equal(r.body.label, best);
    assert.equal(r.body.asset, `golden-${i}`);
    assert.equal(r.body.model, 'bearing-health');
    assert.equal(r.body.version, manifest.version);
  }
  assert.equal(results.filter((r) => r.topic === 'plant/line-pc-7/predictions/bearing-health').length, M, 'every mosquitto_pub reading has its result');

  assert.deepEqual(countRows(dbPath), { predictions: total, deadLetters: 0, inbox: 0 });

  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const row = db.prepare("SELECT * FROM predictions WHERE asset = 'golden-0'").get() as Record<string, unknown>;
  assert.equal(row.topic, 'plant/golden-0/bearing');
  assert.equal(row.model_name, 'bearing-health');
  assert.equal(row.model_version, manifest.version);
  assert.deepEqual((JSON.parse(row.features as string) as number[]).map((v) => Math.fround(v)), manifest.golden[0]!.input.map((v) => Math.fround(v)));
  assert.equal((JSON.parse(row.outputs as string) as number[]).length, 3);
  assert.equal(typeof row.latency_ms, 'number');
  assert.ok((row.received_at as number) > Date.now() - 600_000);
  // The result a PLC sees carries the row id it was stored under.
  const published = results.find((x) => x.topic === 'plant/golden-0/predictions/bearing-health');
  assert.equal(published?.body.id, row.id);
  // Every row has exactly one result, and every result names a row.
  const rowIds = (db.prepare('SELECT id FROM predictions ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  const resultIds = results.map((r) => r.body.id as number).sort((a, b) => a - b);
  assert.deepEqual(resultIds, rowIds);
});
