// Store files: the store's folder and files with modes that keep other users out (the inbox and dead
// letters hold raw payloads).

import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The folder is created 0700 and the file 0600 (SQLite gives its -wal and -shm files the file's mode):
 * the inbox and dead letters hold raw payloads. A folder that already exists is not changed (it may be
 * shared); if others can enter it, `exposure` says so for a warning.
 */
export function prepareFiles(path: string): string | null {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  else if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  for (const side of ['-wal', '-shm']) {
    if (existsSync(path + side) && (statSync(path + side).mode & 0o077) !== 0) chmodSync(path + side, 0o600);
  }
  const mode = statSync(dir).mode & 0o777;
  return mode & 0o077 ? `${dir} has mode ${mode.toString(8)}; 700 keeps other users out of the store` : null;
}
