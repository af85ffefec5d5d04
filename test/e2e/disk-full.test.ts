// Disk full on a real (tiny tmpfs) filesystem: the agent stops with EDGE_ERR_STORE (exit 74) instead of
// acknowledging what it could not store; moved to a disk with room, it loses no reading and stores none twice.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, teardown, tempDir, writeConfig,
} from '../helpers/parts.js';

const N = 20000;

function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe', timeout: 30000 });
    return true;
  } catch {
    return false;
  }
}

test('disk full: exit 74, nothing acknowledged is lost, nothing stored twice after moving the store', { timeout: 180000 }, async (t) => {
  const dir = tempDir(t);
  const small = join(dir, 'small');
  mkdirSync(small);
  if (!mountTmpfs(small, '1m')) {
    t.skip('needs root to mount a tmpfs');
    return;
  }
  teardown(t, () => execFileSync('umount', ['-l', small], { timeout: 30000 }));
  const broker = await startMosquitto(t);
  const clientId = 'edge-agent-disk-full-test';
  const mqtt = { url: broker.url, clientId, reconnectMinMs: 100 };
  const full = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(small, 'agent.db'), mqtt }), 'small.yaml'));
  await full.waitForLog('subscribed');

  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-disk-full' });
  await publishSequence(gateway, 'plant/press-1/bearing', N, 100, 0).done;
  const exit = await full.exited;
  assert.equal(exit.code, 74, `exit code (stderr: ${full.stderr().slice(-300)})`);
  // Logged once: the failures that follow from the first (a store refusing writes) are not repeated.
  const fatal = full.logs.filter((l) => l.msg === 'fatal error');
  assert.equal(fatal.length, 1, `one "fatal error" line: ${JSON.stringify(fatal)}`);
  assert.match(String(fatal[0]?.err), /cannot commit.*(disk is full|database or disk)/, 'it says why it stopped');

  // An engineer moves the store to a disk with room and starts the agent again.
  const big = join(dir, 'big');
  mkdirSync(big);
  for (const suffix of ['', '-wal']) {
    if (existsSync(join(small, `agent.db${suffix}`))) copyFileSync(join(small, `agent.db${suffix}`), join(big, `agent.db${suffix}`));
  }
  const dbPath = join(big, 'agent.db');
  const { exit: againExit, seqs } = await runUntilStored(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt }), 'big.yaml'), dbPath, N);
  assert.equal(againExit.code, 0);
  assert.equal(seqs.length, N);
  assert.equal(new Set(seqs).size, N);
});
