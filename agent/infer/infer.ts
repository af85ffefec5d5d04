// Inference: takes packed input rows (Float32Array, rows x cols; a row may have dims, e.g. channels x
// samples for a window); gives the model's output
// tensors and the time the model took. The ONNX session lives in a worker thread (infer-worker.ts)
// so a slow model never stalls MQTT keepalives, PUBACKs or SQLite commits on the main thread.

import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { EdgeError } from '../errors.js';
import type { TensorInfo, WorkerInit, WorkerPing, WorkerReply, WorkerRequest } from './infer-worker.js';

export const inferenceOptionsSchema = z
  .strictObject({
    /** The most rows in one batch. */
    maxBatchRows: z.number().int().min(1).max(65536).default(256),
    /**
     * 0: a batch goes to the model at the end of the event-loop turn, or as soon as the model has room,
     * so it grows by itself under load (lowest latency). Above 0: a partial batch waits up to this long
     * for more rows (fewer, fuller batches at moderate rates, at the cost of that much latency).
     */
    maxWaitMs: z.number().nonnegative().max(10000).default(0),
    /** Rows waiting for the model beyond which the agent stops reading from the broker (backpressure). */
    maxQueuedRows: z.number().int().min(1).default(8192),
    /** onnxruntime intra-op threads; 1 is fastest on a 2-core line PC (the broker needs the other core). */
    intraOpThreads: z.number().int().min(1).max(64).default(1),
  })
  .prefault({});

export type InferenceOptions = z.infer<typeof inferenceOptionsSchema>;
export type { TensorInfo };

export interface InferResult {
  outputs: Record<string, { data: Float32Array; dims: number[] }>;
  /** Time the model's run() took inside the worker. */
  ms: number;
}

export interface Inference {
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  /** False once the worker has crashed or exited: every run() rejects from then on. */
  readonly alive: boolean;
  /**
   * Runs `rows` rows of `cols` numbers each. `shape`: the dimensions of one row after the batch (their
   * product is `cols`), e.g. [channels, samples] for a windowed input; default [cols].
   */
  run(inputName: string, data: Float32Array, rows: number, cols: number, shape?: readonly number[]): Promise<InferResult>;
  /**
   * Whether the worker answers within `timeoutMs`: the probe queues behind the batches already sent, so a
   * model stuck in native code, or a dead worker, gives false (health checks and the systemd watchdog).
   */
  ping(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The model: its verified bytes (moved to the worker, not copied), a label for messages (its path), the
 * batch it is fixed at (null: symbolic) and the outputs to compute (the ones the agent reads).
 */
export interface ModelSource { bytes: Uint8Array; label: string; fixedBatch: number | null; fetch: string[] }

export async function startInference(model: ModelSource, options: InferenceOptions): Promise<Inference> {
  const modelPath = model.label;
  const init: WorkerInit = { model: model.bytes, intraOpThreads: options.intraOpThreads, fixedBatch: model.fixedBatch, fetch: model.fetch };
  const worker = new Worker(new URL('./infer-worker.js', import.meta.url), {
    workerData: init,
    transferList: [model.bytes.buffer as ArrayBuffer],
  });
  const pending = new Map<number, { resolve: (r: InferResult) => void; reject: (e: Error) => void }>();
  const pings = new Map<number, (alive: boolean) => void>();
  let nextId = 1;
  let dead: Error | null = null;

  const failAll = (err: Error) => {
    dead = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    for (const answer of [...pings.values()]) answer(false);
  };

  const ready = await new Promise<{ inputs: TensorInfo[]; outputs: TensorInfo[] }>((resolve, reject) => {
    const onMessage = (m: WorkerReply) => {
      if (m.kind === 'ready') resolve({ inputs: m.inputs, outputs: m.outputs });
      else if (m.kind === 'failed') reject(new EdgeError('EDGE_ERR_MODEL_LOAD', `onnxruntime cannot load ${modelPath}: ${m.message}`));
    };
    worker.once('message', onMessage);
    worker.once('error', (err) => reject(new EdgeError('EDGE_ERR_MODEL_LOAD', `inference worker failed: ${err.message}`, { cause: err })));
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });

  worker.on('message', (m: WorkerReply) => {
    if (m.kind === 'pong') return pings.get(m.id)?.(true);
    if (m.kind !== 'result' && m.kind !== 'error') return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.kind === 'result') p.resolve({ outputs: m.outputs, ms: m.ms });
    else p.reject(new EdgeError('EDGE_ERR_INFERENCE', `model run failed: ${m.message}`));
  });
  worker.on('error', (err) => failAll(new EdgeError('EDGE_ERR_INFERENCE', `inference worker crashed: ${err.message}`, { cause: err })));
  worker.on('exit', (code) => failAll(new EdgeError('EDGE_ERR_INFERENCE', `inference worker exited with code ${code}`)));

  let closed = false;
  return {
    inputs: ready.inputs,
    outputs: ready.outputs,
    get alive() {
      return dead === null;
    },
    run(inputName, data, rows, cols, shape) {
      if (dead) return Promise.reject(dead);
      if (shape && shape.reduce((a, b) => a * b, 1) !== cols) {
        return Promise.reject(new EdgeError('EDGE_ERR_INFERENCE', `a row of ${cols} numbers cannot have the shape [${shape.join(', ')}]`));
      }
      const id = nextId++;
      return new Promise<InferResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const req: WorkerRequest = { id, inputName, data, rows, cols, ...(shape ? { shape: [...shape] } : {}) };
        worker.postMessage(req, [data.buffer as ArrayBuffer]);
      });
    },
    ping(timeoutMs) {
      if (dead || closed) return Promise.resolve(false);
      const id = nextId++;
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => answer(false), timeoutMs);
        const answer = (alive: boolean) => {
          clearTimeout(timer);
          pings.delete(id);
          resolve(alive);
        };
        pings.set(id, answer);
        worker.postMessage({ kind: 'ping', id } satisfies WorkerPing);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await worker.terminate();
    },
  };
}
