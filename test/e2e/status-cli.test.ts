// `edge-agent status` against a real agent child process and a real mosquitto: the table names the model
// at its version and the predictions and dead letters a publisher sent, --json gives the whole snapshot,
// it works from a shell without the agent's secrets (only store.path is read), and with no agent it exits
// 69 saying so.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, countRows, freePort, mqttClient, publishSequence, runCli, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

test('edge-agent status: the running agent at a glance, as a table and as JSON; 69 with no agent', { timeout: 150_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  // Secrets from environment variables the agent has and the operator's shell has not; the store path is
  // relative to the config's folder.
  const config = writeConfig(dir, {
    ...agentConfig({ url: broker.url, dbPath: 'a.db' }),
    http: { port: 0, token: { env: 'EDGE_TEST_STATUS_HTTP_TOKEN' } },
    sync: { targets: [{ type: 'http', name: 'plant-server', url: `http://127.0.0.1:${await freePort()}/ingest`, token: { env: 'EDGE_TEST_STATUS_SYNC_TOKEN' }, timeoutMs: 2000 }] },
  });
  const shell = { ...process.env };
  delete shell.EDGE_TEST_STATUS_HTTP_TOKEN;
  delete shell.EDGE_TEST_STATUS_SYNC_TOKEN;
  const agent = spawnAgent(t, config, { EDGE_TEST_STATUS_HTTP_TOKEN: 'h-token', EDGE_TEST_STATUS_SYNC_TOKEN: 's-token' });
  await agent.waitForLog('agent ready');

  const N = 75;
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/m1/bearing', N).done;
  for (let i = 0; i < 2; i++) await gateway.publishAsync('plant/m2/bearing', '{"vibration":', { qos: 1 });
  await waitFor(`${N} predictions and 2 dead letters in the store`, () => {
    const c = countRows(join(dir, 'a.db'));
    return c.predictions === N && c.deadLetters === 2;
  }, 30_000);

  // The full config cannot be loaded in this shell (its secrets are not set), status still works.
  const check = await runCli(['config', 'check', config], shell);
  assert.equal(check.code, 78, check.stderr);
  assert.match(check.stderr, /EDGE_TEST_STATUS_HTTP_TOKEN is not set/);

  let snapshot: { rates: { predictions: number; deadLetters: number }; models: { name: string; serving: string }[]; agent: { ready: boolean } } | null = null;
  await waitFor('status --json to count what was sent', async () => {
    const r = await runCli(['status', '--config', config, '--json'], shell);
    assert.equal(r.code, 0, r.stderr);
    snapshot = JSON.parse(r.stdout) as typeof snapshot;
    return snapshot?.rates.predictions === N && snapshot.rates.deadLetters === 2;
  }, 30_000, 250);
  assert.deepEqual(snapshot!.models.map((m) => `${m.name}@${m.serving}`), ['bearing-health@1.0.0']);
  assert.equal(snapshot!.agent.ready, true);

  const r = await runCli(['status', '--config', config], shell);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /: READY\n/);
  assert.match(out, /^MODEL@SERVING\s+PREVIOUS\s+SHADOW\s+LAST EVENT$/m);
  assert.match(out, /^bearing-health@1\.0\.0\s+-\s+-\s+activated 1\.0\.0 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
  const predictions = /^predictions (\d+): bearing-health (.*)$/m.exec(out);
  assert.ok(predictions, out);
  assert.equal(Number(predictions[1]), N);
  const byLabel = [...(predictions[2] as string).matchAll(/([a-z]+) (\d+)/g)];
  assert.equal(byLabel.reduce((n, m) => n + Number(m[2]), 0), N, 'the labels add up to what was sent');
  assert.match(out, /^dead letters 2: REJECT_MALFORMED_JSON 2$/m);
  assert.match(out, /^plant-server\s+\d+\s+/m);
  assert.match(out, /^store [\d.]+ [KM]iB of 2\.0 GiB/m);
  assert.match(out, /^drift: nothing over its threshold$/m);

  // No agent: exit 69, saying so.
  await stopChild(agent);
  const none = await runCli(['status', '--config', config], shell);
  assert.equal(none.code, 69, none.stderr);
  assert.match(none.stderr, /EDGE_ERR_CONTROL: no agent is running on .*a\.db/);
});

test('edge-agent status: --help, a bad option, an unreadable config', { timeout: 60_000 }, async (t) => {
  const help = await runCli(['status', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: edge-agent status \[--config FILE\] \[--json\]/);
  assert.match((await runCli(['--help'])).stdout, /edge-agent status \[--config FILE\] \[--json\]/);
  const bad = await runCli(['status', '--bogus']);
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /--bogus/);
  const dir = tempDir(t);
  const missing = await runCli(['status', '--config', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 78);
  assert.match(missing.stderr, /nope\.yaml: cannot read the config file/);
  const wrong = await runCli(['status', '--config', writeConfig(dir, 'store:\n  path: 42\n')]);
  assert.equal(wrong.code, 78);
  assert.match(wrong.stderr, /store\.path: got 42/);
});
