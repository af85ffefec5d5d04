// The HTTP(S) sync target: takes a gzip NDJSON batch and its idempotency key; POSTs it to the plant's
// ingest service and says what the answer means: done, retry later (with how long the receiver asked to
// wait), split the batch, give up on this batch (recorded, sync goes on), or stop this target until the
// next run (its URL or credentials are wrong: no batch is given up for that). The README's "Wire contract"
// documents the same table for whoever writes the receiver.

import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { z } from 'zod';
import { secretSchema } from '../agent/secret.js';
import type { SyncKind } from '../agent/store/sync.js';
import { readTlsFiles, tlsFilesSchema } from '../agent/ingest/mqtt.js';

export const httpTargetSchema = z.strictObject({
  type: z.literal('http'),
  /** The target's name: its cursors in the store are kept under it (rename it and it starts from the first row). */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (up to 64)').default('http'),
  /** Where batches are POSTed. */
  url: z.url({ protocol: /^https?$/ }),
  /** Sent as `Authorization: Bearer <token>`; inline, { env } or { file }. */
  token: secretSchema.optional(),
  tls: tlsFilesSchema.optional(),
  /** One POST, from connect to the end of the answer. */
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
});

export type HttpTargetOptions = z.infer<typeof httpTargetSchema>;

export interface Batch {
  kind: SyncKind;
  key: string;
  /** gzip NDJSON. */
  body: Buffer;
  rows: number;
  first: number;
  last: number;
}

export type Outcome =
  | { type: 'ok'; status: number }
  | { type: 'retry'; reason: string; retryAfterMs: number | null }
  | { type: 'split'; reason: string }
  | { type: 'reject'; status: number; response: string }
  | { type: 'stop'; reason: string };

/** What an HTTP status means for a batch (the wire contract). */
export function outcomeOf(status: number, body: string, retryAfter: string | undefined, now = Date.now()): Outcome {
  if (status >= 200 && status < 300) return { type: 'ok', status };
  const said = `HTTP ${status}${body ? `: ${body.slice(0, 300)}` : ''}`;
  if (status === 408 || status === 425 || status === 429 || status >= 500) return { type: 'retry', reason: said, retryAfterMs: retryAfterMs(retryAfter, now) };
  if (status === 413) return { type: 'split', reason: said };
  if ([401, 403, 404, 405, 407].includes(status)) return { type: 'stop', reason: `${said} (check the target's url and credentials)` };
  return { type: 'reject', status, response: body.slice(0, 4000) };
}

/** Retry-After as delay-seconds or an HTTP date; null when absent or unreadable. Capped at one hour. */
export function retryAfterMs(v: string | undefined, now = Date.now()): number | null {
  if (v === undefined) return null;
  const ms = /^\s*\d+\s*$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 3_600_000) : null;
}

export function createHttpTarget(o: Readonly<HttpTargetOptions> & { token?: string }, agentId: string) {
  const url = new URL(o.url);
  const https = url.protocol === 'https:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, ...readTlsFiles(o.tls, `sync.targets (${o.name}).tls`) })
    : new HttpAgent({ keepAlive: true });
  const request = https ? httpsRequest : httpRequest;

  function send(batch: Batch, signal: AbortSignal): Promise<Outcome> {
    return new Promise((resolve) => {
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/x-ndjson',
        'Content-Encoding': 'gzip',
        'Content-Length': batch.body.length,
        'Idempotency-Key': batch.key,
        'X-Edge-Agent': agentId,
        'X-Edge-Agent-Kind': batch.kind,
        'X-Edge-Agent-Rows': batch.rows,
        'X-Edge-Agent-Ids': `${batch.first}-${batch.last}`,
      };
      if (o.token) headers.Authorization = `Bearer ${o.token}`;
      let settled = false;
      const done = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const req = request(url, { method: 'POST', agent, headers, signal }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // The answer is only read for the record: its first 4 KiB.
          if (size < 4096) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => done(outcomeOf(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8').slice(0, 4096), res.headers['retry-after'] as string | undefined)));
        res.on('error', (err) => done({ type: 'retry', reason: `answer cut off: ${err.message}`, retryAfterMs: null }));
      });
      const timer = setTimeout(() => {
        req.destroy(new Error(`no complete answer within ${o.timeoutMs} ms`));
      }, o.timeoutMs);
      req.on('error', (err) => done({ type: 'retry', reason: err.message, retryAfterMs: null }));
      req.end(batch.body);
    });
  }

  return { name: o.name, send, close: () => agent.destroy() };
}

export type Target = Pick<ReturnType<typeof createHttpTarget>, 'name' | 'send' | 'close'>;
