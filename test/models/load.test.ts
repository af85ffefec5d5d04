// Model/manifest mismatches are startup errors: `edge-agent run` exits 78 before touching the broker,
// naming both sides (what the manifest says, what the ONNX session really has).

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { sha256File } from '../../models/load.js';
import { agentConfig, demoModelDir, runCli, tempDir, writeConfig } from '../helpers/parts.js';

type Json = Record<string, unknown> & { golden: { output: number[] }[]; file: { sha256: string } };

/** Copies the demo model version, lets the test change it, and runs the agent on it. */
async function runWithModel(t: TestContext, change: (manifest: Json, modelPath: string) => void) {
  const dir = tempDir(t);
  const modelDir = join(dir, 'model');
  mkdirSync(modelDir);
  copyFileSync(join(demoModelDir, 'model.onnx'), join(modelDir, 'model.onnx'));
  const manifest = JSON.parse(readFileSync(join(demoModelDir, 'manifest.json'), 'utf8')) as Json;
  change(manifest, join(modelDir, 'model.onnx'));
  writeFileSync(join(modelDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  const config = agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(dir, 'a.db'), model: { dir: modelDir } });
  return runCli(['run', '--config', writeConfig(dir, config)]);
}

test('the demo model passes its own contract check and golden vectors', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const ok = await runCli(['config', 'check', writeConfig(dir, agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(dir, 'a.db') }))]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('input name differs from the session: exit 78 naming both sides', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (m) => void ((m.input as { name: string }).name = 'x'));
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_MODEL_CONTRACT/);
  assert.match(r.stderr, /manifest input: "x" float32 \[N,6\]; the ONNX model has no input of that name \(it has "features" float32 \[N,6\]\)/);
});

test('output name differs from the session: exit 78 naming both sides', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (m) => {
    (m.outputs as { name: string }[])[0]!.name = 'scores';
    (m.output as { tensor: string }).tensor = 'scores';
  });
  assert.equal(r.code, 78);
  assert.match(r.stderr, /manifest output "scores"; the ONNX model's outputs are "probabilities"/);
});

test('a golden vector whose output differs: exit 78 with expected and actual', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (m) => void (m.golden[0]!.output = [0.1, 0.2, 0.7]));
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_MODEL_GOLDEN/);
  assert.match(r.stderr, /golden\[0\]: manifest expects \[0\.1, 0\.2, 0\.7\]; the model gave \[/);
});

test('model file changed after the manifest was written: exit 78 with both digests', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (_m, modelPath) => {
    const bytes = readFileSync(modelPath);
    writeFileSync(modelPath, Buffer.concat([bytes, Buffer.from([0])]));
  });
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_MODEL_FILE: .*sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
});

test('a file that is not an ONNX model (digest matching): exit 78 EDGE_ERR_MODEL_LOAD', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (m, modelPath) => {
    writeFileSync(modelPath, 'this is not a protobuf');
    m.file.sha256 = sha256File(modelPath);
  });
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_MODEL_LOAD: onnxruntime cannot load/);
});

test('an invalid manifest: exit 78 naming each bad key', { timeout: 60000 }, async (t) => {
  const r = await runWithModel(t, (m) => {
    (m.features as unknown[]).pop();
    m.latencyBudgetMs = -5;
    delete (m as Partial<typeof m>).golden;
  });
  assert.equal(r.code, 78);
  assert.match(r.stderr, /EDGE_ERR_MANIFEST/);
  assert.match(r.stderr, /latencyBudgetMs: got -5/);
  assert.match(r.stderr, /golden: got \(missing\)/);
});
