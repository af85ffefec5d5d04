// A shadow version runs beside the active one on the same rows: its predictions are stored with role
// 'shadow' and never published, `model list` says how often it agrees, and `model promote` makes it the
// active version. The active path keeps every reading: each has exactly one active prediction and one result.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, demoModelDir, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';

test('a shadow predicts beside the active version, is stored and compared, never published; promote makes it active', { timeout: 150_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const { key } = await keygen(dir);
  const release = await signedRelease(dir, '1.1.0', key);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 0 } } }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('agent ready');

  const installed = await runCli(['model', 'install', release, '--shadow', '--config', config]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /bearing-health 1\.1\.0 installed and running as a shadow beside 1\.0\.0/);

  // The agent's retained status names the shadow beside the active version.
  const statuses = await mqttClient(t, broker.url);
  let shadowInStatus: unknown;
  statuses.on('message', (_topic, payload) => {
    const s = JSON.parse(payload.toString()) as { models: Record<string, { active: string; shadow: string | null }> };
    shadowInStatus = s.models['bearing-health'];
  });
  await statuses.subscribeAsync('edge-agent/agents/+/status', { qos: 1 });
  await waitFor('the shadow in the status', () => (shadowInStatus as { shadow?: string } | undefined)?.shadow === '1.1.0');
  assert.equal((shadowInStatus as { active: string }).active, '1.0.0');

  const results: string[] = [];
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (_topic, payload) => results.push((JSON.parse(payload.toString()) as { version: string }).version));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const gateway = await mqttClient(t, broker.url);
  const N = 600;
  await publishSequence(gateway, 'plant/press-1/bearing', N, 20, 10).done;
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const count = (role: string) => (db.prepare('SELECT count(*) AS n FROM predictions WHERE role = ?').get(role) as { n: number }).n;
  await waitFor(`${N} active predictions and ${N} results`, () => count('active') === N && results.length === N, 60_000);
  await waitFor('shadow predictions', () => count('shadow') > 0);
  assert.deepEqual([...new Set(results)], ['1.0.0'], 'only the active version is published');
  const shadowRows = db.prepare("SELECT DISTINCT model_version AS v FROM predictions WHERE role = 'shadow'").all() as { v: string }[];
  assert.deepEqual(shadowRows, [{ v: '1.1.0' }]);
  const list = await runCli(['model', 'list', '--config', config]);
  const agreed = /shadow 1\.1\.0: agreed with the active version on (\d+) of (\d+) rows \(100\.0 %\), (\d+) batches dropped/.exec(list.stdout);
  assert.ok(agreed, list.stdout);
  assert.equal(Number(agreed[1]), count('shadow'), 'every shadow row was compared (the same model: all agree)');

  // The shadow runs again after a restart.
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  const again = spawnAgent(t, config);
  const resumed = await again.waitForLog('shadow version running');
  assert.equal(resumed.version, '1.1.0');
  await again.waitForLog('agent ready');

  const promoted = await runCli(['model', 'promote', '--config', config]);
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.match(promoted.stdout, /bearing-health 1\.1\.0 promoted from shadow: active, on probation \(previous: 1\.0\.0\)/);
  await waitFor('the status after promote', () => {
    const m = shadowInStatus as { active: string; shadow: string | null };
    return m.active === '1.1.0' && m.shadow === null;
  });
  await publishSequence(gateway, 'plant/press-1/bearing', N + 20, 20, 0, N).done;
  await waitFor('results of 1.1.0', () => results.filter((v) => v === '1.1.0').length === 20);
  const after = await runCli(['model', 'list', '--config', config]);
  assert.doesNotMatch(after.stdout, /shadow 1\.1\.0: agreed/, "no shadow any more");
  assert.match(after.stdout, /active 1\.1\.0, previous 1\.0\.0/);
});
