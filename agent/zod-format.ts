// Config and manifest errors: turns zod issues into lines that name the key path, the bad value
// and what was expected, e.g. `mqtt.keepaliveSec: got "ten" — expected number`. A value under a
// secret key (see redact.ts) is printed as (redacted), and so is the user info of a URL.

import type { z } from 'zod';
import { isSecretKey, redactDeep, REDACTED } from './redact.js';

export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function show(v: unknown, path: readonly PropertyKey[]): string {
  if (v === undefined) return '(missing)';
  if (path.some(isSecretKey)) return REDACTED;
  const s = JSON.stringify(redactDeep(v));
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`))
    .join('');
}

export function formatZodIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  return issues.map((issue) => {
    const path = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} — expected only the documented keys`;
    }
    const got = show(valueAt(input, issue.path), issue.path);
    return `${path}: got ${got} — ${issue.message}`;
  });
}
