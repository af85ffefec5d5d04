// The command line: --help names every command and option, bad usage exits 64, an invalid config
// exits 78 naming every problem (key path, bad value, what was expected), a good one is accepted.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentConfig, demoModelDir, repoRoot, runCli, tempDir, writeConfig } from '../helpers/parts.js';

test('--help lists every command and option', { timeout: 60000 }, async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  for (const s of ['run --config FILE', 'config check FILE', 'simulate', 'demo', '--url', '--machines', '--rate', '--drifting', '--qos', '--count', '--duration', '--version']) {
    assert.ok(r.stdout.includes(s), `help mentions ${s}`);
  }
});

test('bad usage exits 64 and says what is wrong', { timeout: 60000 }, async () => {
  assert.deepEqual(await runCli([]).then((r) => [r.code, /no command/.test(r.stderr)]), [64, true]);
  assert.deepEqual(await runCli(['launch']).then((r) => [r.code, /unknown command "launch"/.test(r.stderr)]), [64, true]);
  assert.deepEqual(await runCli(['run']).then((r) => [r.code, /needs --config/.test(r.stderr)]), [64, true]);
  assert.deepEqual(await runCli(['run', '--config']).then((r) => r.code), 64);
  assert.deepEqual(await runCli(['simulate', '--qos', '3']).then((r) => [r.code, /--qos: got "3"/.test(r.stderr)]), [64, true]);
  assert.deepEqual(await runCli(['demo', '--bogus']).then((r) => [r.code, /bogus/.test(r.stderr)]), [64, true]);
  assert.deepEqual(await runCli(['simulate', '--url', 'broker:1883']).then((r) => [r.code, /--url: got "broker:1883"/.test(r.stderr)]), [64, true]);
  assert.match((await runCli(['launch'])).stderr, /EDGE_ERR_CLI_USAGE/);
});

test('config check accepts a good config and checks its model', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['config', 'check', writeConfig(dir, agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: join(dir, 'a.db') }))]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /OK/);
  assert.match(r.stdout, /bearing-health@1\.0\.0 \(6 features, 6 golden vectors pass\)/);
  assert.match(r.stdout, /synchronous=NORMAL/);
});

test('an invalid config: exit 78 and every problem named with path, value and expectation', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const yaml = `
mqtt:
  url: http://broker:1883
  keepaliveSec: ten
  colour: blue
ingest:
  subscriptions: []
mapping:
  asset: { topicLevel: -1 }
model: {}
store:
  synchronous: SOMETIMES
publish:
  topic: plant/+/predictions
  qos: 3
`;
  const r = await runCli(['config', 'check', writeConfig(dir, yaml)]);
  assert.equal(r.code, 78, r.stderr);
  const expectations: RegExp[] = [
    /EDGE_ERR_CONFIG/,
    /mqtt\.url: got "http:\/\/broker:1883" — .*mqtt:\/\/broker:1883/,
    /mqtt\.keepaliveSec: got "ten" — .*number/,
    /mqtt: unknown key "colour"/,
    /ingest\.subscriptions: got \[\] — .*(>=1|at least 1|1 item)/i,
    /mapping\.asset/,
    /model\.dir: got \(missing\)/,
    /store\.synchronous: got "SOMETIMES" — .*NORMAL.*FULL/,
    /publish\.topic: got "plant\/\+\/predictions" — a topic without the wildcards/,
    /publish\.qos: got 3/,
  ];
  for (const e of expectations) assert.match(r.stderr, e);
});

test('config errors for YAML syntax, a missing file, and a secret from an unset environment variable', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const broken = await runCli(['config', 'check', writeConfig(dir, 'mqtt: [unclosed\n', 'broken.yaml')]);
  assert.equal(broken.code, 78);
  assert.match(broken.stderr, /not valid YAML/);

  const missing = await runCli(['config', 'check', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 78);
  assert.match(missing.stderr, /nope\.yaml: cannot read the config file \(ENOENT\)/);

  const cfg = agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: join(dir, 'a.db'), mqtt: { url: 'mqtt://127.0.0.1:1883', username: 'line3', password: { env: 'EDGE_TEST_UNSET_PASSWORD' } } });
  const path = writeConfig(dir, cfg, 'secret.yaml');
  const env = { ...process.env };
  delete env.EDGE_TEST_UNSET_PASSWORD;
  const unset = await runCli(['config', 'check', path], env);
  assert.equal(unset.code, 78);
  assert.match(unset.stderr, /mqtt\.password: .*environment variable EDGE_TEST_UNSET_PASSWORD is not set/);
  const set = await runCli(['config', 'check', path], { ...env, EDGE_TEST_UNSET_PASSWORD: 's3cret' });
  assert.equal(set.code, 0, set.stderr);

  // { file } relative to the config file's folder, whatever the working directory.
  writeFileSync(join(dir, 'mqtt-password'), 's3cret\n');
  const fromFile = writeConfig(dir, { ...cfg, mqtt: { ...(cfg.mqtt as object), password: { file: 'mqtt-password' } } }, 'file.yaml');
  assert.equal((await runCli(['config', 'check', fromFile])).code, 0);
  writeConfig(dir, { ...cfg, mqtt: { ...(cfg.mqtt as object), password: { file: 'nope' } } }, 'nofile.yaml');
  const noFile = await runCli(['config', 'check', join(dir, 'nofile.yaml')]);
  assert.equal(noFile.code, 78);
  assert.match(noFile.stderr, /mqtt\.password: .*cannot read secret file .*nope \(ENOENT\)/);
});

