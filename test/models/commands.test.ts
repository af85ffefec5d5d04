// The engineer's release tools as a real CLI: keygen writes a key pair (private key 0600, never
// overwritten); sign seals a version folder so that an agent trusting the key accepts it, and any
// change after signing is refused.

import assert from 'node:assert/strict';
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EdgeError } from '../../agent/errors.js';
import { readManifest } from '../../models/manifest.js';
import { checkRelease, releaseSchema } from '../../models/release.js';
import { parsePublicKey } from '../../models/sign.js';
import { demoModelDir, runCli, tempDir } from '../helpers/parts.js';

test('keygen, then sign: the agent-side check accepts the release, and refuses it once touched', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const gen = await runCli(['model', 'keygen', '--out', dir, '--name', 'anna']);
  assert.equal(gen.code, 0, gen.stderr);
  const keyId = /key id ([0-9a-f]{16})/.exec(gen.stdout)?.[1];
  assert.ok(keyId, gen.stdout);
  assert.equal(statSync(join(dir, 'anna.key')).mode & 0o777, 0o600);
  const again = await runCli(['model', 'keygen', '--out', dir, '--name', 'anna']);
  assert.equal(again.code, 64);
  assert.match(again.stderr, /anna\.key exists; .*never overwritten/);

  const release = join(dir, 'bearing-health-1.0.0');
  cpSync(demoModelDir, release, { recursive: true });
  const signed = await runCli(['model', 'sign', release, '--key', join(dir, 'anna.key'), '--expires', '30d']);
  assert.equal(signed.code, 0, signed.stderr);
  assert.match(signed.stdout, new RegExp(`^signed bearing-health 1\\.0\\.0 \\(model\\.onnx \\d+ bytes\\) with key ${keyId}, expires 20`));

  const manifestBytes = readFileSync(join(release, 'manifest.json'));
  const manifest = JSON.parse(manifestBytes.toString()) as { release: unknown; file: { sha256: string } };
  const rel = releaseSchema.parse(manifest.release);
  assert.equal(rel.files[0]?.sha256, manifest.file.sha256);
  const pub = parsePublicKey(readFileSync(join(dir, 'anna.pub'), 'utf8'));
  assert.ok('key' in pub);
  const policy = { keys: new Map([[pub.keyId, pub.key]]), allowUnsigned: false, highestTrusted: null, clockSlackMs: 0, now: Date.now() };
  const signature = readFileSync(join(release, 'signature.json'), 'utf8');
  assert.deepEqual(checkRelease(release, '1.0.0', manifestBytes, rel, signature, policy), { signedBy: keyId });

  // A sealed manifest is still a valid inference contract, its release block included.
  assert.deepEqual(readManifest(release).release?.files, rel.files);
  // Touching the manifest after signing (a hand edit) breaks the signature.
  const edited = Buffer.from(manifestBytes.toString().replace('"latencyBudgetMs": 20', '"latencyBudgetMs": 200'));
  assert.notDeepEqual(edited, manifestBytes, 'the edit changed something');
  assert.throws(() => checkRelease(release, '1.0.0', edited, rel, signature, policy), (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_ERR_RELEASE_SIGNATURE');
});

test('sign refuses a folder whose model is not the one its manifest names, and bad arguments', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  await runCli(['model', 'keygen', '--out', dir]);
  const release = join(dir, 'r');
  cpSync(demoModelDir, release, { recursive: true });
  writeFileSync(join(release, 'model.onnx'), Buffer.from('another model'));
  const r = await runCli(['model', 'sign', release, '--key', join(dir, 'release-signing.key')]);
  assert.equal(r.code, 65, r.stderr);
  assert.match(r.stderr, /EDGE_ERR_RELEASE_HASH: model\.onnx: sha256 is [0-9a-f]{64}, manifest\.json's file\.sha256 says/);
  assert.match((await runCli(['model', 'sign', release, '--key', join(dir, 'release-signing.pub')])).stderr, /is not an ed25519 private key/);
  assert.equal((await runCli(['model', 'sign', release])).code, 64);
  assert.match((await runCli(['model', 'sign', release, '--key', join(dir, 'release-signing.key'), '--expires', 'soon'])).stderr, /--expires: got "soon"/);
  assert.match((await runCli(['model', 'frobnicate'])).stderr, /unknown model command "frobnicate"/);
  for (const cmd of [[], ['keygen'], ['sign']]) {
    const help = await runCli(['model', ...cmd, '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: edge-agent model/);
  }
});
