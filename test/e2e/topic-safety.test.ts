// Strings that go into a result topic: an asset id a broker would reject (control characters,
// noncharacters, broken UTF-8, / + #) becomes a dead letter and never reaches the broker, so the
// session is never poisoned and every good reading keeps getting its result; a model whose version
// cannot stand in the configured topic is refused at start.

import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, demoModelDir, mqttClient, openDb, runCli, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const BAD_ASSETS = [
  '\u0001', 'press\t7', 'press\u007f', 'press\u0085', 'press\uffff', 'press\ufdd0', 'press\ud83f\udfff',
  'press\ud800', 'press\udc00', 'a+b', 'a#', 'line/7', '', 'x'.repeat(129),
];

function reading(asset: string, seq: number): string {
  return JSON.stringify({ machine: asset, seq, vibration: { rms_g: 0.4, peak_g: 1.4, kurtosis: 3.0, crest_factor: 3.5 }, temperature_c: 45, speed_rpm: 1500 });
}

test('asset ids a broker would reject become dead letters; every good reading still gets its result', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({ url: broker.url, dbPath });
  (config.mapping as Record<string, unknown>).asset = { field: 'machine' };
  const agent = spawnAgent(t, writeConfig(dir, config));
  await agent.waitForLog('subscribed');

  const results: string[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic) => results.push(topic));
  await watcher.subscribeAsync(['plant/#', 'marker'], { qos: 1 });
  const gateway = await mqttClient(t, broker.url);
  let good = 0;
  for (const [i, bad] of BAD_ASSETS.entries()) {
    await gateway.publishAsync('plant/gw/bearing', reading(bad, i), { qos: 1 });
    await gateway.publishAsync('plant/gw/bearing', reading(`press-${i}`, i), { qos: 1 });
    good++;
  }
  for (let i = 0; i < 50; i++, good++) await gateway.publishAsync('plant/gw/bearing', reading(`press-${i % 4}`, 100 + i), { qos: 1 });
  const total = good + BAD_ASSETS.length;
  await waitFor(`${total} rows`, () => {
    const c = countRows(dbPath);
    return c.predictions + c.deadLetters === total;
  });
  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null }, 'a clean stop: every result was acknowledged');
  // The agent has its PUBACKs, so the broker holds every result; a marker behind them proves the watcher has them all.
  let marked = false;
  watcher.on('message', (topic) => (marked ||= topic === 'marker'));
  await watcher.publishAsync('marker', 'end', { qos: 1 });
  await waitFor('the marker', () => marked);

  const predictions = results.filter((r) => r.startsWith('plant/') && r.includes('/predictions/'));
  assert.equal(predictions.length, good, 'exactly one result per good reading');
  assert.equal(agent.logs.filter((l) => l.msg === 'broker connection lost; reconnecting').length, 0, 'the session was never dropped');
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const dead = db.prepare('SELECT reason_code, reason, payload FROM dead_letters ORDER BY id').all() as { reason_code: string; reason: string; payload: Buffer }[];
  assert.equal(dead.length, BAD_ASSETS.length);
  for (const [i, d] of dead.entries()) {
    assert.equal(d.reason_code, 'REJECT_BAD_ASSET', d.reason);
    assert.equal((JSON.parse(d.payload.toString()) as { seq: number }).seq, i, 'the raw payload is kept');
  }
  assert.match(dead[0]!.reason, /control character U\+0001/);
  assert.match(dead[4]!.reason, /noncharacter U\+FFFF/);
  assert.match(dead[7]!.reason, /unpaired surrogate/);
});

test('a model version that cannot stand in the result topic is refused at start, naming publish.topic', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const modelDir = join(dir, 'model');
  cpSync(demoModelDir, modelDir, { recursive: true });
  const manifestPath = join(modelDir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: string };
  manifest.version = '1.0.0+build.7';
  writeFileSync(manifestPath, JSON.stringify(manifest));
  const config = agentConfig({ url: 'mqtt://127.0.0.1:1', dbPath: join(dir, 'agent.db'), model: { dir: modelDir }, publish: { topic: 'plant/{asset}/predictions/{model}/{version}' } });
  const path = writeConfig(dir, config);
  for (const args of [['config', 'check', path], ['run', '--config', path]]) {
    const r = await runCli(args);
    assert.equal(r.code, 78, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /EDGE_ERR_CONFIG_MODEL_MISMATCH/);
    assert.match(r.stderr, /publish\.topic .* puts the model's version in the topic, and "1\.0\.0\+build\.7" holds \/ \+ or #/);
  }
  // The same model with a topic that leaves the version out is served.
  const ok = writeConfig(dir, { ...config, publish: { topic: 'plant/{asset}/predictions/{model}' } }, 'ok.yaml');
  const r = await runCli(['config', 'check', ok]);
  assert.equal(r.code, 0, r.stderr);
});
