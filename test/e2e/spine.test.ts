// End to end on a real mosquitto: JSON readings in (from mqtt.js and from mosquitto_pub), one
// prediction row and one published result per reading, and the golden inputs give the manifest's outputs.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { join } from 'node:path';
import { readManifest } from '../../models/manifest.js';
import {
  agentConfig, countRows, demoModelDir, mqttClient, openDb, readingPayload, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
  teardown,
} from '../helpers/parts.js';

test('N readings give N prediction rows and N results; golden inputs give the manifest outputs', async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath })));
  await agent.waitForLog('subscribed');

  const results: { topic: string; body: Record<string, unknown> }[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic, payload) => results.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });

  const manifest = readManifest(demoModelDir);
  const gateway = await mqttClient(t, broker.url);
  for (const [i, g] of manifest.golden.entries()) {
    await gateway.publishAsync(`plant/golden-${i}/bearing`, readingPayload(i, g.input), { qos: 1 });
  }
  const N = 400;
  for (let i = 0; i < N; i++) await gateway.publishAsync(`plant/press-${i % 4}/bearing`, readingPayload(i), { qos: 1 });

  // mosquitto_pub, a real third-party client: one message per stdin line.
  const M = 50;
  const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 'plant/line-pc-7/bearing', '-q', '1', '-l']);
  pub.stdin.end(Array.from({ length: M }, (_, i) => readingPayload(1000 + i)).join('\n') + '\n');
  const pubCode = await new Promise<number | null>((resolve) => pub.once('exit', resolve));
  assert.equal(pubCode, 0, 'mosquitto_pub exits 0');

  const total = manifest.golden.length + N + M;
  await waitFor(`${total} results`, () => results.length >= total);

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

  const stop = agent.exited;
  agent.proc.kill('SIGTERM');
  assert.deepEqual(await stop, { code: 0, signal: null });
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
});
