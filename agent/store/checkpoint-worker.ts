// The WAL checkpoint thread: takes the store's file and its synchronous setting; on a connection of its own,
// copies the WAL's pages into the database file every `everyMs` (PASSIVE: it never waits for a lock or holds
// up the agent's writes), and tells the main thread when a checkpoint fails or recovers.

import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointInit { path: string; synchronous: 'NORMAL' | 'FULL'; everyMs: number }
/**
 * `done`: the WAL's pages and those the checkpoint could not copy yet (a reader still needs them), sent when
 * they change; `failed`: a checkpoint threw (the WAL grows until one succeeds), sent once per kind of failure.
 */
export type CheckpointReport = { kind: 'done'; walPages: number; behindPages: number; recovered: boolean } | { kind: 'failed'; message: string };

const port = parentPort;
if (!port) throw new Error('checkpoint-worker must run as a worker thread');
const init = workerData as CheckpointInit;
const db = new Database(init.path, { fileMustExist: true });
// The checkpoint's syncs follow this connection's setting: the same as the store's, so FULL stays FULL.
db.pragma(`synchronous = ${init.synchronous}`);
let failing: string | null = null;
let last = { walPages: -1, behindPages: -1 };
// Test-only fault injection, unset in production: EDGE_AGENT_TEST_CHECKPOINT_FAIL=N makes the first N
// checkpoints throw; EDGE_AGENT_TEST_CHECKPOINT_EXIT_AFTER=N ends this thread at its N+1th.
let failFirst = Number(process.env.EDGE_AGENT_TEST_CHECKPOINT_FAIL ?? 0);
const exitAfter = Number(process.env.EDGE_AGENT_TEST_CHECKPOINT_EXIT_AFTER ?? 0);
let runs = 0;

const timer = setInterval(() => {
  if (exitAfter > 0 && ++runs > exitAfter) process.exit(1);
  try {
    if (failFirst > 0 && failFirst--) throw new Error('test: checkpoint made to fail');
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    const walPages = Math.max(0, r?.log ?? 0);
    const behindPages = Math.max(0, walPages - Math.max(0, r?.checkpointed ?? 0));
    if (walPages !== last.walPages || behindPages !== last.behindPages || failing !== null) {
      port.postMessage({ kind: 'done', walPages, behindPages, recovered: failing !== null } satisfies CheckpointReport);
    }
    last = { walPages, behindPages };
    failing = null;
  } catch (err) {
    const message = (err as Error).message;
    // Once per kind of failure, not every interval (a full disk would otherwise flood the log).
    if (message !== failing) port.postMessage({ kind: 'failed', message } satisfies CheckpointReport);
    failing = message;
  }
}, init.everyMs);

port.on('message', (m: 'stop') => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  port.close();
});
