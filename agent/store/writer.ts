// The store's one write path: every write (inbox rows, batches, shadow rows, lifecycle events, sync
// cursors, retention) goes through it, so no writer can land inside another's open transaction.
//
// Ingest's group of inbox rows is the one transaction left open across calls (it is committed at the end
// of the event-loop turn, then the group's PUBACKs leave: see ingest.ts). Any other write first commits
// that group, so its rows can never be rolled back with another writer's transaction, and a write made
// while a group is open is never hidden inside it. A failed commit or rollback leaves the store refusing
// every write until restart: what the broker was not acknowledged for, it redelivers.

import type Database from 'better-sqlite3';
import { EdgeError } from '../errors.js';

export interface Writer {
  /** Runs `fn` inside the open group of inbox writes, opening one when none is. */
  inGroup<T>(fn: () => T): T;
  /** Commits the open group (nothing when none is). Throws when the store has failed or the commit fails. */
  commitGroup(): void;
  /** Runs `fn` in a transaction of its own, after committing an open group. Gives what `fn` gives. */
  write<T>(fn: () => T): T;
  /** After a failed commit: rolls back whatever is open; from now on every write is refused. */
  abort(): void;
}

export function createWriter(db: Database.Database, path: string): Writer {
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  let grouping = false;
  let failed: EdgeError | null = null;
  const check = () => {
    if (failed) throw failed;
  };
  const writer: Writer = {
    inGroup(fn) {
      check();
      if (!grouping) {
        begin.run();
        grouping = true;
      }
      return fn();
    },
    commitGroup() {
      check();
      if (!grouping) return;
      try {
        commit.run();
      } catch (err) {
        writer.abort();
        throw err;
      }
      grouping = false;
    },
    write(fn) {
      writer.commitGroup();
      return db.transaction(fn)();
    },
    abort() {
      failed ??= new EdgeError('EDGE_ERR_STORE', `${path}: a commit failed; the store takes no more writes until restart`);
      grouping = false;
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // The connection may be unusable; closing it at shutdown is all that is left.
      }
    },
  };
  return writer;
}
