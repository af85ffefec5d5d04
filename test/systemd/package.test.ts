// The offline release: the tarball of `npm run package` unpacked in a temporary folder runs with its own
// node_modules (the agent answers --version, checks a config, serves until ready) on every Node it was built
// for; install.sh and uninstall.sh in a temporary root, twice each, keeping config and store unless --purge.
// The tarball: EDGE_AGENT_TEST_TARBALL (CI builds it once), else built here. More Node binaries to run it
// on: EDGE_AGENT_TEST_NODES (colon-separated), besides the one running the tests.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort, repoRoot, spawnChild, stopChild, tempDir, waitFor } from '../helpers/parts.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const nodes = [process.execPath, ...(process.env.EDGE_AGENT_TEST_NODES ?? '').split(':').filter(Boolean)];
let app = '';

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 600_000, ...options });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'edge-agent-package-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Building the tarball here (no EDGE_AGENT_TEST_TARBALL) may fetch Node 24's headers once and compile SQLite for it.
before(() => {
  let tarball = process.env.EDGE_AGENT_TEST_TARBALL ?? '';
  if (!tarball) {
    const built = run('bash', [join(repoRoot, 'systemd', 'package.sh'), '--no-build', '--out', dir]);
    assert.equal(built.code, 0, built.stderr + built.stdout);
    tarball = join(dir, `edge-agent-${version}-linux-${process.arch}.tar.gz`);
  }
  assert.match(tarball, new RegExp(`edge-agent-${version.replace(/\./g, '\\.')}-linux-${process.arch}\\.tar\\.gz$`));
  const unpacked = run('tar', ['-xzf', tarball, '-C', dir]);
  assert.equal(unpacked.code, 0, unpacked.stderr);
  app = join(dir, `edge-agent-${version}`);
}, { timeout: 900_000 });

test('the tarball holds the agent, production dependencies only, this platform\'s onnxruntime, and a SQLite build per Node ABI', { timeout: 600_000 }, () => {
  for (const f of ['dist/agent/cli.js', 'package.json', 'README.md', 'systemd/edge-agent.service', 'systemd/install.sh', 'systemd/uninstall.sh', 'systemd/config.example.yaml', 'models/demo/bearing-health/1.0.0/model.onnx']) {
    assert.ok(existsSync(join(app, f)), f);
  }
  assert.equal(existsSync(join(app, 'dist', 'test')), false, 'no tests');
  for (const dev of ['typescript', 'eslint', 'onnx-proto', 'playwright-core', '@types/node']) assert.equal(existsSync(join(app, 'node_modules', dev)), false, dev);
  for (const prod of ['mqtt', 'pino', 'zod', 'yaml', 'aedes', 'prom-client']) assert.ok(existsSync(join(app, 'node_modules', prod, 'package.json')), prod);
  const ort = join(app, 'node_modules', 'onnxruntime-node', 'bin');
  const platforms = readdirSync(ort).flatMap((napi) => readdirSync(join(ort, napi)).flatMap((os) => readdirSync(join(ort, napi, os)).map((arch) => `${os}/${arch}`)));
  assert.deepEqual(platforms, [`linux/${process.arch}`]);
  const sqlite = join(app, 'node_modules', 'better-sqlite3');
  assert.equal(existsSync(join(sqlite, 'build')), false, 'no build/ to shadow lib/binding');
  const abis = readdirSync(join(sqlite, 'lib', 'binding')).sort();
  assert.ok(abis.includes(`node-v115-linux-${process.arch}`) && abis.includes(`node-v137-linux-${process.arch}`), `Node 20 and 24 builds: ${abis.join(', ')}`);
});

for (const node of nodes) {
  test(`the unpacked tarball runs on ${node} with its own node_modules: --version, config check, and the agent until ready`, { timeout: 120_000 }, async (t) => {
    const nodeVersion = run(node, ['--version']).stdout.trim();
    t.diagnostic(`node ${nodeVersion}`);
    // Outside the repository: nothing above the unpacked folder holds a node_modules.
    const v = run(node, [join(app, 'dist', 'agent', 'cli.js'), '--version'], { cwd: app });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), version);

    // The example config with the unit's folders moved into a temporary one, and a free port.
    const dir = tempDir(t);
    const port = await freePort();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, readFileSync(join(app, 'systemd', 'config.example.yaml'), 'utf8')
      .replaceAll('/opt/edge-agent/', `${app}/`).replaceAll('/var/lib/edge-agent/', `${dir}/`)
      .replace('embedded: { host: 127.0.0.1, port: 1883 }', `embedded: { host: 127.0.0.1, port: ${port} }`)
      .replace(/^log:\n {2}level: info$/m, 'log:\n  level: info\nhttp: { port: 0 }'));
    const check = run(node, [join(app, 'dist', 'agent', 'cli.js'), 'config', 'check', config], { cwd: app });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /OK\n {2}broker: embedded on 127\.0\.0\.1:\d+\n {2}model: bearing-health@1\.0\.0 .*golden vectors pass/);

    // The agent itself: SQLite, onnxruntime and the embedded broker all load from the tarball's node_modules.
    const agent = spawnChild(t, node, [join(app, 'dist', 'agent', 'cli.js'), 'run', '--config', config], { cwd: app, stopSignal: 'SIGTERM' });
    await waitFor(`the packaged agent to be ready (stderr: ${agent.stderr()})`, () => {
      if (agent.proc.exitCode !== null) throw new Error(`exited ${agent.proc.exitCode}: ${agent.stderr()}`);
      return agent.stdout().includes('"msg":"agent ready"');
    }, 60_000);
    assert.equal(await stopChild(agent), 0, agent.stderr());
    assert.ok(existsSync(join(dir, 'edge-agent.db')), 'the store was made');
  });
}

