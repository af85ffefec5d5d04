// Release checks that need no model runtime: only listed regular files, sizes and hashes, the ed25519
// signature over manifest.json's exact bytes, version order with signed rollbacks, and expiry with slack.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EdgeError } from '../../agent/errors.js';
import { checkRelease, type Release, type TrustPolicy } from '../../models/release.js';
import { generateKeyPair, parsePublicKey, signBytes } from '../../models/sign.js';
import { tempDir } from '../helpers/parts.js';

const engineer = generateKeyPair();
const stranger = generateKeyPair();
const trusted = new Map([[engineer.keyId, (parsePublicKey(engineer.publicKeyPem) as { key: import('node:crypto').KeyObject }).key]]);
const policy = (over: Partial<TrustPolicy> = {}): TrustPolicy => ({ keys: trusted, allowUnsigned: false, highestTrusted: null, clockSlackMs: 300_000, now: Date.now(), ...over });

function makeRelease(root: string, name: string, over: Partial<Release> = {}, key = engineer.privateKeyPem) {
  const dir = join(root, name);
  mkdirSync(dir);
  const model = Buffer.from('not really onnx, but bytes with a hash');
  writeFileSync(join(dir, 'model.onnx'), model);
  const release: Release = { files: [{ name: 'model.onnx', sha256: createHash('sha256').update(model).digest('hex'), bytes: model.length }], rollback: false, ...over };
  const manifestBytes = Buffer.from(`${JSON.stringify({ name: 'bearing-health', version: '1.1.0', release })}\n`);
  writeFileSync(join(dir, 'manifest.json'), manifestBytes);
  const signature = JSON.stringify(signBytes(manifestBytes, key));
  writeFileSync(join(dir, 'signature.json'), signature);
  return { dir, manifestBytes, release, signature };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EdgeError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return 'accepted';
}

test('a signed release with the right files is accepted; each defect is refused with its code', { timeout: 20_000 }, (t) => {
  const root = tempDir(t);
  const ok = makeRelease(root, 'ok');
  assert.deepEqual(checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, ok.signature, policy()), { signedBy: engineer.keyId });

  assert.match(refusal(() => checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, null, policy())), /^EDGE_ERR_RELEASE_UNSIGNED: /);
  assert.deepEqual(checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, null, policy({ allowUnsigned: true })), { signedBy: null });

  const foreign = makeRelease(root, 'foreign', {}, stranger.privateKeyPem);
  assert.match(refusal(() => checkRelease(foreign.dir, '1.1.0', foreign.manifestBytes, foreign.release, foreign.signature, policy())), new RegExp(`^EDGE_ERR_RELEASE_SIGNATURE: signed with key ${stranger.keyId}, which is not among the trusted keys`));
  const edited = Buffer.from(ok.manifestBytes.toString().replace('1.1.0', '1.2.0'));
  assert.match(refusal(() => checkRelease(ok.dir, '1.2.0', edited, ok.release, ok.signature, policy())), /^EDGE_ERR_RELEASE_SIGNATURE: .*does not match/);
  assert.match(refusal(() => checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, '{"keyId":1}', policy())), /^EDGE_ERR_RELEASE_SIGNATURE: signature\.json: keyId/);

  const tampered = makeRelease(root, 'tampered');
  writeFileSync(join(tampered.dir, 'model.onnx'), Buffer.from('NOT really onnx, but bytes with a hash'));
  assert.match(refusal(() => checkRelease(tampered.dir, '1.1.0', tampered.manifestBytes, tampered.release, tampered.signature, policy())), /^EDGE_ERR_RELEASE_HASH: model\.onnx: sha256 is [0-9a-f]{64}, the manifest says/);
  const short = makeRelease(root, 'short');
  writeFileSync(join(short.dir, 'model.onnx'), Buffer.from('short'));
  assert.match(refusal(() => checkRelease(short.dir, '1.1.0', short.manifestBytes, short.release, short.signature, policy())), /^EDGE_ERR_RELEASE_FILES: model\.onnx is 5 bytes, the manifest says 38/);
  const extra = makeRelease(root, 'extra');
  writeFileSync(join(extra.dir, 'model.onnx.data'), Buffer.alloc(4));
  assert.match(refusal(() => checkRelease(extra.dir, '1.1.0', extra.manifestBytes, extra.release, extra.signature, policy())), /^EDGE_ERR_RELEASE_FILES: model\.onnx\.data is in the release folder but not in manifest\.json's release\.files/);
});

test('links and FIFOs in a release are refused without being followed or blocking', { timeout: 20_000 }, (t) => {
  const root = tempDir(t);
  const link = makeRelease(root, 'link');
  execFileSync('rm', [join(link.dir, 'model.onnx')]);
  symlinkSync('/dev/zero', join(link.dir, 'model.onnx'));
  assert.match(refusal(() => checkRelease(link.dir, '1.1.0', link.manifestBytes, link.release, link.signature, policy())), /^EDGE_ERR_RELEASE_FILES: model\.onnx is not a regular file/);
  const fifo = makeRelease(root, 'fifo');
  execFileSync('rm', [join(fifo.dir, 'model.onnx')]);
  execFileSync('mkfifo', [join(fifo.dir, 'model.onnx')]);
  assert.match(refusal(() => checkRelease(fifo.dir, '1.1.0', fifo.manifestBytes, fifo.release, fifo.signature, policy())), /^EDGE_ERR_RELEASE_FILES: model\.onnx is not a regular file/);
});

test('lower versions need a signed rollback flag; expiry allows the configured clock slack', { timeout: 20_000 }, (t) => {
  const root = tempDir(t);
  const ok = makeRelease(root, 'ok');
  assert.match(refusal(() => checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, ok.signature, policy({ highestTrusted: '1.2.0' }))), /^EDGE_ERR_RELEASE_DOWNGRADE: version 1\.1\.0 is below 1\.2\.0/);
  assert.equal(refusal(() => checkRelease(ok.dir, '1.1.0', ok.manifestBytes, ok.release, ok.signature, policy({ highestTrusted: '1.1.0' }))), 'accepted', 'the same version again');
  const back = makeRelease(root, 'rollback', { rollback: true });
  assert.equal(refusal(() => checkRelease(back.dir, '1.1.0', back.manifestBytes, back.release, back.signature, policy({ highestTrusted: '1.2.0' }))), 'accepted');
  assert.match(refusal(() => checkRelease(ok.dir, 'nightly', ok.manifestBytes, ok.release, ok.signature, policy())), /^EDGE_ERR_RELEASE_DOWNGRADE: version "nightly" is not a semantic version/);

  const expiring = makeRelease(root, 'expiring', { expiresAt: '2026-06-01T00:00:00Z' });
  const at = Date.parse('2026-06-01T00:00:00Z');
  const check = (now: number) => refusal(() => checkRelease(expiring.dir, '1.1.0', expiring.manifestBytes, expiring.release, expiring.signature, policy({ now })));
  assert.equal(check(at + 299_000), 'accepted', 'within the clock slack');
  assert.match(check(at + 301_000), /^EDGE_ERR_RELEASE_EXPIRED: the release expired at 2026-06-01T00:00:00Z/);
});
