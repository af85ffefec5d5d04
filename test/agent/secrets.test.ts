// Secrets never reach output: a wrongly typed password, credentials in a broker URL (config and
// `simulate --url`) give a clear error without the secret; secrets resolve only where a secret stands.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { configFromObject } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';
import { agentConfig, runCli, tempDir, writeConfig } from '../helpers/parts.js';

const SECRET = '918273645';

async function checkConfig(dir: string, yaml: string, name: string) {
  const r = await runCli(['config', 'check', writeConfig(dir, yaml, name)]);
  assert.equal(r.code, 78, r.stderr);
  assert.match(r.stderr, /EDGE_ERR_CONFIG/);
  return r;
}

function base(mqtt: string): string {
  return `mqtt:\n${mqtt}\ningest:\n  subscriptions: [{ topic: plant/+/bearing }]\nmodel: { dir: /nonexistent }\nstore: { path: a.db }\n`;
}

test('a wrongly typed password is named but never printed', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const numeric = await checkConfig(dir, base(`  url: mqtt://127.0.0.1:1883\n  username: line3\n  password: ${SECRET}`), 'numeric.yaml');
  assert.match(numeric.stderr, /mqtt\.password: got \(redacted\) — /);
  const object = await checkConfig(dir, base(`  url: mqtt://127.0.0.1:1883\n  password: { value: "${SECRET}", env: 7 }`), 'object.yaml');
  assert.match(object.stderr, /mqtt\.password: got \(redacted\)/);
  const user = await checkConfig(dir, base(`  embedded:\n    users: [{ username: gw, password: ${SECRET} }]`), 'user.yaml');
  assert.match(user.stderr, /mqtt\.embedded\.users\[0\]\.password: got \(redacted\)/);
  for (const r of [numeric, object, user]) {
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), `the secret is printed:\n${r.stderr}`);
  }
});

test('credentials in mqtt.url are refused without printing them', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const r = await checkConfig(dir, base(`  url: mqtt://line3:${SECRET}@broker.plant.local:1883`), 'url.yaml');
  assert.match(r.stderr, /mqtt\.url: got "mqtt:\/\/\(redacted\)@broker\.plant\.local:1883" — a URL without credentials: give them as mqtt\.username and mqtt\.password/);
  assert.ok(!(r.stdout + r.stderr).includes(SECRET), r.stderr);
  const tokenOnly = await checkConfig(dir, base(`  url: mqtts://${SECRET}@broker:8883`), 'token.yaml');
  assert.ok(!(tokenOnly.stdout + tokenOnly.stderr).includes(SECRET), tokenOnly.stderr);
});

test('simulate --url with credentials: usage error (64) without them', { timeout: 60000 }, async () => {
  const r = await runCli(['simulate', '--url', `mqtt://gw:${SECRET}@127.0.0.1:1`, '--count', '1']);
  assert.equal(r.code, 64, r.stderr);
  assert.match(r.stderr, /--url: got "mqtt:\/\/\(redacted\)@127\.0\.0\.1:1", expected a URL without credentials/);
  assert.ok(!(r.stdout + r.stderr).includes(SECRET), r.stderr);
});

test('{ file } is a secret only where a secret stands: a feature named "file" is left alone', { timeout: 30000 }, (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'pw'), 'from-file\n');
  const raw = agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: 'a.db', mapping: { features: { file: 'vibration.rms_g' } } });
  (raw.mqtt as Record<string, unknown>).password = { file: 'pw' };
  (raw.mqtt as Record<string, unknown>).embedded = { users: [{ username: 'gw', password: { file: 'pw' } }] };
  const c = configFromObject(raw, 'test.yaml', dir);
  assert.deepEqual(c.mapping.features, { file: 'vibration.rms_g' });
  assert.equal(c.mqtt.password, 'from-file');
  assert.equal(c.mqtt.embedded.users[0]?.password, 'from-file');
  assert.ok(Object.isFrozen(c.mqtt.embedded.users[0]));
  // An unreadable secret file is a problem named by its key path.
  (raw.mqtt as Record<string, unknown>).embedded = { users: [{ username: 'gw', password: { file: 'missing' } }] };
  assert.throws(() => configFromObject(raw, 'test.yaml', dir), /mqtt\.embedded\.users\[0\]\.password: cannot read secret file .*missing \(ENOENT\)/);
});

test('the logger censors fields named for a secret (second line of defence)', { timeout: 30000 }, () => {
  let out = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((out += chunk.toString()), cb()) });
  const log = createLogger({ level: 'info' }, sink);
  log.info({ password: SECRET, mqtt: { password: SECRET, username: 'line3' }, a: { b: { apiKey: SECRET } }, keyFile: '/etc/k.pem' }, 'probe');
  const line = JSON.parse(out) as { mqtt: { username: string }; keyFile: string };
  assert.ok(!out.includes(SECRET), out);
  assert.equal(line.mqtt.username, 'line3');
  assert.equal(line.keyFile, '/etc/k.pem');
});
