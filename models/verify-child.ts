// The verification child process (see verify.ts): reads a VerifyRequest as JSON on stdin, checks the
// candidate folder, and writes one ChildReply line on stdout. Runs nothing but this check, then exits.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgeError, isEdgeError } from '../agent/errors.js';
import { inferenceOptionsSchema } from '../agent/infer/infer.js';
import { fixedBatchOf, MANIFEST_LIMITS, parseManifest, rowShape, rowSize } from './manifest.js';
import { loadModel } from './load.js';
import { readVersionFile } from './read.js';
import { checkRelease } from './release.js';
import { parsePublicKey } from './sign.js';
import type { ChildReply, VerifyRequest } from './verify.js';

const LATENCY_RUNS = 30;

async function verify(req: VerifyRequest): Promise<ChildReply> {
  // The bytes the signature covers are the bytes parsed: read once.
  const manifestBytes = readVersionFile(req.dir, 'manifest.json', MANIFEST_LIMITS.bytes, 'EDGE_ERR_MANIFEST');
  const manifest = parseManifest(Buffer.from(manifestBytes).toString('utf8'), join(req.dir, 'manifest.json'));
  const keys = new Map<string, import('node:crypto').KeyObject>();
  for (const pem of req.keys) {
    const k = parsePublicKey(pem);
    if ('key' in k) keys.set(k.keyId, k.key);
  }
  const signaturePath = join(req.dir, 'signature.json');
  const signature = existsSync(signaturePath) ? readFileSync(signaturePath, 'utf8') : null;
  let signedBy: string | null = null;
  if (manifest.release || signature !== null || !req.allowUnsigned) {
    if (!manifest.release) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${req.dir}: manifest.json has no release block; seal the folder with 'edge-agent model sign'`);
    ({ signedBy } = checkRelease(req.dir, manifest.version, manifestBytes, manifest.release, signature, {
      keys, allowUnsigned: req.allowUnsigned, highestTrusted: req.highestTrusted, clockSlackMs: req.clockSlackMs, now: Date.now(),
    }));
  }
  const model = await loadModel(req.dir, inferenceOptionsSchema.parse({}), { maxModelBytes: req.maxModelBytes });
  try {
    // Latency: a full batch (or the model's fixed batch), timed, against the manifest's budget.
    const cols = rowSize(manifest);
    const rows = fixedBatchOf(manifest) ?? req.batchRows;
    const times: number[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const data = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) data.set((manifest.golden[r % manifest.golden.length] as { input: number[] }).input, r * cols);
      const t0 = performance.now();
      await model.inference.run(manifest.input.name, data, rows, cols, rowShape(manifest));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const p99 = times[Math.floor(0.99 * (times.length - 1))] as number;
    if (p99 > manifest.latencyBudgetMs) {
      throw new EdgeError('EDGE_ERR_MODEL_LATENCY', `${manifest.name} ${manifest.version}: a batch of ${rows} rows takes ${p99.toFixed(2)} ms (p99 of ${LATENCY_RUNS}) on this machine; the manifest's budget is ${manifest.latencyBudgetMs} ms`);
    }
    return { ok: true, verified: { name: manifest.name, version: manifest.version, signedBy, latencyP99Ms: p99 } };
  } finally {
    await model.inference.close();
  }
}

let input = '';
process.stdin.on('data', (d: Buffer) => (input += d.toString()));
process.stdin.on('end', () => {
  void (async () => {
    let reply: ChildReply;
    try {
      reply = await verify(JSON.parse(input) as VerifyRequest);
    } catch (err) {
      reply = isEdgeError(err) ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'EDGE_ERR_MODEL_VERIFY', message: (err as Error).message };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`, () => process.exit(0));
  })();
});
