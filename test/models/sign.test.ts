// Release signatures: ed25519 over manifest.json's exact bytes, checked against trusted keys by key id.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { generateKeyPair, parsePublicKey, signatureProblem, signatureSchema, signBytes } from '../../models/sign.js';

test('a signature holds for the exact bytes and the trusted key, and for nothing else', { timeout: 10_000 }, () => {
  const engineer = generateKeyPair();
  const other = generateKeyPair();
  const bytes = Buffer.from('{"name":"bearing-health","version":"1.1.0"}\n');
  const sig = signBytes(bytes, engineer.privateKeyPem);
  assert.equal(sig.keyId, engineer.keyId);
  assert.ok(signatureSchema.safeParse(sig).success);
  const parsed = parsePublicKey(engineer.publicKeyPem);
  assert.ok('key' in parsed);
  assert.equal(parsed.keyId, engineer.keyId);
  const trusted = new Map([[parsed.keyId, parsed.key]]);
  assert.equal(signatureProblem(bytes, sig, trusted), null);
  // One byte more (a trailing newline added by an editor) breaks it.
  assert.match(signatureProblem(Buffer.concat([bytes, Buffer.from('\n')]), sig, trusted) ?? '', /does not match manifest\.json's bytes/);
  // A signature by a key the agent does not trust names that key.
  const foreign = signBytes(bytes, other.privateKeyPem);
  assert.match(signatureProblem(bytes, foreign, trusted) ?? '', new RegExp(`key ${other.keyId}, which is not among the trusted keys \\(${engineer.keyId}\\)`));
  // A signature claiming the trusted key id but made by another key.
  assert.match(signatureProblem(bytes, { keyId: engineer.keyId, ed25519: foreign.ed25519 }, trusted) ?? '', /does not match/);
});

test('keys that are not ed25519 public keys are named as such', { timeout: 10_000 }, () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  assert.deepEqual(parsePublicKey(rsa), { problem: 'a rsa key; releases are signed with ed25519' });
  assert.match((parsePublicKey('hello') as { problem: string }).problem, /^not a PEM public key/);
  assert.equal(signatureSchema.safeParse({ keyId: 'XYZ', ed25519: 'abc' }).success, false);
});
