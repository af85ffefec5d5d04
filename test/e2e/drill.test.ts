// `edge-agent drill` on a live agent with readings flowing: a copy of the active version is verified,
// installed, swapped in, serves its probation, is rolled back by force and removed; the line ends as
// it began, and the report names every step.

import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, demoModelDir, mqttClient, openDb, readingPayload, runCli, spawnAgent, startMosquitto, tempDir, writeConfig } from '../helpers/parts.js';

test('the drill rehearses install, probation and rollback and leaves the line as it was', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  // The demo model with a latency budget a busy machine cannot break: the drill is about the path, and its
  // probation would fail on the demo's 20 ms when another build runs beside the test.
  const seed = join(dir, 'seed');
  cpSync(demoModelDir, seed, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(seed, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(seed, 'manifest.json'), JSON.stringify({ ...manifest, latencyBudgetMs: 1000 }, null, 2));
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-drill-test' }, model: { dir: seed } }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  // Readings flow through the drill (bounded: 60 s or 30,000).
  let flowing = true;
  let sent = 0;
  const flow = (async () => {
    const end = Date.now() + 60_000;
    while (flowing && Date.now() < end && sent < 30_000) {
      await gateway.publishAsync(`plant/p${sent % 4}/bearing`, readingPayload(sent), { qos: 1 });
      sent++;
      if (sent % 20 === 0) await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const r = await runCli(['drill', 'bearing-health', '--config', config, '--readings', '50', '--timeout', '40']);
  flowing = false;
  await flow;
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const copy = /drill of bearing-health 1\.0\.0 \(copy (1\.0\.1-drill\.\d+)\)/.exec(r.stdout)?.[1];
  assert.ok(copy, r.stdout);
  for (const step of ['copy the active version', 'verify in a child process and install', 'load, warm and swap in', 'probation .* passed: \\d+ readings, 0 bad', 'forced rollback .* 1\\.0\\.0 serving', 'clean up']) {
    assert.match(r.stdout, new RegExp(step), step);
  }
  assert.match(r.stdout, /1\.0\.0 serves again: the path from install to rollback works on this line/);

  const models = join(dir, 'agent.models', 'bearing-health');
  assert.deepEqual(readdirSync(join(models, 'versions')), ['1.0.0'], 'the copy is gone');
  const state = JSON.parse(readFileSync(join(models, 'state.json'), 'utf8')) as { active: string; previous: string | null; highestTrusted: string | null };
  assert.deepEqual([state.active, state.previous, state.highestTrusted], ['1.0.0', null, '1.0.0'], 'as before the drill: the copy raised no trust');
  const db = openDb(dbPath);
  t.after(() => db.close());
  const byVersion = db.prepare('SELECT model_version AS v, count(*) AS n FROM predictions GROUP BY 1 ORDER BY 1').all() as { v: string; n: number }[];
  assert.ok(byVersion.some((x) => x.v === copy && x.n >= 50), `the copy served its probation: ${JSON.stringify(byVersion)}`);
  const events = (db.prepare('SELECT event, version FROM model_events ORDER BY id').all() as { event: string; version: string }[]).map((e) => `${e.event} ${e.version}`);
  assert.deepEqual(events.slice(1), [`drill ${copy}`, `installed ${copy}`, `activated ${copy}`, `on probation ${copy}`, `committed ${copy}`, 'rolled back 1.0.0', 'drill done 1.0.0']);
});
