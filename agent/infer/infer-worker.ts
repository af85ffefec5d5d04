// Inference worker thread: takes the ONNX model's bytes, then batches of input rows (of any row shape); gives the
// session's input/output metadata, then each batch's output tensors. onnxruntime-node's run()
// is synchronous native code, so it runs here, off the thread that serves MQTT and SQLite.

import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { chunks } from '../../models/chunks.js';

export interface WorkerInit { model: Uint8Array; intraOpThreads: number; fixedBatch: number | null; fetch: string[] }
export interface TensorInfo { name: string; type: string; shape: (number | string)[] }
/** `shape`: one row's dimensions after the batch (product `cols`); absent: [cols]. */
export type WorkerRequest = { id: number; inputName: string; data: Float32Array; rows: number; cols: number; shape?: number[] };
/** A liveness probe: answered in turn, after the batches sent before it (a stuck model never answers). */
export type WorkerPing = { kind: 'ping'; id: number };
export type WorkerReply =
  | { kind: 'ready'; inputs: TensorInfo[]; outputs: TensorInfo[] }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; ms: number; outputs: Record<string, { data: Float32Array; dims: number[] }> }
  | { kind: 'error'; id: number; message: string }
  | { kind: 'pong'; id: number };

const port = parentPort;
if (!port) throw new Error('infer-worker must run as a worker thread');
const init = workerData as WorkerInit;

function info(m: ort.InferenceSession.ValueMetadata): TensorInfo {
  return m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] };
}

async function main(p: NonNullable<typeof parentPort>): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.model, {
      intraOpNumThreads: init.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    p.postMessage({ kind: 'failed', message: (err as Error).message } satisfies WorkerReply);
    return;
  }
  // The session holds what it needs; let the model bytes go (workerData would keep them for the thread's life).
  init.model = new Uint8Array(0);
  p.postMessage({ kind: 'ready', inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) } satisfies WorkerReply);
  // Test-only fault injection: EDGE_AGENT_TEST_WORKER_EXIT_AFTER=N ends this thread at its N+1th batch,
  // as a crash in native code would. Unset in production.
  const exitAfter = Number(process.env.EDGE_AGENT_TEST_WORKER_EXIT_AFTER ?? 0);
  // Test-only: EDGE_AGENT_TEST_WORKER_DELAY_MS=N holds each batch N ms, a slow model for backpressure tests.
  const delayMs = Number(process.env.EDGE_AGENT_TEST_WORKER_DELAY_MS ?? 0);
  // Test-only: EDGE_AGENT_TEST_WORKER_STUCK_AFTER=N blocks this thread for ten minutes at its N+1th batch,
  // as a model stuck in native code would (the golden check at load is the first).
  const stuckAfter = Number(process.env.EDGE_AGENT_TEST_WORKER_STUCK_AFTER ?? 0);
  let runs = 0;
  p.on('message', (req: WorkerRequest | WorkerPing) => {
    if ('kind' in req) return p.postMessage({ kind: 'pong', id: req.id } satisfies WorkerReply);
    runs++;
    if (exitAfter > 0 && runs > exitAfter) process.exit(1);
    if (stuckAfter > 0 && runs > stuckAfter) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600_000);
    if (delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delayMs); // this thread's own sleep
    const t0 = performance.now();
    run(session, req)
      .then((outputs) => {
        const reply: WorkerReply = { kind: 'result', id: req.id, ms: performance.now() - t0, outputs };
        p.postMessage(reply, Object.values(outputs).map((o) => o.data.buffer as ArrayBuffer));
      })
      .catch((err: unknown) => p.postMessage({ kind: 'error', id: req.id, message: (err as Error).message } satisfies WorkerReply));
  });
}

/**
 * One batch: only the outputs the agent reads are computed (other outputs, e.g. int64 labels, are never
 * fetched); a fixed-batch model gets its rows in chunks of its batch, padding dropped from the outputs.
 */
async function run(session: ort.InferenceSession, req: WorkerRequest): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const parts: Record<string, Float32Array[]> = {};
  const widths: Record<string, number> = {};
  const row = req.shape ?? [req.cols];
  for (const c of chunks(req.data, req.rows, req.cols, init.fixedBatch)) {
    const out = await session.run({ [req.inputName]: new ort.Tensor('float32', c.data, [c.batch, ...row]) }, init.fetch);
    for (const name of init.fetch) {
      const t = out[name] as ort.Tensor;
      const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
      widths[name] = width;
      // A copy of the real rows: ORT's output may be a view into a buffer it owns, which must not be transferred.
      (parts[name] ??= []).push(Float32Array.from((t.data as Float32Array).subarray(0, c.real * width)));
    }
  }
  const outputs: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const name of init.fetch) {
    const list = parts[name] ?? [];
    const data = list.length === 1 ? (list[0] as Float32Array) : new Float32Array(req.rows * (widths[name] ?? 1));
    if (list.length > 1) list.reduce((at, part) => (data.set(part, at), at + part.length), 0);
    outputs[name] = { data, dims: [req.rows, widths[name] ?? 1] };
  }
  return outputs;
}

void main(port);
