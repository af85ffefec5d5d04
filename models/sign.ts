// Release signatures: takes a manifest's exact bytes and an engineer's ed25519 key (node:crypto);
// gives a detached signature, and checks one against the keys an agent trusts. A key is named by its
// key id: the first 16 hex digits of the sha256 of its public key (SPKI DER), so a config lists
// `keyId: PEM` pairs and a signature names the key that made it.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/** The detached signature stored beside a release's manifest.json, as signature.json. */
export const signatureSchema = z.strictObject({
  keyId: z.string().regex(/^[0-9a-f]{16}$/, '16 lower-case hex digits'),
  /** base64 of the ed25519 signature over manifest.json's exact bytes. */
  ed25519: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'a base64 ed25519 signature (88 characters)'),
});

export type Signature = z.infer<typeof signatureSchema>;

export interface KeyPairPem {
  keyId: string;
  publicKeyPem: string;
  privateKeyPem: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function generateKeyPair(): KeyPairPem {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Parses a PEM public key; gives the key and its id, or what is wrong with it. */
export function parsePublicKey(pem: string): { key: KeyObject; keyId: string } | { problem: string } {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') return { problem: `a ${key.asymmetricKeyType ?? 'unknown'} key; releases are signed with ed25519` };
    return { key, keyId: keyIdOf(key) };
  } catch (err) {
    return { problem: `not a PEM public key (${(err as Error).message})` };
  }
}

/** Parses a PEM private key; throws when it is not an ed25519 private key. */
export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
  return key;
}

export function signBytes(bytes: Uint8Array, privateKey: string | KeyObject): Signature {
  const key = typeof privateKey === 'string' ? parsePrivateKey(privateKey) : privateKey;
  return { keyId: keyIdOf(createPublicKey(key)), ed25519: sign(null, bytes, key).toString('base64') };
}

/** Checks a signature over `bytes` against the trusted keys; gives null when it holds, else why not. */
export function signatureProblem(bytes: Uint8Array, signature: Signature, trusted: ReadonlyMap<string, KeyObject>): string | null {
  const key = trusted.get(signature.keyId);
  if (!key) return `signed with key ${signature.keyId}, which is not among the trusted keys (${[...trusted.keys()].join(', ') || 'none configured'})`;
  const ok = verify(null, bytes, key, Buffer.from(signature.ed25519, 'base64'));
  return ok ? null : `the ed25519 signature by key ${signature.keyId} does not match manifest.json's bytes`;
}
