// Install: takes a candidate version folder (a signed release, or the seed folder the config names)
// and the model versions on disk; gives the installed version's folder under versions/. The candidate's
// files are first copied into a staging folder (regular files only, capped), the copy is verified in a
// child process, and only then moved into place: what was verified is exactly what serves.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FrozenConfig, ModelSpec } from '../agent/config.js';
import { EdgeError } from '../agent/errors.js';
import { MANIFEST_LIMITS, readManifest } from './manifest.js';
import { compareVersions } from './semver.js';
import { readVersionFile } from './read.js';
import { verifyInChild, type Verified } from './verify.js';
import type { ModelVersions } from './versions.js';


export interface InstallPolicy {
  keys: string[];
  allowUnsigned: boolean;
  clockSlackMs: number;
  maxModelBytes: number;
  batchRows: number;
  verifyDeadlineMs: number;
}

/**
 * Test-only fault injection: EDGE_AGENT_TEST_KILL_AT_INSTALL_STEP=staged|verified|committed|pointer kills
 * the process with SIGKILL at that step of an install, as a power cut would. Unset in production.
 */
export function testKillPoint(step: 'staged' | 'verified' | 'committed' | 'pointer'): void {
  if (process.env.EDGE_AGENT_TEST_KILL_AT_INSTALL_STEP === step) process.kill(process.pid, 'SIGKILL');
}

/** What a candidate version of one of the agent's models must pass, from the config. */
export function installPolicy(config: FrozenConfig, model: Pick<ModelSpec, 'allowUnsigned'>): InstallPolicy {
  return {
    keys: config.model.trust.keyFiles.map((f) => readFileSync(f, 'utf8')),
    allowUnsigned: model.allowUnsigned,
    clockSlackMs: config.model.trust.clockSlackMs,
    maxModelBytes: config.model.maxModelBytes,
    batchRows: config.inference.maxBatchRows,
    verifyDeadlineMs: config.model.verifyDeadlineMs,
  };
}

export interface Installed extends Verified {
  dir: string;
  /** The version was installed before: nothing was copied. */
  already: boolean;
}

/**
 * `expectName`: the model this agent serves (null: any); a release for another model is refused.
 * `verify: false` is for the seed folder the config names: the agent loads it at once in its own worker,
 * which runs the same contract and golden checks, as it always has.
 */
export async function installVersion(versions: ModelVersions, candidate: string, policy: InstallPolicy, expectName: string | null, verify = true, trackTrust = true): Promise<Installed> {
  const manifest = readManifest(candidate);
  if (expectName !== null && manifest.name !== expectName) {
    throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${candidate} is a release of ${manifest.name}; this agent serves ${expectName}`);
  }
  const target = versions.versionDir(manifest.name, manifest.version);
  const state = versions.state(manifest.name);
  // The seed, installed before: nothing to copy. A candidate is verified even when its version is
  // installed already: what it claims to be is only known once it passed.
  if (!verify && existsSync(target)) return { name: manifest.name, version: manifest.version, signedBy: null, latencyP99Ms: 0, dir: target, already: true };
  const files = ['manifest.json', ...(existsSync(join(candidate, 'signature.json')) ? ['signature.json'] : []), ...new Set([manifest.file.name, ...(manifest.release?.files ?? []).map((f) => f.name)])];
  const staging = versions.incoming();
  try {
    for (const f of files) {
      // The seed from the config is a model folder like any the agent loads: its errors are the model's.
      const [cap, code] = f === 'manifest.json' ? [MANIFEST_LIMITS.bytes, 'EDGE_ERR_MANIFEST' as const]
        : f === 'signature.json' ? [64 * 1024, 'EDGE_ERR_RELEASE_SIGNATURE' as const]
          : [policy.maxModelBytes, verify ? 'EDGE_ERR_RELEASE_FILES' as const : 'EDGE_ERR_MODEL_FILE' as const];
      writeFileSync(join(staging, f), readVersionFile(candidate, f, cap, code));
    }
    if (verify) testKillPoint('staged');
    const verified = verify
      ? await verifyInChild(
          { dir: staging, keys: policy.keys, allowUnsigned: policy.allowUnsigned, highestTrusted: state.highestTrusted, clockSlackMs: policy.clockSlackMs, maxModelBytes: policy.maxModelBytes, batchRows: policy.batchRows },
          policy.verifyDeadlineMs,
        ).catch((err: unknown) => {
          // Name the folder the engineer gave, not the staging copy that was checked.
          if (err instanceof Error) err.message = err.message.split(staging).join(candidate);
          throw err;
        })
      : { name: manifest.name, version: manifest.version, signedBy: null, latencyP99Ms: 0 };
    if (verify) testKillPoint('verified');
    if (existsSync(target)) return { ...verified, dir: target, already: true };
    const dir = versions.commit(manifest.name, manifest.version, staging);
    if (verify) testKillPoint('committed');
    if (trackTrust && (!state.highestTrusted || compareVersions(manifest.version, state.highestTrusted) > 0)) versions.setHighestTrusted(manifest.name, manifest.version);
    return { ...verified, dir, already: false };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * A model's dir in the config is the version a fresh agent starts with: installed when missing, activated
 * only when no version is active yet. Later versions come with `edge-agent model install` (or pushes).
 * Gives the model's name.
 */
export async function seedVersion(versions: ModelVersions, model: Pick<ModelSpec, 'dir' | 'keys'>, policy: InstallPolicy, record: (e: { model: string; version: string | null; event: string; reason: string }) => void): Promise<string> {
  const seed = await installVersion(versions, model.dir, policy, null, false);
  if (versions.state(seed.name).active === null) {
    const reason = `${model.keys.dir} in the config: ${model.dir}`;
    versions.activate(seed.name, seed.version, reason);
    record({ model: seed.name, version: seed.version, event: 'activated', reason });
  }
  return seed.name;
}

/** The version a candidate claims, for the record of its refusal (null when its manifest is unreadable). */
export function candidateVersion(candidate: string): string | null {
  try {
    return readManifest(candidate).version;
  } catch {
    return null;
  }
}