test('a mapping for a feature the model does not have is a startup error', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const cfg = agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: join(dir, 'a.db'), mapping: { features: { vibration_rms: 'vib.rms' } } });
  const r = await runCli(['config', 'check', writeConfig(dir, cfg)]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_CONFIG_MODEL_MISMATCH/);
  assert.match(r.stderr, /mapping\.features\.vibration_rms: .*expected one of the model's features: rms_g, peak_g/);
});

test('the example configs in agent/examples are valid', { timeout: 60000 }, async () => {
  const demo = await runCli(['config', 'check', join(repoRoot, 'agent', 'examples', 'demo.yaml')]);
  assert.equal(demo.code, 0, demo.stderr);
  // line.yaml names files that only exist on a line PC: the model folder and the CA file are its only problems here.
  const line = await runCli(['config', 'check', join(repoRoot, 'agent', 'examples', 'line.yaml')], { ...process.env, EDGE_AGENT_MQTT_PASSWORD: 'x' });
  assert.equal(line.code, 78);
  assert.match(line.stderr, /2 problems\n {2}model\.dir: got "\/var\/lib\/edge-agent\/models\/bearing-health\/1\.0\.0" — a folder holding model\.onnx and manifest\.json \(ENOENT\)\n {2}mqtt\.tls\.caFile: got "\/etc\/edge-agent\/plant-ca\.pem" — a readable file \(ENOENT\)/);
});

test('several models: config check lists each; one model twice, top-level model keys beside models, and a bad mapping are named by key', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const base = agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: join(dir, 'a.db') });
  const { ingest: _ingest, mapping, model: _model, ...rest } = base;
  const entry = (topic: string, extra: Record<string, unknown> = {}) => ({ dir: demoModelDir, subscriptions: [{ topic, qos: 1 }], mapping, ...extra });

  // Each model once: the demo model twice is refused, naming the second entry.
  const twice = await runCli(['config', 'check', writeConfig(dir, { ...rest, models: [entry('plant/+/bearing'), entry('hall/+/bearing')] }, 'twice.yaml')]);
  assert.equal(twice.code, 78, twice.stderr);
  assert.match(twice.stderr, /models\[1\]\.dir: model bearing-health is listed already \(models\[0\]\.dir\)/);

  const both = await runCli(['config', 'check', writeConfig(dir, { ...base, models: [entry('plant/+/bearing')] }, 'both.yaml')]);
  assert.equal(both.code, 78, both.stderr);
  for (const key of ['model.dir', 'ingest.subscriptions', 'mapping']) assert.match(both.stderr, new RegExp(`${key.replace('.', '\\.')}: with models listed, each model has its own`));

  const neither = await runCli(['config', 'check', writeConfig(dir, { ...rest, model: {} }, 'neither.yaml')]);
  assert.equal(neither.code, 78, neither.stderr);
  assert.match(neither.stderr, /model\.dir: got \(missing\)/);
  assert.match(neither.stderr, /ingest\.subscriptions: got \(missing\)/);

  const badMapping = await runCli(['config', 'check', writeConfig(dir, { ...rest, models: [entry('plant/+/bearing', { mapping: { features: { vib: 'v.rms' } }, resultTopic: 'plant/{asset}/{version}' })] }, 'bad.yaml')]);
  assert.equal(badMapping.code, 78, badMapping.stderr);
  assert.match(badMapping.stderr, /models\[0\]\.mapping\.features\.vib: got a mapping for "vib"/);

  const one = await runCli(['config', 'check', writeConfig(dir, { ...rest, models: [entry('plant/+/bearing', { resultTopic: 'plant/{asset}/bearing' })] }, 'one.yaml')]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /model: bearing-health@1\.0\.0 \(6 features, 6 golden vectors pass\) on plant\/\+\/bearing/);
});
