// WAL checkpoints off the event loop: takes the store; gives a thread (checkpoint-worker.ts) that checkpoints
// the WAL on a connection of its own while the store's connection stops checkpointing at commit. SQLite's
// automatic checkpoint runs inside whichever commit takes the WAL past 1,000 pages: 5-15 ms of the agent's
// event loop on this machine, every 0.2-0.8 s at 5,000 readings/s, most of the result latency's p99
// (README, Performance). If the thread stops, the store's automatic checkpoint comes back.

import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { CheckpointInit, CheckpointReport } from './checkpoint-worker.js';
import type { Store } from './store.js';

/** Often enough that the WAL between two checkpoints stays about as small as SQLite's own 1,000 pages allow. */
export const CHECKPOINT_EVERY_MS = 250;

export interface Checkpointer {
  /** False once the thread has stopped (the store checkpoints at commit again). */
  readonly alive: boolean;
  /** The last checkpoint: pages in the WAL, and those it could not copy yet because a reader still needs them. */
  status(): { walPages: number; behindPages: number } | null;
  /** Ends the thread (after the checkpoint under way, if any); its exit gives the checkpoints back to the store. */
  close(): Promise<void>;
}

export function startCheckpointer(store: Store, log: Logger, everyMs = CHECKPOINT_EVERY_MS): Checkpointer {
  const init: CheckpointInit = { path: store.path, synchronous: store.durability().synchronous === 'FULL' ? 'FULL' : 'NORMAL', everyMs };
  const worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: init });
  let alive = true;
  let closing = false;
  store.autoCheckpoint(false);
  const fallBack = (why: string) => {
    if (!alive) return;
    alive = false;
    store.autoCheckpoint(true);
    if (!closing) log.warn({ reason: why }, 'checkpoint thread stopped; the store checkpoints at commit again');
  };
  let last: { walPages: number; behindPages: number } | null = null;
  worker.on('message', (m: CheckpointReport) => {
    if (m.kind === 'failed') return log.warn({ err: m.message, path: store.path }, 'WAL checkpoint failed; the WAL grows until one succeeds');
    last = { walPages: m.walPages, behindPages: m.behindPages };
    if (m.recovered) log.info({ path: store.path }, 'WAL checkpoint succeeded again');
  });
  worker.on('error', (err) => fallBack(err.message));
  worker.on('exit', (code) => fallBack(`exited with code ${code}`));
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    get alive() {
      return alive;
    },
    status: () => (alive ? last : null),
    async close() {
      if (closing) return exited;
      closing = true;
      worker.postMessage('stop');
      // A checkpoint under way finishes first; a thread that does not end in time is ended.
      const timer = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}
