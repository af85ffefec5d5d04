// Test releases: takes a folder; gives an engineer's key pair (`edge-agent model keygen`) and signed
// copies of the demo model as other versions (`edge-agent model sign`), made with the real CLI.

import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoModelDir, runCli } from './parts.js';

/** A key pair DIR/NAME.key, DIR/NAME.pub. */
export async function keygen(dir: string, name = 'k'): Promise<{ key: string; pub: string }> {
  const r = await runCli(['model', 'keygen', '--out', dir, '--name', name]);
  assert.equal(r.code, 0, r.stderr);
  return { key: join(dir, `${name}.key`), pub: join(dir, `${name}.pub`) };
}

/** A copy of the demo model as `version` in DIR/releases/VERSION[-n], changed by `change`, signed with `key`. */
export async function signedRelease(
  dir: string, version: string, key: string, change: (m: Record<string, unknown>) => void = () => undefined, signArgs: string[] = [],
): Promise<string> {
  const out = join(dir, 'releases', `${version}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(demoModelDir, out, { recursive: true });
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  m.version = version;
  // These releases test the lifecycle, not this machine's speed: a budget a busy machine cannot break
  // (the demo's 20 ms is met by ~1 ms batches on an idle PC). A test of the budget sets its own in `change`.
  m.latencyBudgetMs = 1000;
  change(m);
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(m, null, 2));
  const r = await runCli(['model', 'sign', out, '--key', key, ...signArgs]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}
