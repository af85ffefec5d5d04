// Probation after an install: a version that gives NaN on the line (its golden vectors pass) is rolled
// back by the agent itself, with the reason recorded, and the previous version serves on; a good
// version is committed once it has served its probation.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeModelVersion, type VersionSpec } from '../helpers/onnx.js';
import { agentConfig, demoModelDir, mqttClient, openDb, readingPayload, runCli, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const demo = JSON.parse(readFileSync(join(demoModelDir, 'manifest.json'), 'utf8')) as { features: { name: string; min: number; max: number }[] };

/** bearing-health with the demo's features: probabilities = softmax(log(2500 - speed_rpm), 0, 0): NaN above 2500 rpm. */
function nanAbove2500(version: string): VersionSpec {
  const W = new Array<number>(18).fill(0);
  W[5 * 3] = -1; // row speed_rpm, column 0
  return {
    name: 'bearing-health',
    version,
    graph: {
      inputs: [{ name: 'features', dims: ['N', 6] }],
      outputs: [{ name: 'probabilities', dims: ['N', 3] }],
      initializers: [{ name: 'W', dims: [6, 3], values: W }, { name: 'B', dims: [3], values: [2500, 1, 1] }],
      nodes: [
        { op: 'Gemm', in: ['features', 'W', 'B'], out: 'y' },
        { op: 'Log', in: ['y'], out: 'l' },
        { op: 'Softmax', in: ['l'], out: 'probabilities', attrs: { axis: 1 } },
      ],
    },
    features: demo.features.map((f) => ({ name: f.name, min: f.min, max: f.max })),
    output: { kind: 'classification', tensor: 'probabilities', labels: ['healthy', 'wear', 'fault'] },
    golden: [[0.4, 1.4, 3, 3.5, 45, 1000], [0.4, 1.4, 3, 3.5, 45, 2000]],
  };
}

test('a version that gives NaN on the line is rolled back by the agent itself; a good one is committed', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  await runCli(['model', 'keygen', '--out', dir, '--name', 'k']);
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-probation-test' },
    model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 40, maxBadShare: 0.01, maxLabelPsi: 50 } },
  }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  const send = async (from: number, n: number, speed: number) => {
    for (let i = from; i < from + n; i++) await gateway.publishAsync(`plant/p${i}/bearing`, readingPayload(i, [0.4, 1.4, 3.0, 3.5, 45, speed]), { qos: 1 });
  };

  const bad = await writeModelVersion(t, nanAbove2500('1.1.0'), join(dir, 'releases'));
  assert.equal((await runCli(['model', 'sign', bad.dir, '--key', join(dir, 'k.key')])).code, 0);
  const installed = await runCli(['model', 'install', bad.dir, '--config', config]);
  assert.equal(installed.code, 0, installed.stderr);

  await send(0, 10, 1500); // fine on 1.1.0
  await send(10, 10, 3000); // NaN on 1.1.0
  const failed = await agent.waitForLog('model version failed probation; rolling back');
  assert.equal(failed.version, '1.1.0');
  assert.match(String(failed.reason), /readings failed or gave NaN\/infinite outputs \(REJECT_NONFINITE_OUTPUT \d+\); the limit is 1 %/);
  await waitFor('the rollback', () => agent.logs.some((l) => l.msg === 'model version activated' && l.event === 'rolled back' && l.version === '1.0.0'));
  await send(20, 10, 3000); // the previous version serves these

  const db = openDb(dbPath);
  t.after(() => db.close());
  await waitFor('30 rows', () => (db.prepare('SELECT (SELECT count(*) FROM predictions) + (SELECT count(*) FROM dead_letters) AS n').get() as { n: number }).n === 30);
  const byVersion = db.prepare("SELECT model_version AS v, count(*) AS n FROM predictions WHERE asset IN ('p20','p21','p22','p23','p24','p25','p26','p27','p28','p29') GROUP BY 1").all();
  assert.deepEqual(byVersion, [{ v: '1.0.0', n: 10 }], 'after the rollback 1.0.0 predicts the readings 1.1.0 could not');
  const events = (db.prepare('SELECT event, version FROM model_events ORDER BY id').all() as { event: string; version: string }[]).map((e) => `${e.event} ${e.version}`);
  assert.deepEqual(events, ['activated 1.0.0', 'installed 1.1.0', 'activated 1.1.0', 'on probation 1.1.0', 'probation failed 1.1.0', 'rolled back 1.0.0']);

  // A good version passes its probation and is committed.
  const good = await writeModelVersion(t, nanAbove2500('1.2.0'), join(dir, 'releases'));
  assert.equal((await runCli(['model', 'sign', good.dir, '--key', join(dir, 'k.key')])).code, 0);
  assert.equal((await runCli(['model', 'install', good.dir, '--config', config])).code, 0);
  await send(30, 40, 1500);
  const committed = await agent.waitForLog('model version committed after probation');
  assert.equal(committed.version, '1.2.0');
  assert.match(String(committed.summary), /^40 readings, 0 bad/);
});
