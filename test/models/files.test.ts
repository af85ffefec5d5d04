// A model folder cannot read outside itself or hang the agent: `config check` and `run` (child processes,
// each bounded in time) refuse a file name that leaves the version folder, a symbolic link, a FIFO, an
// oversize model and a huge manifest, promptly, exit 78, with a message naming the problem.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DEFAULT_MAX_MODEL_BYTES } from '../../models/load.js';
import { MANIFEST_LIMITS } from '../../models/manifest.js';
import { agentConfig, cliPath, demoModelDir, tempDir, writeConfig } from '../helpers/parts.js';

type Json = Record<string, unknown> & { file: { name: string; sha256: string }; features: unknown[] };

/** Runs the CLI; kills it (and fails) if it has not exited within `ms`. */
async function runBounded(args: string[], ms = 20_000): Promise<{ code: number | null; out: string; ms: number }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first === 'timeout') {
    proc.kill('SIGKILL');
    await exited;
    assert.fail(`edge-agent ${args.join(' ')} did not exit within ${ms} ms; output so far: ${out.slice(-500)}`);
  }
  return { code: first, out, ms: Date.now() - t0 };
}

/** A copy of the demo version folder that the test changes; gives the config path for it. */
function modelFolder(t: TestContext, change: (m: Json, dir: string, parent: string) => void): string {
  const parent = tempDir(t);
  const dir = join(parent, 'model');
  mkdirSync(dir);
  copyFileSync(join(demoModelDir, 'model.onnx'), join(dir, 'model.onnx'));
  const manifest = JSON.parse(readFileSync(join(demoModelDir, 'manifest.json'), 'utf8')) as Json;
  change(manifest, dir, parent);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return writeConfig(parent, agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(parent, 'a.db'), model: { dir } }));
}

/** Both commands refuse the folder: exit 78, the expected code and message, never longer than the bound. */
async function refusedByBoth(config: string, code: string, message: RegExp): Promise<string> {
  let out = '';
  for (const args of [['config', 'check', config], ['run', '--config', config]]) {
    const r = await runBounded(args);
    assert.equal(r.code, 78, `${args[0]}: ${r.out}`);
    assert.match(r.out, new RegExp(code), args[0]);
    assert.match(r.out, message, args[0]);
    out += r.out;
  }
  return out;
}

test('file.name with ../ cannot reach outside the version folder, and gives no digest of what is there', { timeout: 60_000 }, async (t) => {
  let secretDigest = '';
  const config = modelFolder(t, (m, _dir, parent) => {
    const secret = Buffer.from('root:$6$not-for-you\n');
    writeFileSync(join(parent, 'secret'), secret);
    secretDigest = createHash('sha256').update(secret).digest('hex');
    m.file.name = '../secret';
  });
  const out = await refusedByBoth(config, 'EDGE_ERR_MANIFEST', /file\.name: got "\.\.\/secret" — a plain file name inside the version folder/);
  assert.ok(!out.includes(secretDigest), 'the outside file is never hashed');
  assert.ok(!/[0-9a-f]{64}, the manifest says/.test(out));
});

test('an absolute file.name is refused', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (m) => void (m.file.name = '/etc/passwd'));
  await refusedByBoth(config, 'EDGE_ERR_MANIFEST', /file\.name: got "\/etc\/passwd"/);
});

test('model.onnx as a symbolic link to /dev/zero is refused at once (no unbounded read)', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (_m, dir) => {
    const path = join(dir, 'model.onnx');
    execFileSync('rm', [path]);
    symlinkSync('/dev/zero', path);
  });
  await refusedByBoth(config, 'EDGE_ERR_MODEL_FILE', /model\.onnx: is a symbolic link — only a regular file inside the version folder is read/);
});

test('model.onnx as a FIFO: both commands exit promptly with a clear error (no hang waiting for a writer)', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (_m, dir) => {
    const path = join(dir, 'model.onnx');
    execFileSync('rm', [path]);
    execFileSync('mkfifo', [path]);
  });
  await refusedByBoth(config, 'EDGE_ERR_MODEL_FILE', /model\.onnx: is a FIFO — only a regular file/);
});

test('manifest.json as a symbolic link or a FIFO is refused', { timeout: 60_000 }, async (t) => {
  for (const make of [(p: string) => symlinkSync('/dev/zero', p), (p: string) => execFileSync('mkfifo', [p])]) {
    const config = modelFolder(t, () => undefined);
    const path = join(config, '..', 'model', 'manifest.json');
    execFileSync('rm', [path]);
    make(path);
    await refusedByBoth(config, 'EDGE_ERR_MANIFEST', /manifest\.json: is (a symbolic link|a FIFO)/);
  }
});

test('a model file above the size cap is refused before it is read', { timeout: 60_000 }, async (t) => {
  // A sparse file: its size is what counts, it takes no disk.
  const config = modelFolder(t, (_m, dir) => truncateSync(join(dir, 'model.onnx'), DEFAULT_MAX_MODEL_BYTES + 1));
  await refusedByBoth(config, 'EDGE_ERR_MODEL_FILE', new RegExp(`model\\.onnx: is ${DEFAULT_MAX_MODEL_BYTES + 1} bytes — the limit is ${DEFAULT_MAX_MODEL_BYTES} bytes`));
});

test('model.maxModelBytes in the config sets the cap', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, () => undefined);
  const size = readFileSync(join(demoModelDir, 'model.onnx')).length;
  const yaml = readFileSync(config, 'utf8').replace(/^model:\n/m, `model:\n  maxModelBytes: ${size - 1}\n`);
  writeFileSync(config, yaml);
  await refusedByBoth(config, 'EDGE_ERR_MODEL_FILE', new RegExp(`model\\.onnx: is ${size} bytes — the limit is ${size - 1} bytes`));
});

test('a manifest with a million features is refused fast, naming the byte limit', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (m) => {
    m.features = Array.from({ length: 1_000_000 }, (_, i) => ({ name: `f${i}`, unit: "g", min: 0, max: 1 }));
  });
  const r = await runBounded(['config', 'check', config]);
  assert.equal(r.code, 78, r.out);
  assert.match(r.out, new RegExp(`EDGE_ERR_MANIFEST: .*manifest\\.json: is \\d+ bytes — the limit is ${MANIFEST_LIMITS.bytes} bytes`));
  t.diagnostic(`config check on a ${1_000_000}-feature manifest exited in ${r.ms} ms (process start included)`);
});

test('a manifest within the byte cap but with too many features is refused naming the count limit', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (m) => {
    m.features = Array.from({ length: MANIFEST_LIMITS.features + 1 }, (_, i) => ({ name: `f${i}`, unit: 'g', min: 0, max: 1 }));
  });
  const r = await runBounded(['config', 'check', config]);
  assert.equal(r.code, 78, r.out);
  assert.match(r.out, new RegExp(`features: has ${MANIFEST_LIMITS.features + 1} entries — the limit is ${MANIFEST_LIMITS.features}`));
});

test('feature ranges and golden inputs must fit in float32', { timeout: 60_000 }, async (t) => {
  const config = modelFolder(t, (m) => {
    (m.features[0] as { max: number }).max = 1e300;
    (m.golden as { input: number[] }[])[1]!.input[2] = -1e39;
  });
  const r = await runBounded(['config', 'check', config]);
  assert.equal(r.code, 78, r.out);
  assert.match(r.out, /features\[0\]\.max: got 1e\+300 — must fit in float32/);
  assert.match(r.out, /golden\[1\]\.input\[2\]: got -1e\+39 — must fit in float32/);
});
