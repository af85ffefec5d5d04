// Config secrets: a value written inline, or read from an environment variable ({ env: NAME }), a file
// ({ file: PATH }) or a systemd credential ({ credential: NAME }: $CREDENTIALS_DIRECTORY/NAME, given to
// the service by LoadCredential=), so it need not sit in the YAML. The schema only
// recognises the form and gives a SecretRef; config.ts resolves every SecretRef (a relative file
// against the config's folder) into its string before the config is frozen.

import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';

/** Where a secret comes from; only config.ts turns it into the string (see resolveSecret). */
export class SecretRef {
  constructor(readonly source: { readonly env: string } | { readonly file: string } | { readonly credential: string }) {}
}

export const secretSchema = z
  .union([
    z.string(),
    z.strictObject({ env: z.string().min(1) }),
    z.strictObject({ file: z.string().min(1) }),
    // A credential's name is a file name in the credentials folder: no path.
    z.strictObject({ credential: z.string().regex(/^[A-Za-z0-9_.@-]{1,128}$/, 'a credential name (letters, digits, _ . @ -), as in LoadCredential=NAME:PATH').refine((n) => n !== '.' && n !== '..', 'a credential name, not . or ..') }),
  ])
  .transform((v): string | SecretRef => (typeof v === 'string' ? v : new SecretRef(v)));

/** A config type as the stages see it: every secret already a string. */
export type Resolved<T> = T extends SecretRef
  ? string
  : T extends readonly (infer U)[]
    ? readonly Resolved<U>[]
    : T extends object
      ? { [K in keyof T]: Resolved<T[K]> }
      : T;

const MAX_SECRET_FILE_BYTES = 64 * 1024;

/** Gives the secret's value, or a problem (naming the variable or file, never a value). */
export function resolveSecret(ref: SecretRef, baseDir: string): { value: string } | { problem: string } {
  const src = ref.source;
  if ('env' in src) {
    const value = process.env[src.env];
    return value === undefined ? { problem: `environment variable ${src.env} is not set` } : { value };
  }
  if ('credential' in src) {
    // systemd sets CREDENTIALS_DIRECTORY only for a unit with LoadCredential= or SetCredential=.
    const dir = process.env.CREDENTIALS_DIRECTORY;
    if (!dir) return { problem: `credential ${src.credential}: CREDENTIALS_DIRECTORY is not set (the agent is not run by systemd with LoadCredential=${src.credential}:PATH; outside systemd use { file } or { env })` };
    const r = readSecretFile(resolve(dir, src.credential));
    if ('value' in r && r.value === '') return { problem: `credential ${src.credential} is empty (is the file named in LoadCredential=${src.credential}:PATH missing?)` };
    return 'value' in r ? r : { problem: `credential ${src.credential}: ${r.problem} (see LoadCredential=${src.credential}:PATH in the unit)` };
  }
  return readSecretFile(isAbsolute(src.file) ? src.file : resolve(baseDir, src.file));
}

function readSecretFile(path: string): { value: string } | { problem: string } {
  try {
    // A FIFO or a device would block or never end: only a small regular file is read.
    const st = statSync(path);
    if (!st.isFile()) return { problem: `secret file ${path} is not a regular file` };
    if (st.size > MAX_SECRET_FILE_BYTES) return { problem: `secret file ${path} is larger than ${MAX_SECRET_FILE_BYTES} bytes` };
    return { value: readFileSync(path, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    return { problem: `cannot read secret file ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
}
