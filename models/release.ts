// Releases: takes a version folder as an engineer ships it (manifest.json, the files it lists,
// signature.json) and the agent's trust policy; gives the release's identity, or the reason it is
// refused. Checks only what needs no model runtime — files, sizes, hashes, signature, version order,
// expiry — so that nothing unverified is ever handed to onnxruntime.
//
// The signed document is manifest.json's exact bytes; its `release` block (the files with their
// sha256 and size, an expiry, an explicit rollback flag) is therefore signed too.

import { createHash, type KeyObject } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { readVersionFile } from './read.js';
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

/** Reads a listed file (a regular file inside the folder, never more than its declared size); gives its sha256. */
function hashListed(dir: string, name: string, bytes: number): string {
  const data = readVersionFile(dir, name, bytes, 'EDGE_ERR_RELEASE_FILES');
  if (data.length !== bytes) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${name} is ${data.length} bytes, the manifest says ${bytes}`);
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Checks a release folder against the policy. `manifestBytes` are manifest.json's exact bytes (already
 * read under a size cap), `release` its parsed release block, `signatureText` signature.json's text or
 * null when absent. Throws an EdgeError (EDGE_ERR_RELEASE_*) naming what is wrong.
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
    if (!listed.has(entry)) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${entry} is in the release folder but not in manifest.json's release.files`);
    if (!lstatSync(join(dir, entry)).isFile()) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${entry} is not a regular file`);
  }
  let signedBy: string | null = null;
  if (signatureText === null) {
    if (!policy.allowUnsigned) throw new EdgeError('EDGE_ERR_RELEASE_UNSIGNED', 'the release has no signature.json and this model does not accept unsigned releases');
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(signatureText);
    } catch (err) {
      throw new EdgeError('EDGE_ERR_RELEASE_SIGNATURE', `signature.json is not JSON (${(err as Error).message})`);
    }
    const sig = signatureSchema.safeParse(parsed);
    if (!sig.success) throw new EdgeError('EDGE_ERR_RELEASE_SIGNATURE', `signature.json: ${sig.error.issues.map((i) => `${i.path.join('.') || '(top)'} ${i.message}`).join('; ')}`);
    const problem = signatureProblem(manifestBytes, sig.data, policy.keys);
    if (problem) throw new EdgeError('EDGE_ERR_RELEASE_SIGNATURE', problem);
    signedBy = sig.data.keyId;
  }
  if (!isSemver(version)) throw new EdgeError('EDGE_ERR_RELEASE_DOWNGRADE', `version "${version}" is not a semantic version (MAJOR.MINOR.PATCH), so it cannot be ordered`);
  if (policy.highestTrusted && compareVersions(version, policy.highestTrusted) < 0 && !release.rollback) {
    throw new EdgeError('EDGE_ERR_RELEASE_DOWNGRADE', `version ${version} is below ${policy.highestTrusted}, the highest this agent has trusted; a rollback must be signed as one (release.rollback: true)`);
  }
  if (release.expiresAt !== undefined && policy.now > Date.parse(release.expiresAt) + policy.clockSlackMs) {
    throw new EdgeError('EDGE_ERR_RELEASE_EXPIRED', `the release expired at ${release.expiresAt} (this agent's clock: ${new Date(policy.now).toISOString()}, slack ${policy.clockSlackMs} ms)`);
  }
  for (const f of release.files) {
    const sha256 = hashListed(dir, f.name, f.bytes);
    if (sha256 !== f.sha256) throw new EdgeError('EDGE_ERR_RELEASE_HASH', `${f.name}: sha256 is ${sha256}, the manifest says ${f.sha256}`);
  }
  return { signedBy };
}
