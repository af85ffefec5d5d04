// `edge-agent model install` refusals that need the store's state or the verification process, with
// no agent running: a model slower than its budget, a verification that overruns its deadline, a
// release of another model, a version below the highest trusted unless signed as a rollback.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { agentConfig, demoModelDir, runCli, tempDir, writeConfig } from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';

async function setup(t: TestContext, model: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const { key } = await keygen(dir);
  const config = writeConfig(dir, agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(dir, 'agent.db'), model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, ...model } }));
  const release = (version: string, change: (m: Record<string, unknown>) => void = () => undefined, signArgs: string[] = []) => signedRelease(dir, version, key, change, signArgs);
  return { config, release };
}

test('a model slower on this PC than its latency budget is refused', { timeout: 120_000 }, async (t) => {
  const { config, release } = await setup(t);
  const r = await runCli(['model', 'install', await release('1.1.0', (m) => (m.latencyBudgetMs = 0.0001)), '--config', config]);
  assert.equal(r.code, 65, r.stderr);
  assert.match(r.stderr, /EDGE_ERR_MODEL_LATENCY: bearing-health 1\.1\.0: a batch of 256 rows takes [\d.]+ ms \(p99 of 30\) on this machine; the manifest's budget is 0\.0001 ms/);
});

test('a verification that does not finish within model.verifyDeadlineMs is stopped and refused', { timeout: 120_000 }, async (t) => {
  const { config, release } = await setup(t, { verifyDeadlineMs: 3000 });
  const rel = await release('1.1.0');
  // The verification's model worker blocks at its second run (after the golden check), as a stuck model would.
  const r = await runCli(['model', 'install', rel, '--config', config], { ...process.env, EDGE_AGENT_TEST_WORKER_STUCK_AFTER: '1' });
  assert.equal(r.code, 65, r.stderr);
  assert.match(r.stderr, /EDGE_ERR_MODEL_VERIFY: .*verification did not finish within 3000 ms/);
});

test('a release of another model, and a lower version unless signed as a rollback, are refused', { timeout: 120_000 }, async (t) => {
  const { config, release } = await setup(t);
  const other = await runCli(['model', 'install', await release('1.1.0', (m) => (m.name = 'spindle-rul')), '--config', config]);
  assert.equal(other.code, 65);
  assert.match(other.stderr, /is a release of spindle-rul; this agent serves bearing-health/);
  const v2 = await runCli(['model', 'install', await release('2.0.0'), '--config', config]);
  assert.equal(v2.code, 0, v2.stderr);
  const lower = await runCli(['model', 'install', await release('1.5.0'), '--config', config]);
  assert.equal(lower.code, 65);
  assert.match(lower.stderr, /EDGE_ERR_RELEASE_DOWNGRADE: version 1\.5\.0 is below 2\.0\.0, the highest this agent has trusted/);
  const signedBack = await runCli(['model', 'install', await release('1.5.0', () => undefined, ['--rollback']), '--config', config]);
  assert.equal(signedBack.code, 0, signedBack.stderr);
  const list = await runCli(['model', 'list', '--config', config]);
  assert.match(list.stdout, /bearing-health: active 1\.5\.0, previous 2\.0\.0; installed: 1\.0\.0, 1\.5\.0, 2\.0\.0/);
  assert.match(list.stdout, /refused 1\.5\.0: .*EDGE_ERR|refused 1\.5\.0: version 1\.5\.0 is below/);
});
