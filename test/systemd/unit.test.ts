// The unit file, checked by systemd's own tools: `systemd-analyze verify` with no output at all (it exits 0
// on unknown keys, so any line on stderr fails the test) and `systemd-analyze security --offline=yes`, whose
// exposure score must stay at or below the bound the README gives.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject } from '../../agent/config.js';
import { parse } from 'yaml';
import { agentConfig, cliPath, repoRoot, tempDir, type Teardown } from '../helpers/parts.js';

/** The README's bound for the exposure score (0 safest, 10 unprotected). */
const MAX_EXPOSURE = 2.0;
const unitText = readFileSync(join(repoRoot, 'systemd', 'edge-agent.service'), 'utf8');

/** A copy of the unit whose ExecStart names files that exist here (verify checks them); `extra` lines go into [Service]. */
function unitCopy(t: Teardown, extra = ''): string {
  const dir = tempDir(t);
  const path = join(dir, 'edge-agent.service');
  const text = unitText
    .replace(/^ExecStart=\/usr\/bin\/node \/opt\/edge-agent\/dist\/agent\/cli\.js /m, `ExecStart=${process.execPath} ${cliPath} `)
    .replace(/^\[Service\]$/m, `[Service]\n${extra}`);
  assert.notEqual(text, unitText);
  writeFileSync(path, text);
  return path;
}

function analyze(args: string[]) {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

test('systemd-analyze verify: the unit gives not one warning', { timeout: 120_000 }, (t) => {
  const r = analyze(['verify', unitCopy(t)]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `systemd-analyze verify warned:\n${r.stderr}`);
  // The check can fail: an unknown key is only a warning on stderr (exit 0).
  const bad = analyze(['verify', unitCopy(t, 'NoSuchKey=yes')]);
  assert.match(bad.stderr, /Unknown key 'NoSuchKey'/);
});

test(`systemd-analyze security --offline=yes: exposure at most ${MAX_EXPOSURE}`, { timeout: 120_000 }, (t) => {
  const r = analyze(['security', '--offline=yes', '--no-pager', unitCopy(t)]);
  const m = /Overall exposure level for edge-agent\.service: (\d+(?:\.\d+)?)/.exec(r.stdout);
  assert.ok(m, `no exposure level in:\n${r.stdout}\n${r.stderr}`);
  const score = Number(m[1]);
  assert.ok(score <= MAX_EXPOSURE, `exposure ${score} is above ${MAX_EXPOSURE}:\n${r.stdout}`);
  // Not MemoryDenyWriteExecute (V8's JIT), and the rest the issue asks for.
  assert.match(r.stdout, /✗ MemoryDenyWriteExecute=/);
  for (const want of ['NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateTmp=', 'PrivateDevices=', 'RestrictAddressFamilies=~AF_PACKET', 'SystemCallFilter=~@mount']) {
    assert.match(r.stdout, new RegExp(`✓ ${want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), want);
  }
});

test('the unit: notify, restart policy, stop timeout above the agent\'s deadline, and the paths the example config uses', { timeout: 30_000 }, (t) => {
  const key = (k: string) => [...unitText.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1] as string);
  assert.deepEqual(key('Type'), ['notify']);
  assert.deepEqual(key('NotifyAccess'), ['all']);
  assert.deepEqual(key('Restart'), ['on-failure']);
  assert.deepEqual(key('RestartPreventExitStatus'), ['78']);
  assert.deepEqual(key('MemoryDenyWriteExecute'), []);
  assert.match(key('ExecStart')[0] ?? '', /^\/usr\/bin\/node \/opt\/edge-agent\/dist\/agent\/cli\.js run --config \/etc\/edge-agent\/config\.yaml$/);
  assert.deepEqual(key('StateDirectory'), ['edge-agent']);
  // node honours the unit's NODE_OPTIONS: V8's new space at 2 x 8 MB, against 2 x 16 MB by default (it grows
  // there under allocation, as the agent's does under load).
  const nodeOptions = key('Environment').find((e) => e.startsWith('NODE_OPTIONS='))?.slice('NODE_OPTIONS='.length);
  assert.equal(nodeOptions, '--max-semi-space-size=8');
  const probe = "const a = []; for (let i = 0; i < 2e6; i++) a.push({ i }); console.log(require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)";
  const newSpace = (env: NodeJS.ProcessEnv) => Number(spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 30_000, env }).stdout);
  const { NODE_OPTIONS: _ignored, ...bare } = process.env;
  assert.ok(newSpace({ ...bare, NODE_OPTIONS: nodeOptions }) <= 16 * 1024 * 1024 + 65536, 'the unit\'s young generation');
  assert.ok(newSpace(bare) > 24 * 1024 * 1024, 'without the option the probe grows past it (the check can fail)');
  assert.deepEqual(key('ConfigurationDirectory'), ['edge-agent']);
  const unitSection = unitText.slice(unitText.indexOf('[Unit]'), unitText.indexOf('[Service]'));
  assert.match(unitSection, /^StartLimitBurst=\d+$/m);
  assert.match(unitSection, /^StartLimitIntervalSec=\d+$/m);
  // TimeoutStopSec above the agent's stop: its deadline, then the 1 s backstop and the 2 s force-exit.
  const stopSec = Number(/^(\d+)s$/.exec(key('TimeoutStopSec')[0] ?? '')?.[1]);
  const example = parse(readFileSync(join(repoRoot, 'systemd', 'config.example.yaml'), 'utf8')) as { shutdown: { deadlineMs: number }; store: { path: string }; model: { dir: string } };
  const defaults = configFromObject(agentConfig({ dbPath: join(tempDir(t), 'a.db') }), 'defaults', repoRoot);
  for (const deadlineMs of [example.shutdown.deadlineMs, defaults.shutdown.deadlineMs]) assert.ok(deadlineMs + 3000 < stopSec * 1000, `TimeoutStopSec=${stopSec}s, deadline ${deadlineMs} ms`);
  // The example config's paths are the unit's folders.
  assert.match(example.store.path, /^\/var\/lib\/edge-agent\//);
  assert.match(example.model.dir, /^\/opt\/edge-agent\//);
});
