// Models: reading a file of a version folder. Takes the folder, a plain file name and a size cap; gives
// the file's bytes, or an EdgeError naming the file and why it is refused. Only a regular file inside
// the folder is read: never a path that leaves it, a symbolic link, a FIFO, a device or a directory.

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { EdgeError, type ErrorCode } from '../agent/errors.js';

/** A plain file name: no path separator, not . or .., no NUL (the manifest schema says the same). */
export const PLAIN_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

function kind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * O_NOFOLLOW refuses a symbolic link as the last component (ELOOP); O_NONBLOCK makes opening a FIFO
 * return at once instead of waiting for a writer; fstat on the open descriptor checks the very file
 * that is then read, so nothing can be swapped in between. The size is checked before reading.
 */
export function readVersionFile(dir: string, name: string, maxBytes: number, code: ErrorCode): Uint8Array {
  const path = join(dir, name);
  if (!PLAIN_FILE_NAME.test(name)) throw new EdgeError(code, `${JSON.stringify(name)}: not a plain file name inside ${dir}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    const c = (err as NodeJS.ErrnoException).code;
    if (c === 'ELOOP') throw new EdgeError(code, `${path}: is a symbolic link — only a regular file inside the version folder is read`);
    throw new EdgeError(code, `${path}: cannot read (${c ?? String(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new EdgeError(code, `${path}: is ${kind(st)} — only a regular file inside the version folder is read`);
    if (st.size > maxBytes) throw new EdgeError(code, `${path}: is ${st.size} bytes — the limit is ${maxBytes} bytes`);
    // A fresh ArrayBuffer of its own (not Node's pooled one), so it can be transferred to the worker.
    const bytes = new Uint8Array(st.size);
    let got = 0;
    // Bounded: each read returns at least one byte or ends the loop.
    while (got < st.size) {
      const n = readSync(fd, bytes, got, st.size - got, null);
      if (n === 0) break;
      got += n;
    }
    if (got !== st.size || readSync(fd, new Uint8Array(1), 0, 1, null) !== 0) {
      throw new EdgeError(code, `${path}: changed size while being read`);
    }
    return bytes;
  } catch (err) {
    if (err instanceof EdgeError) throw err;
    throw new EdgeError(code, `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  } finally {
    closeSync(fd);
  }
}