test('install.sh and uninstall.sh in a temporary root, twice each: files in place, config and store kept unless --purge', { timeout: 300_000 }, (t) => {
  const root = tempDir(t, 'edge-agent-root-');
  const install = () => run('bash', [join(app, 'systemd', 'install.sh'), '--root', root, '--node', process.execPath]);
  const first = install();
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, /--root .*: no user made, nothing chowned, systemctl not run/);
  assert.match(first.stdout, /wrote the example config/);
  const unit = readFileSync(join(root, 'etc/systemd/system/edge-agent.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} /opt/edge-agent/dist/agent/cli\\.js run --config /etc/edge-agent/config\\.yaml$`, 'm'));
  assert.ok(existsSync(join(root, 'opt/edge-agent/dist/agent/cli.js')));
  assert.ok(existsSync(join(root, 'opt/edge-agent/node_modules/better-sqlite3/package.json')));
  assert.match(readFileSync(join(root, 'opt/edge-agent/bin/edge-agent'), 'utf8'), new RegExp(`exec ${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} /opt/edge-agent/dist/agent/cli\\.js "\\$@"`));
  assert.equal(readlinkSync(join(root, 'usr/local/bin/edge-agent')), '/opt/edge-agent/bin/edge-agent');
  assert.equal(readFileSync(join(root, 'etc/edge-agent/config.yaml'), 'utf8'), readFileSync(join(app, 'systemd/config.example.yaml'), 'utf8'));
  assert.equal(statSync(join(root, 'etc/edge-agent/credentials')).mode & 0o777, 0o700);
  assert.equal(statSync(join(root, 'etc/edge-agent/config.yaml')).mode & 0o777, 0o640);
  assert.ok(statSync(join(root, 'var/lib/edge-agent')).isDirectory());

  // Again, after the operator edited the config and the agent wrote its store: both stay.
  writeFileSync(join(root, 'etc/edge-agent/config.yaml'), '# edited on line 3\n');
  writeFileSync(join(root, 'var/lib/edge-agent/edge-agent.db'), 'rows');
  const second = install();
  assert.equal(second.code, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /kept the existing .*config\.yaml/);
  assert.equal(readFileSync(join(root, 'etc/edge-agent/config.yaml'), 'utf8'), '# edited on line 3\n');
  assert.ok(existsSync(join(root, 'opt/edge-agent/dist/agent/cli.js')));
  assert.equal(existsSync(join(root, 'opt/edge-agent.old')) || existsSync(join(root, 'opt/edge-agent.new')), false);

  const uninstall = (...args: string[]) => run('bash', [join(app, 'systemd', 'uninstall.sh'), '--root', root, ...args]);
  for (let i = 0; i < 2; i++) {
    const r = uninstall();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /kept the config .* and the store/);
    assert.equal(existsSync(join(root, 'opt/edge-agent')), false);
    assert.equal(existsSync(join(root, 'etc/systemd/system/edge-agent.service')), false);
    assert.throws(() => lstatSync(join(root, 'usr/local/bin/edge-agent')));
    assert.equal(readFileSync(join(root, 'var/lib/edge-agent/edge-agent.db'), 'utf8'), 'rows');
    assert.equal(readFileSync(join(root, 'etc/edge-agent/config.yaml'), 'utf8'), '# edited on line 3\n');
  }
  for (let i = 0; i < 2; i++) {
    const r = uninstall('--purge');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(existsSync(join(root, 'var/lib/edge-agent')), false);
    assert.equal(existsSync(join(root, 'etc/edge-agent')), false);
  }
});

test('install.sh says what is missing: no node, or a Node version it does not support', { timeout: 60_000 }, (t) => {
  const root = tempDir(t, 'edge-agent-root-');
  const none = run('bash', [join(app, 'systemd', 'install.sh'), '--root', root, '--node', join(root, 'no-node')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no node binary found: install Node\.js 20 or 24/);
  const old = join(root, 'node18');
  writeFileSync(old, '#!/bin/sh\necho 18.20.4 108 x64\n', { mode: 0o755 });
  const r = run('bash', [join(app, 'systemd', 'install.sh'), '--root', root, '--node', old]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is Node\.js 18\.20\.4; edge-agent needs Node\.js 20 to 24/);
  assert.equal(existsSync(join(root, 'opt')), false, 'nothing installed');
});
