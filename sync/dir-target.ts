// The directory sync target, for air-gapped lines: takes a gzip NDJSON batch and its idempotency key;
// gives one complete `.ndjson.gz` file per batch in a folder (a share, a USB stick) that a collector
// empties, written so that a reader never sees a partial file, and says what became of it (see Outcome).
//
// Why one file per batch, not a current file appended to and rotated: a gzip file that grows is partial
// while it grows, so keeping every visible file complete would mean rewriting the whole current file for
// each batch; and a batch appended again after a crash would sit in the same file as its first copy, a
// duplicate only the rows' store+id could reveal. A file per batch is complete from the moment it has
// its name (temp file, fsync, rename, fsync of the folder), and its name carries the batch's idempotency
// key, so a resend is recognisable by the name alone. "Rotation" is then the batch: no file passes
// maxFileBytes (a larger batch is split by the sync loop), and a quiet line still gets its files on every
// scheduled run that has rows, so no age-based rotation is needed.

import { open, readdir, rename, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Batch, Outcome, Target } from './http.js';

export const dirTargetSchema = z.strictObject({
  type: z.literal('dir'),
  /** The target's name: its cursors in the store are kept under it (rename it and it starts from the first row). */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (up to 64)').default('dir'),
  /**
   * The folder the files go to (relative: from the config file's folder). It is never created: a missing
   * folder is most often a share or stick that is not mounted, and creating it would fill the disk below
   * the mount point instead. Sync to this target stops until the next run and the rows stay in the store.
   */
  path: z.string().min(1),
  /** No file is larger: a batch whose gzip body would be is split into smaller batches (a single row is written as it is). */
  maxFileBytes: z.number().int().min(4096).max(1024 ** 3).default(16 * 1024 ** 2),
  /** Files are written only while the folder's file system keeps this much free after the file; below it the batch waits (retry). */
  minFreeBytes: z.number().int().nonnegative().default(256 * 1024 ** 2),
});

export type DirTargetOptions = z.infer<typeof dirTargetSchema>;

/** The agent's id as it stands in a file name: only letters, digits, . _ -, and never a leading dot (dot files are temp files). */
export function fileAgentId(agentId: string): string {
  return agentId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_').slice(0, 64) || '_';
}

/** The file name of a batch: `<agent>-<store id>-<kind>-<first id>-<last id>.ndjson.gz` (the idempotency key after the agent's id). */
export const batchFileName = (agentId: string, key: string) => `${fileAgentId(agentId)}-${key}.ndjson.gz`;

/** Folder problems that no retry will fix: this target stops until the next run. */
const MISCONFIGURED: Record<string, string> = {
  ENOENT: 'the folder does not exist (is the share or stick mounted?)',
  ENOTDIR: 'not a folder',
  EACCES: 'the agent may not write there',
  EPERM: 'the agent may not write there',
  EROFS: 'read-only file system',
};

/** A folder has no status code to report. */
const WRITTEN: Outcome = { type: 'ok', status: 0 };

export function createDirTarget(o: Readonly<DirTargetOptions>, agentId: string): Target {
  const prefix = `.${fileAgentId(agentId)}-`;
  let swept = false;

  function failed(err: unknown, what: string): Outcome {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const known = MISCONFIGURED[code];
    if (known) return { type: 'stop', reason: `${o.path}: ${what}: ${known} (${code})` };
    // ENOSPC, EDQUOT, EIO and the rest: the rows stay in the store and the batch goes again later.
    return { type: 'retry', reason: `${o.path}: ${what}: ${(err as Error).message}`, retryAfterMs: null };
  }

  async function send(batch: Batch): Promise<Outcome> {
    let free: number;
    try {
      const st = await stat(o.path);
      if (!st.isDirectory()) return { type: 'stop', reason: `${o.path}: not a folder (ENOTDIR)` };
      const fs = await statfs(o.path);
      free = fs.bavail * fs.bsize;
    } catch (err) {
      return failed(err, 'cannot read the folder');
    }
    if (!swept) {
      swept = true;
      await sweepTemps(o.path, prefix);
    }
    const name = batchFileName(agentId, batch.key);
    const final = join(o.path, name);
    // Only a complete file ever has this name: if it is there, this batch was written before a crash
    // (and the collector has not taken it yet). Not writing it again keeps it as the collector may be reading it.
    if (await isFile(final)) return WRITTEN;
    if (batch.body.length > o.maxFileBytes && batch.rows > 1) {
      return { type: 'split', reason: `${batch.rows} rows make ${batch.body.length} bytes, over maxFileBytes (${o.maxFileBytes})` };
    }
    if (free - batch.body.length < o.minFreeBytes) {
      return { type: 'retry', reason: `${o.path}: ${free} bytes free, and a file of ${batch.body.length} would leave less than minFreeBytes (${o.minFreeBytes})`, retryAfterMs: null };
    }
    const temp = join(o.path, `.${name}.tmp`);
    try {
      const fh = await open(temp, 'w', 0o644);
      try {
        await fh.writeFile(batch.body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, final);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      return failed(err, `cannot write ${name}`);
    }
    // The rename itself is durable only once the folder is synced; until then a power loss may undo it
    // (never half of it), and the batch, not yet acknowledged, goes again.
    try {
      await syncFolder(o.path);
    } catch (err) {
      return failed(err, 'cannot sync the folder');
    }
    return WRITTEN;
  }

  // Each batch is a complete file of its own: nothing is left to flush.
  return { name: o.name, send, close: () => undefined };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** fsync of the folder; file systems that cannot (some network mounts) say EINVAL or ENOTSUP, and their rename is all there is. */
async function syncFolder(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw err;
  } finally {
    await fh.close();
  }
}

/** Temp files this agent left when it was killed mid-write (once per process, before the first batch). */
async function sweepTemps(path: string, prefix: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(path);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix) && n.endsWith('.tmp')) await unlink(join(path, n)).catch(() => undefined);
}
