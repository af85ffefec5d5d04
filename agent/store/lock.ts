// Store lock: one agent per SQLite store. Takes the store's path; gives a held lock, or an EdgeError
// (EDGE_ERR_STORE_LOCKED) naming the agent that holds it. Two agents on one store would each take
// the same readings from the broker and store every one of them twice.
//
// The lock is an exclusive SQLite transaction held open on a small file beside the store
// (`<store>-lock`): SQLite takes it with fcntl, so the kernel drops it the moment the holding process
// dies, kill -9 included, and no stale lock file ever needs clearing. Node has no flock/fcntl of its
// own, and better-sqlite3 is the native module the agent already has. The store itself stays open to
// readers (the sqlite3 shell, a dashboard): WAL readers never touch this file.

import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { EdgeError } from '../errors.js';

export interface StoreLock {
  release(): void;
}

interface Holder { pid: number; host: string; startedAt: string; argv: string }

function describe(holderPath: string): string {
  try {
    const h = JSON.parse(readFileSync(holderPath, 'utf8')) as Holder;
    return `pid ${h.pid} on ${h.host}, started ${h.startedAt} (${h.argv})`;
  } catch {
    return 'another process (its holder file is unreadable)';
  }
}

export function lockStore(storePath: string): StoreLock {
  const lockPath = `${storePath}-lock`;
  const holderPath = `${storePath}-lock.json`;
  let db: Database.Database;
  try {
    // Created 0600 first: SQLite gives its journal file the same mode.
    closeSync(openSync(lockPath, 'a', 0o600));
    // timeout 0: a held lock answers SQLITE_BUSY at once instead of waiting.
    db = new Database(lockPath, { timeout: 0 });
  } catch (err) {
    throw new EdgeError('EDGE_ERR_STORE', `cannot open the store lock ${lockPath}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY' || (err as { code?: string }).code === 'SQLITE_LOCKED') {
      throw new EdgeError(
        'EDGE_ERR_STORE_LOCKED',
        `${storePath} is in use by another edge-agent: ${describe(holderPath)}. One store serves one agent: stop the other one, or give this one its own store.path`,
      );
    }
    throw new EdgeError('EDGE_ERR_STORE', `cannot take the store lock ${lockPath}: ${(err as Error).message}`, { cause: err });
  }
  const holder: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), argv: process.argv.slice(1).join(' ') };
  try {
    writeFileSync(holderPath, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  } catch {
    // Only the message a second agent prints is poorer without it; the lock itself is held.
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        db.exec('ROLLBACK');
      } finally {
        db.close();
      }
    },
  };
}
