// A secret given as a systemd credential ({ credential: NAME }): read from $CREDENTIALS_DIRECTORY/NAME,
// which systemd fills from LoadCredential=NAME:PATH; a clear config error (exit 78) naming the key when
// the variable, the file or its content is missing, never the value.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, runCli, tempDir, writeConfig } from '../helpers/parts.js';

const SECRET = 'cred-7531902468';

function config(dir: string, password: unknown): string {
  const raw = agentConfig({ url: 'mqtt://127.0.0.1:1883', dbPath: join(dir, 'a.db') });
  (raw.mqtt as Record<string, unknown>).username = 'line3';
  (raw.mqtt as Record<string, unknown>).password = password;
  return writeConfig(dir, raw);
}

test('{ credential: NAME } reads $CREDENTIALS_DIRECTORY/NAME; a missing variable, file or value is a config error naming the key', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const creds = join(dir, 'credentials');
  mkdirSync(creds);
  writeFileSync(join(creds, 'mqtt-password'), `${SECRET}\n`);
  writeFileSync(join(creds, 'empty'), '');
  const env = (extra: NodeJS.ProcessEnv) => {
    const e = { ...process.env, ...extra };
    if (!('CREDENTIALS_DIRECTORY' in extra)) delete e.CREDENTIALS_DIRECTORY;
    return e;
  };

  const ok = await runCli(['config', 'check', config(dir, { credential: 'mqtt-password' })], env({ CREDENTIALS_DIRECTORY: creds }));
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!(ok.stdout + ok.stderr).includes(SECRET));

  const noVar = await runCli(['config', 'check', config(dir, { credential: 'mqtt-password' })], env({}));
  assert.equal(noVar.code, 78, noVar.stderr);
  assert.match(noVar.stderr, /mqtt\.password: credential mqtt-password: CREDENTIALS_DIRECTORY is not set/);

  const noFile = await runCli(['config', 'check', config(dir, { credential: 'broker-pass' })], env({ CREDENTIALS_DIRECTORY: creds }));
  assert.equal(noFile.code, 78, noFile.stderr);
  assert.match(noFile.stderr, /mqtt\.password: credential broker-pass: cannot read secret file .*broker-pass \(ENOENT\) \(see LoadCredential=broker-pass:PATH/);

  const empty = await runCli(['config', 'check', config(dir, { credential: 'empty' })], env({ CREDENTIALS_DIRECTORY: creds }));
  assert.equal(empty.code, 78, empty.stderr);
  assert.match(empty.stderr, /mqtt\.password: credential empty is empty/);

  // A name is a file name in the credentials folder, never a path out of it.
  const path = await runCli(['config', 'check', config(dir, { credential: '../credentials/mqtt-password' })], env({ CREDENTIALS_DIRECTORY: creds }));
  assert.equal(path.code, 78, path.stderr);
  assert.match(path.stderr, /mqtt\.password/);
  for (const r of [noVar, noFile, empty, path]) assert.ok(!(r.stdout + r.stderr).includes(SECRET), r.stderr);
});
