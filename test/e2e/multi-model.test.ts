// Several models in one agent (a line PC serving several stations): each model takes the topics of its
// own subscriptions, reads them with its own mapping and publishes on its own result topic; a topic two
// models subscribe to is predicted by both; a message no model takes (a subscription an earlier config
// left in the broker session) is a dead letter, never lost. Each model has its own lifecycle: an install,
// a push or a rollback names its model and leaves the others serving as they were.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { writeModelVersion, type VersionSpec } from '../helpers/onnx.js';
import { agentConfig, demoModelDir, mqttClient, openDb, publishSequence, runCli, seqPayload, spawnAgent, startMosquitto, stopChild, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';

/** value = speed_rpm: its results carry the sequence number of the reading they came from (see seqPayload). */
const spindle = (version = '1.0.0'): VersionSpec => ({
  name: 'spindle-speed',
  version,
  graph: {
    inputs: [{ name: 'x', dims: ['N', 2] }],
    outputs: [{ name: 'value', dims: ['N', 1] }],
    nodes: [{ op: 'MatMul', in: ['x', 'w'], out: 'value' }],
    initializers: [{ name: 'w', dims: [2, 1], values: [0, 1] }],
  },
  features: [{ name: 'temperature_c', min: -40, max: 200 }, { name: 'speed_rpm', min: 0, max: 10000 }],
  output: { kind: 'regression', tensor: 'value', unit: 'rpm' },
  golden: [[45, 1500], [60, 3000]],
});
const seqOf = (rpm: number) => Math.round(rpm * 4 - 4000);

async function twoModels(t: TestContext, extra: Record<string, unknown> = {}) {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const { key, pub } = await keygen(dir);
  const sp = await writeModelVersion(t, spindle(), join(dir, 'seed'));
  const dbPath = join(dir, 'agent.db');
  const base = agentConfig({ url: broker.url, dbPath });
  const { ingest: _i, mapping: bearingMapping, ...rest } = base;
  const config = {
    ...rest,
    ingest: { maxPayloadBytes: 65536 },
    model: { trust: { keyFiles: [pub] }, probation: { predictions: 0 } },
    releases: { agentId: `multi-${process.pid}`, groups: ['line3'] },
    models: [
      { dir: demoModelDir, subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }], mapping: bearingMapping },
      {
        dir: sp.dir,
        // The spindle model reads the bearing readings too (their speed), and readings of its own.
        subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }, { topic: 'line/+/spindle', qos: 1 }],
        mapping: { asset: { topicLevel: 1 } },
        resultTopic: 'line/{asset}/spindle-result',
        allowUnsigned: true,
      },
    ],
    ...extra,
  };
  return { broker, dir, key, dbPath, base, configPath: writeConfig(dir, config), config };
}

