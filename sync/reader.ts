// The sync reader: takes where a batch is; gives it gzipped, from a worker thread (reader-worker.ts) that
// reads the store on a connection of its own. One batch at a time; close() ends the thread.

import { Worker } from 'node:worker_threads';
import type { BatchAt, SyncKind } from '../agent/store/sync.js';
import type { ReadReply, ReadRequest } from './reader-worker.js';

export interface ReadBatch { first: number; last: number; count: number; body: Buffer }

/** `nice`: how far below the agent's own threads the reader runs (Linux: a nice value per thread). */
export function createReader(path: string, source: { agent: string; store: string }, level: number, nice: number) {
  const worker = new Worker(new URL('./reader-worker.js', import.meta.url), { workerData: { path, nice } });
  const waiting = new Map<number, { resolve: (b: ReadBatch | null) => void; reject: (e: Error) => void }>();
  let next = 0;
  let failure: Error | null = null;
  const failAll = (err: Error) => {
    failure = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('message', (reply: ReadReply) => {
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if ('error' in reply) w.reject(new Error(`sync reader: ${reply.error}`));
    else w.resolve(reply.batch && { ...reply.batch, body: Buffer.from(reply.batch.body.buffer, reply.batch.body.byteOffset, reply.batch.body.byteLength) });
  });
  worker.on('error', (err) => failAll(err));
  worker.on('exit', (code) => failAll(new Error(`sync reader thread exited (${code})`)));
  worker.unref();
  return {
    read(kind: SyncKind, at: BatchAt): Promise<ReadBatch | null> {
      if (failure) return Promise.reject(failure);
      const id = next++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        const req: ReadRequest = { id, kind, at, source, level };
        worker.postMessage(req);
      });
    },
    close: async () => void (await worker.terminate()),
  };
}
