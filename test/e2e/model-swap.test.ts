// The model lifecycle on a running agent, through the engineer's CLI: a signed release installed while a
// QoS 1 stream flows is verified, swapped in without losing or doubling a reading, and every row names
// the version that made it; a release the agent must refuse leaves the active version serving with the
// reason recorded; a rollback by hand; and an install with no agent running serves from the next start.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, demoModelDir, mqttClient, openDb, publishSequence, runCli, runUntilStored, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';
import { signedRelease as release } from '../helpers/releases.js';

function versionsStored(dbPath: string): Record<string, number> {
  const db = openDb(dbPath);
  try {
    return Object.fromEntries((db.prepare('SELECT model_version AS v, count(*) AS n FROM predictions GROUP BY 1').all() as { v: string; n: number }[]).map((r) => [r.v, r.n]));
  } finally {
    db.close();
  }
}

test('install under load: verified, swapped in, nothing lost or doubled; refusal and rollback keep serving', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const keygen = await runCli(['model', 'keygen', '--out', dir, '--name', 'anna']);
  assert.equal(keygen.code, 0, keygen.stderr);
  const key = join(dir, 'anna.key');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-swap-test' },
    model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'anna.pub')] } },
  }));
  const agent = spawnAgent(t, config);
  await agent.waitForLog('agent ready');

  // A QoS 1 stream that goes on until the swap is done and 500 readings after it (bounded: 20,000 or 60 s).
  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-swap-test' });
  let swapped = false;
  let sent = 0;
  let afterSwap = 0;
  const stream = (async () => {
    const end = Date.now() + 60_000;
    while ((!swapped || afterSwap < 500) && sent < 19_000 && Date.now() < end) {
      await publishSequence(gateway, 'plant/press-1/bearing', sent + 20, 20, 0, sent).done;
      sent += 20;
      if (swapped) afterSwap += 20;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await waitFor('the stream flowing', () => countRows(dbPath).predictions >= 300);
  const v110 = await release(dir, '1.1.0', key);
  const installed = await runCli(['model', 'install', v110, '--config', config]);
  swapped = true;
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /bearing-health 1\.1\.0 installed and active in the running agent \(previous: 1\.0\.0\)/);
  await stream;
  const N = sent;
  assert.ok(afterSwap >= 500, `the stream went on after the swap (${afterSwap} readings)`);
  await waitFor(`${N} predictions`, () => countRows(dbPath).predictions >= N, 60_000);
  const byVersion = versionsStored(dbPath);
  assert.ok((byVersion['1.0.0'] ?? 0) > 0 && (byVersion['1.1.0'] ?? 0) > 0, `rows from both versions: ${JSON.stringify(byVersion)}`);

  // Refused: signed by the engineer, but its golden vectors do not match the model; 1.1.0 keeps serving.
  const bad = await release(dir, '1.2.0', key, (m) => {
    const golden = m.golden as { output: number[] }[];
    golden[0]!.output = [0.5, 0.25, 0.25];
  });
  const refused = await runCli(['model', 'install', bad, '--config', config]);
  assert.equal(refused.code, 78, refused.stderr);
  assert.match(refused.stderr, /EDGE_ERR_MODEL_GOLDEN: .*releases\/1\.2\.0-\w+: golden vectors fail\n {2}golden\[0\]: manifest expects \[0\.5, 0\.25, 0\.25\]/);
  // An unsigned copy is refused before anything loads it.
  const unsigned = join(dir, 'unsigned');
  cpSync(demoModelDir, unsigned, { recursive: true });
  const noSig = await runCli(['model', 'install', unsigned, '--config', config]);
  assert.equal(noSig.code, 65, noSig.stderr);
  assert.match(noSig.stderr, /EDGE_ERR_RELEASE_FILES: .*no release block|EDGE_ERR_RELEASE_UNSIGNED/);

  // Rollback by hand: 1.0.0 serves again.
  const back = await runCli(['model', 'rollback', '--config', config, '--reason', 'drill']);
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /bearing-health rolled back to 1\.0\.0 in the running agent \(previous: 1\.1\.0\)/);
  const list = await runCli(['model', 'list', '--config', config]);
  assert.match(list.stdout, /bearing-health: active 1\.0\.0, previous 1\.1\.0; installed: 1\.0\.0, 1\.1\.0/);
  for (const e of ['activated 1.0.0', 'installed 1.1.0', 'activated 1.1.0', 'refused 1.2.0', 'rolled back 1.0.0']) assert.ok(list.stdout.includes(e), `event "${e}" in:\n${list.stdout}`);

  // Every reading stored exactly once across the swap and the rollback.
  await publishSequence(gateway, 'plant/press-1/bearing', N + 100, 50, 0, N).done;
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  const { seqs } = await runUntilStored(t, config, dbPath, N + 100);
  assert.equal(seqs.length, N + 100);
  assert.equal(new Set(seqs).size, N + 100, 'no reading stored twice');
  const after = versionsStored(dbPath);
  assert.ok((after['1.0.0'] ?? 0) > (byVersion['1.0.0'] ?? 0), `rows after the rollback name 1.0.0: ${JSON.stringify(after)}`);
});

test('install with no agent running: the release serves from the next start', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  await runCli(['model', 'keygen', '--out', dir, '--name', 'k']);
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] } } }));
  const v2 = await release(dir, '2.0.0', join(dir, 'k.key'));
  const r = await runCli(['model', 'install', v2, '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /bearing-health 2\.0\.0 installed and active from the next start of the agent/);
  const agent = spawnAgent(t, config);
  const loaded = await agent.waitForLog('model loaded and verified');
  assert.equal(loaded.version, '2.0.0');
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/press-1/bearing', 20).done;
  await waitFor('20 predictions', () => countRows(dbPath).predictions === 20);
  assert.deepEqual(versionsStored(dbPath), { '2.0.0': 20 });
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const events = db.prepare('SELECT event, version FROM model_events ORDER BY id').all() as { event: string; version: string }[];
  assert.deepEqual(events.map((e) => `${e.event} ${e.version}`), ['activated 1.0.0', 'installed 2.0.0', 'activated 2.0.0'], "the config's first version, then the install");
});