test('each model takes its own topics, mapping and result topic; a shared topic is predicted by both; an unrouted message is a dead letter', { timeout: 150_000 }, async (t) => {
  const { broker, dir, dbPath, base, configPath } = await twoModels(t);
  // An earlier config subscribed to legacy/+/bearing on the same persistent session: the broker keeps
  // delivering it to the agent after the config changed.
  const earlier = writeConfig(dir, { ...base, ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }, { topic: 'legacy/+/bearing', qos: 1 }] } }, 'earlier.yaml');
  const first = spawnAgent(t, earlier);
  await first.waitForLog('agent ready');
  assert.equal(await stopChild(first), 0);

  const agent = spawnAgent(t, configPath);
  const ready = await agent.waitForLog('agent ready');
  assert.deepEqual(ready.models, ['bearing-health@1.0.0', 'spindle-speed@1.0.0']);

  const bearingResults: string[] = [];
  const spindleSeqs: number[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString()) as { model: string; value?: number; sourceTopic: string };
    if (topic.startsWith('plant/')) bearingResults.push(`${body.model} ${body.sourceTopic}`);
    else spindleSeqs.push(seqOf(body.value as number));
  });
  await watcher.subscribeAsync({ 'plant/+/predictions/#': { qos: 1 }, 'line/+/spindle-result': { qos: 1 } });
  const gateway = await mqttClient(t, broker.url);
  const N = 300;
  const M = 200;
  await Promise.all([
    publishSequence(gateway, 'plant/press-1/bearing', N, 25, 5).done,
    // The lathe's readings carry only what the spindle model reads: the bearing model never sees them.
    publishSequence(gateway, 'line/lathe-2/spindle', N + M, 25, 5, N).done,
  ]);
  await gateway.publishAsync('legacy/press-9/bearing', seqPayload(9999), { qos: 1 });
  // On the shared topic, a reading only the spindle model can read: a dead letter of the bearing model, a spindle prediction.
  const lone = N + M;
  await gateway.publishAsync('plant/press-7/bearing', JSON.stringify({ temperature_c: 45, speed_rpm: 1000 + lone * 0.25 }), { qos: 1 });

  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const seqs = (model: string) =>
    (db.prepare('SELECT features FROM predictions WHERE model_name = ? ORDER BY id').all(model) as { features: string }[]).map((r) => {
      const f = JSON.parse(r.features) as number[];
      return seqOf(f[f.length - 1] as number);
    });
  await waitFor('every reading stored by each model that takes it', () => seqs('bearing-health').length >= N && seqs('spindle-speed').length >= N + M + 1 && (db.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n >= 2, 60_000);
  await waitFor('every result', () => bearingResults.length >= N && spindleSeqs.length >= N + M + 1, 30_000);
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  assert.deepEqual(seqs('bearing-health').sort((a, b) => a - b), range(0, N), 'the bearing model: each bearing reading once, nothing else');
  assert.deepEqual(seqs('spindle-speed').sort((a, b) => a - b), range(0, N + M + 1), 'the spindle model: the bearing readings and its own, each once');
  assert.deepEqual([...new Set(bearingResults)], ['bearing-health plant/press-1/bearing'], 'only bearing results on the bearing result topic');
  assert.deepEqual(spindleSeqs.sort((a, b) => a - b), range(0, N + M + 1), 'one spindle result per reading it took, on its own result topic');
  const dead = db.prepare('SELECT topic, reason_code AS code, model FROM dead_letters ORDER BY topic').all();
  assert.deepEqual(dead, [
    { topic: 'legacy/press-9/bearing', code: 'REJECT_NO_MODEL', model: null },
    { topic: 'plant/press-7/bearing', code: 'REJECT_MISSING_FIELD', model: 'bearing-health' },
  ]);
  await waitFor('the inbox emptied', () => (db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n === 0);

  // The status names every model with its versions.
  const status = await new Promise<Record<string, { active: string }>>((resolve) => {
    watcher.on('message', (topic, payload) => {
      if (topic.endsWith('/status')) resolve((JSON.parse(payload.toString()) as { models: Record<string, { active: string }> }).models);
    });
    void watcher.subscribeAsync(`edge-agent/agents/multi-${process.pid}/status`, { qos: 1 });
  });
  assert.deepEqual(Object.entries(status).map(([name, s]) => `${name} ${s.active}`), ['bearing-health 1.0.0', 'spindle-speed 1.0.0']);
  assert.equal(await stopChild(agent), 0);
});

