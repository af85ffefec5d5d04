// Releases: takes a version folder as an engineer ships it (manifest.json, the files it lists,
// signature.json) and the agent's trust policy; gives the release's identity, or the reason it is
// refused. Checks only what needs no model runtime — files, sizes, hashes, signature, version order,
// expiry — so that nothing unverified is ever handed to onnxruntime.
//
// The signed document is manifest.json's exact bytes; its `release` block (the files with their
// sha256 and size, an expiry, an explicit rollback flag) is therefore signed too.

import { createHash, type KeyObject } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { compareVersions, isSemver } from './semver.js';
import { signatureProblem, signatureSchema } from './sign.js';

export const releaseSchema = z.strictObject({
  /** Every file of the release but manifest.json and signature.json, with its sha256 and size. */
  files: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a plain file name inside the version folder'),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
        bytes: z.number().int().nonnegative(),
      }),
    )
    .min(1)
    .max(16),
  /** After this instant (ISO 8601) the release is refused, give or take the agent's clock slack. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Signed as a rollback: may be installed below the highest version this agent ever trusted. */
  rollback: z.boolean().default(false),
});

export type Release = z.infer<typeof releaseSchema>;

export type ReleaseRefusal =
  | 'EDGE_ERR_RELEASE_FILES'
  | 'EDGE_ERR_RELEASE_HASH'
  | 'EDGE_ERR_RELEASE_UNSIGNED'
  | 'EDGE_ERR_RELEASE_SIGNATURE'
  | 'EDGE_ERR_RELEASE_DOWNGRADE'
  | 'EDGE_ERR_RELEASE_EXPIRED';

export class ReleaseRefused extends Error {
  constructor(readonly code: ReleaseRefusal, message: string) {
    super(message);
    this.name = 'ReleaseRefused';
  }
}

export interface TrustPolicy {
  /** Trusted public keys by key id. */
  keys: ReadonlyMap<string, KeyObject>;
  /** Releases without signature.json are accepted (only where the config says so, per model). */
  allowUnsigned: boolean;
  /** The highest version ever trusted for this model, or null. */
  highestTrusted: string | null;
  /** How far the agent's clock may be off when checking expiresAt. */
  clockSlackMs: number;
  now: number;
}

const CHUNK = 1 << 20;

/**
 * Reads a regular file inside `dir` without following links or blocking on a FIFO, refusing it when
 * it is not `bytes` long; gives its sha256 (and its bytes when `keep`).
 */
export function hashFile(dir: string, name: string, bytes: number, keep = false): { sha256: string; data?: Buffer } {
  const path = join(dir, name);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ReleaseRefused('EDGE_ERR_RELEASE_FILES', `${name} is not a regular file`);
    if (st.size !== bytes) throw new ReleaseRefused('EDGE_ERR_RELEASE_FILES', `${name} is ${st.size} bytes, the manifest says ${bytes}`);
    const hash = createHash('sha256');
    const data = keep ? Buffer.allocUnsafe(bytes) : null;
    const buf = data ?? Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, bytes)));
    let done = 0;
    while (done < bytes) {
      const n = readSync(fd, buf, data ? done : 0, Math.min(CHUNK, bytes - done), done);
      if (n === 0) throw new ReleaseRefused('EDGE_ERR_RELEASE_FILES', `${name} ended at ${done} of ${bytes} bytes`);
      hash.update(buf.subarray(data ? done : 0, (data ? done : 0) + n));
      done += n;
    }
    return data ? { sha256: hash.digest('hex'), data } : { sha256: hash.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks a release folder against the policy. `manifestBytes` are manifest.json's exact bytes (already
 * read under a size cap), `release` its parsed release block, `signatureText` signature.json's text or
 * null when absent. Throws ReleaseRefused naming what is wrong.
 */
export function checkRelease(
  dir: string,
  version: string,
  manifestBytes: Uint8Array,
  release: Release,
  signatureText: string | null,
  policy: TrustPolicy,
): { signedBy: string | null } {
  // Only what the release lists may be in the folder: no stray file can ride along unverified.
  const listed = new Set(['manifest.json', 'signature.json', ...release.files.map((f) => f.name)]);
  for (const entry of readdirSync(dir)) {
    if (!listed.has(entry)) throw new ReleaseRefused('EDGE_ERR_RELEASE_FILES', `${entry} is in the release folder but not in manifest.json's release.files`);
    if (!lstatSync(join(dir, entry)).isFile()) throw new ReleaseRefused('EDGE_ERR_RELEASE_FILES', `${entry} is not a regular file`);
  }
  let signedBy: string | null = null;
  if (signatureText === null) {
    if (!policy.allowUnsigned) throw new ReleaseRefused('EDGE_ERR_RELEASE_UNSIGNED', 'the release has no signature.json and this model does not accept unsigned releases');
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(signatureText);
    } catch (err) {
      throw new ReleaseRefused('EDGE_ERR_RELEASE_SIGNATURE', `signature.json is not JSON (${(err as Error).message})`);
    }
    const sig = signatureSchema.safeParse(parsed);
    if (!sig.success) throw new ReleaseRefused('EDGE_ERR_RELEASE_SIGNATURE', `signature.json: ${sig.error.issues.map((i) => `${i.path.join('.') || '(top)'} ${i.message}`).join('; ')}`);
    const problem = signatureProblem(manifestBytes, sig.data, policy.keys);
    if (problem) throw new ReleaseRefused('EDGE_ERR_RELEASE_SIGNATURE', problem);
    signedBy = sig.data.keyId;
  }
  if (!isSemver(version)) throw new ReleaseRefused('EDGE_ERR_RELEASE_DOWNGRADE', `version "${version}" is not a semantic version (MAJOR.MINOR.PATCH), so it cannot be ordered`);
  if (policy.highestTrusted && compareVersions(version, policy.highestTrusted) < 0 && !release.rollback) {
    throw new ReleaseRefused('EDGE_ERR_RELEASE_DOWNGRADE', `version ${version} is below ${policy.highestTrusted}, the highest this agent has trusted; a rollback must be signed as one (release.rollback: true)`);
  }
  if (release.expiresAt !== undefined && policy.now > Date.parse(release.expiresAt) + policy.clockSlackMs) {
    throw new ReleaseRefused('EDGE_ERR_RELEASE_EXPIRED', `the release expired at ${release.expiresAt} (this agent's clock: ${new Date(policy.now).toISOString()}, slack ${policy.clockSlackMs} ms)`);
  }
  for (const f of release.files) {
    const { sha256 } = hashFile(dir, f.name, f.bytes);
    if (sha256 !== f.sha256) throw new ReleaseRefused('EDGE_ERR_RELEASE_HASH', `${f.name}: sha256 is ${sha256}, the manifest says ${f.sha256}`);
  }
  return { signedBy };
}
