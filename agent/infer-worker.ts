// Inference worker thread: takes an ONNX file path, then batches of feature rows; gives the
// session's input/output metadata, then each batch's output tensors. onnxruntime-node's run()
// is synchronous native code, so it runs here, off the thread that serves MQTT and SQLite.

import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

export interface WorkerInit { modelPath: string; intraOpThreads: number }
export interface TensorInfo { name: string; type: string; shape: (number | string)[] }
export type WorkerRequest = { id: number; inputName: string; data: Float32Array; rows: number; cols: number };
export type WorkerReply =
  | { kind: 'ready'; inputs: TensorInfo[]; outputs: TensorInfo[] }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; ms: number; outputs: Record<string, { data: Float32Array; dims: number[] }> }
  | { kind: 'error'; id: number; message: string };

const port = parentPort;
if (!port) throw new Error('infer-worker must run as a worker thread');
const init = workerData as WorkerInit;

function info(m: ort.InferenceSession.ValueMetadata): TensorInfo {
  return m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] };
}

async function main(p: NonNullable<typeof parentPort>): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.modelPath, {
      intraOpNumThreads: init.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    p.postMessage({ kind: 'failed', message: (err as Error).message } satisfies WorkerReply);
    return;
  }
  p.postMessage({ kind: 'ready', inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) } satisfies WorkerReply);
  // Test-only fault injection: EDGE_AGENT_TEST_WORKER_EXIT_AFTER=N ends this thread at its N+1th batch,
  // as a crash in native code would. Unset in production.
  const exitAfter = Number(process.env.EDGE_AGENT_TEST_WORKER_EXIT_AFTER ?? 0);
  // Test-only: EDGE_AGENT_TEST_WORKER_DELAY_MS=N holds each batch N ms, a slow model for backpressure tests.
  const delayMs = Number(process.env.EDGE_AGENT_TEST_WORKER_DELAY_MS ?? 0);
  let runs = 0;
  p.on('message', (req: WorkerRequest) => {
    if (exitAfter > 0 && ++runs > exitAfter) process.exit(1);
    if (delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delayMs); // this thread's own sleep
    const t0 = performance.now();
    session
      .run({ [req.inputName]: new ort.Tensor('float32', req.data, [req.rows, req.cols]) })
      .then((out) => {
        const outputs: Record<string, { data: Float32Array; dims: number[] }> = {};
        const transfer: ArrayBuffer[] = [];
        for (const [name, t] of Object.entries(out)) {
          // Copy: ORT's output may be a view into a buffer it owns, which must not be transferred.
          const data = Float32Array.from(t.data as ArrayLike<number>);
          outputs[name] = { data, dims: [...t.dims] };
          transfer.push(data.buffer as ArrayBuffer);
        }
        const reply: WorkerReply = { kind: 'result', id: req.id, ms: performance.now() - t0, outputs };
        p.postMessage(reply, transfer);
      })
      .catch((err: unknown) => p.postMessage({ kind: 'error', id: req.id, message: (err as Error).message } satisfies WorkerReply));
  });
}

void main(port);
