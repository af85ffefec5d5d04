// Config secrets: a value written inline, or read at load time from an environment variable
// ({ env: NAME }) or a file ({ file: PATH }, e.g. a systemd credential), so it need not sit in the YAML.

import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const secretSchema = z
  .union([z.string(), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })])
  .transform((v, ctx): string => {
    if (typeof v === 'string') return v;
    if ('env' in v) {
      const value = process.env[v.env];
      if (value === undefined) {
        ctx.addIssue({ code: 'custom', message: `environment variable ${v.env} is not set`, input: v });
        return z.NEVER;
      }
      return value;
    }
    try {
      return readFileSync(v.file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read secret file ${v.file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, input: v });
      return z.NEVER;
    }
  });