test('each model has its own lifecycle: install, push and rollback name their model and leave the other serving', { timeout: 180_000 }, async (t) => {
  const { broker, dir, key, configPath } = await twoModels(t);
  const agent = spawnAgent(t, configPath);
  await agent.waitForLog('agent ready');

  const list = await runCli(['model', 'list', '--config', configPath]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^bearing-health: active 1\.0\.0, previous none/m);
  assert.match(list.stdout, /^spindle-speed: active 1\.0\.0, previous none/m);
  const unnamed = await runCli(['model', 'rollback', '--config', configPath]);
  assert.equal(unnamed.code, 64, unnamed.stderr);
  assert.match(unnamed.stderr, /serves several models \(bearing-health, spindle-speed\): name one/);
  const unknown = await runCli(['model', 'rollback', 'press-health', '--config', configPath]);
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /serves bearing-health, spindle-speed, not press-health/);

  // A signed bearing release: only the bearing model changes.
  const bearing = await signedRelease(dir, '1.1.0', key);
  const installed = await runCli(['model', 'install', bearing, '--config', configPath]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /bearing-health 1\.1\.0 installed and active in the running agent/);
  // Unsigned: the spindle model accepts it (models[1].allowUnsigned), the bearing model does not.
  const unsignedSpindle = await writeModelVersion(t, spindle('1.0.1'), join(dir, 'unsigned'));
  const spindleInstalled = await runCli(['model', 'install', unsignedSpindle.dir, '--config', configPath]);
  assert.equal(spindleInstalled.code, 0, spindleInstalled.stderr);
  // A sealed bearing release whose signature was left out.
  const unsignedBearing = await signedRelease(dir, '1.2.0', key);
  rmSync(join(unsignedBearing, 'signature.json'));
  const refused = await runCli(['model', 'install', unsignedBearing, '--config', configPath]);
  assert.equal(refused.code, 65, refused.stderr);
  assert.match(refused.stderr, /EDGE_ERR_RELEASE_UNSIGNED/);

  // A release of a model the agent does not serve: refused, recorded, nothing changes.
  const other = await writeModelVersion(t, { ...spindle('1.0.0'), name: 'press-health' }, join(dir, 'other'));
  const otherInstall = await runCli(['model', 'install', other.dir, '--config', configPath]);
  assert.equal(otherInstall.code, 65, otherInstall.stderr);
  assert.match(otherInstall.stderr, /EDGE_ERR_RELEASE_FILES: this agent serves bearing-health, spindle-speed, not press-health/);

  const after = await runCli(['model', 'list', 'spindle-speed', '--config', configPath]);
  assert.match(after.stdout, /^spindle-speed: active 1\.0\.1, previous 1\.0\.0/m);
  assert.doesNotMatch(after.stdout, /bearing-health:/);

  // A push names its model: a spindle release pushed to the line reaches the spindle model only.
  const pushed = await writeModelVersion(t, spindle('1.1.0'), join(dir, 'push'));
  const signed = await runCli(['model', 'sign', pushed.dir, '--key', key]);
  assert.equal(signed.code, 0, signed.stderr);
  const push = await runCli(['model', 'push', pushed.dir, '--broker', broker.url, '--target', 'group:line3', '--timeout', '60']);
  assert.equal(push.code, 0, push.stdout + push.stderr);
  assert.match(push.stdout, new RegExp(`multi-${process.pid}: committed 1\\.1\\.0`));

  const rolled = await runCli(['model', 'rollback', 'bearing-health', '--config', configPath, '--reason', 'line 3 false alarms']);
  assert.equal(rolled.code, 0, rolled.stderr);
  assert.match(rolled.stdout, /bearing-health rolled back to 1\.0\.0 in the running agent \(previous: 1\.1\.0\)/);
  const final = await runCli(['model', 'list', '--config', configPath]);
  assert.match(final.stdout, /^bearing-health: active 1\.0\.0, previous 1\.1\.0/m);
  assert.match(final.stdout, /^spindle-speed: active 1\.1\.0, previous 1\.0\.1/m);

  // Readings still reach both models, each with its version now.
  const gateway = await mqttClient(t, broker.url);
  await gateway.publishAsync('plant/press-1/bearing', seqPayload(1), { qos: 1 });
  const db = openDb(join(dir, 'agent.db'));
  teardown(t, () => db.close());
  await waitFor('a prediction of each model for the reading', () => (db.prepare('SELECT count(*) AS n FROM predictions').get() as { n: number }).n >= 2);
  const made = db.prepare('SELECT model_name AS model, model_version AS version FROM predictions ORDER BY model_name').all();
  assert.deepEqual(made, [{ model: 'bearing-health', version: '1.0.0' }, { model: 'spindle-speed', version: '1.1.0' }]);
  assert.deepEqual(db.prepare("SELECT model, event FROM model_events WHERE model = 'press-health'").all(), [{ model: 'press-health', event: 'refused' }], 'the refusal is recorded');
  assert.equal(await stopChild(agent), 0);
});
