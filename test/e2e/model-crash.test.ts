// kill -9 at each step of an install and activation (staged, verified, moved into place, pointer
// written): after a restart exactly one consistent version is active — the old one until the pointer
// was written, the new one after — nothing half-installed is left, and the agent serves readings.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, demoModelDir, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';

const STEPS = [
  { step: 'staged', serves: '1.0.0', installed: ['1.0.0'] },
  { step: 'verified', serves: '1.0.0', installed: ['1.0.0'] },
  { step: 'committed', serves: '1.0.0', installed: ['1.0.0', '1.1.0'] },
  { step: 'pointer', serves: '1.1.0', installed: ['1.0.0', '1.1.0'] },
] as const;

for (const s of STEPS) {
  test(`kill -9 at the install step "${s.step}": after a restart ${s.serves} serves, consistently`, { timeout: 120_000 }, async (t) => {
    const broker = await startMosquitto(t);
    const dir = tempDir(t);
    const dbPath = join(dir, 'agent.db');
    const { key } = await keygen(dir);
    const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: `edge-agent-install-crash-${s.step}` }, model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] } } }));
    const release = await signedRelease(dir, '1.1.0', key);

    const first = spawnAgent(t, config, { EDGE_AGENT_TEST_KILL_AT_INSTALL_STEP: s.step });
    await first.waitForLog('agent ready');
    const install = await runCli(['model', 'install', release, '--config', config]);
    assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' });
    assert.equal(install.code, 69, `the command lost its agent: ${install.stderr}`);
    assert.match(install.stderr, /EDGE_ERR_CONTROL/);

    const second = spawnAgent(t, config);
    const loaded = await second.waitForLog('model loaded and verified');
    assert.equal(loaded.version, s.serves);
    await second.waitForLog('agent ready');
    const models = join(dir, 'agent.models');
    assert.equal(existsSync(join(models, '.incoming')) ? readdirSync(join(models, '.incoming')).length : 0, 0, 'nothing half-installed is left');
    assert.deepEqual(readdirSync(join(models, 'bearing-health', 'versions')).sort(), [...s.installed]);
    const state = JSON.parse(readFileSync(join(models, 'bearing-health', 'state.json'), 'utf8')) as { active: string };
    assert.equal(state.active, s.serves);
    const gateway = await mqttClient(t, broker.url);
    await publishSequence(gateway, 'plant/press-1/bearing', 10).done;
    await waitFor('10 predictions', () => countRows(dbPath).predictions === 10);
    const db = openDb(dbPath);
    const versions = db.prepare('SELECT DISTINCT model_version AS v FROM predictions').all() as { v: string }[];
    db.close();
    assert.deepEqual(versions.map((v) => v.v), [s.serves]);
    // The install can simply be done again.
    const again = await runCli(['model', 'install', release, '--config', config]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /1\.1\.0 installed and active in the running agent/);
  });
}
