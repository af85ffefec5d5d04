// Redaction: takes values on their way into a message (config errors, usage errors, logs); gives
// them back with secrets replaced by "(redacted)". A value is secret when its key names a secret,
// and the user-info part of a URL is always secret.

export const REDACTED = '(redacted)';

/**
 * The rule: a key is secret when its name, lower-cased and without `_` and `-`, contains one of these
 * words. So `password`, `mqttPassword`, `api_key`, `privateKey`, `credentials` are secret; `keyId`,
 * `keyFile`, `caFile`, `username` are not.
 */
const SECRET_WORDS = ['password', 'passphrase', 'passwd', 'secret', 'token', 'apikey', 'privatekey', 'credential'] as const;

export function isSecretKey(key: PropertyKey): boolean {
  if (typeof key !== 'string') return false;
  const k = key.toLowerCase().replace(/[_-]/g, '');
  return SECRET_WORDS.some((w) => k.includes(w));
}

/** `mqtt://user:pass@host` -> `mqtt://(redacted)@host`: user info may be a token alone, so all of it goes. */
export function redactUrl(s: string): string {
  return s.replace(/(\/\/)[^/@\s]*@/g, `$1${REDACTED}@`);
}

/** A copy of `v` fit to print: values under secret keys (at any depth) and URL user info replaced. */
export function redactDeep(v: unknown, key?: PropertyKey): unknown {
  if (key !== undefined && isSecretKey(key) && v !== undefined) return REDACTED;
  if (typeof v === 'string') return redactUrl(v);
  if (Array.isArray(v)) return v.map((x) => redactDeep(x));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactDeep(x, k)]));
  }
  return v;
}

/** Paths for pino's `redact` (a second line of defence: the config never lets a secret reach a log on purpose). */
export function secretLogPaths(): string[] {
  const names = ['password', 'passphrase', 'passwd', 'secret', 'token', 'apiKey', 'api_key', 'privateKey', 'credentials'];
  return names.flatMap((n) => [n, `*.${n}`, `*.*.${n}`]);
}
