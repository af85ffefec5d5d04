// HTTP for operators: takes the options and a table of routes (path -> handler); gives a server on
// 127.0.0.1 by default with /healthz, /readyz, /metrics, the status page and its JSON. Read-only: no
// route changes the agent (commands go through the control socket). An optional token guards every
// path: as a bearer token (scripts, Prometheus) or as the password of HTTP Basic auth (a browser asks).

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { EdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { secretSchema } from '../secret.js';
import { metricsOptionsSchema } from './metrics.js';

export const httpOptionsSchema = z
  .strictObject({
    /** Serve health, metrics and the status page. */
    enabled: z.boolean().default(true),
    /** Loopback by default: the page and /metrics then reach only this PC (open it to the plant network on purpose). */
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (logged in 'http listening'). */
    port: z.number().int().min(0).max(65535).default(9471),
    /** When set, every request needs `Authorization: Bearer <token>` or Basic auth with it as the password; inline, { env } or { file }. */
    token: secretSchema.optional(),
    /** /readyz fails when a sync target holds rows unsynced for longer than this (0: never). */
    maxSyncLagSec: z.number().int().nonnegative().default(90_000),
    /** /metrics (agent/observe/metrics.ts). */
    metrics: metricsOptionsSchema,
  })
  .prefault({});

export type HttpOptions = z.infer<typeof httpOptionsSchema>;

/** What a route gives: a status, a content type and a body. */
export interface Reply {
  status: number;
  type: string;
  body: string | Buffer;
  headers?: Record<string, string | string[]>;
}

export type Route = (req: IncomingMessage) => Reply | Promise<Reply>;

export const json = (status: number, value: unknown): Reply => ({ status, type: 'application/json; charset=utf-8', body: `${JSON.stringify(value)}\n` });

export interface HttpServer {
  /** Where it listens, e.g. http://127.0.0.1:9471 */
  readonly url: string;
  close(): Promise<void>;
  destroy(): void;
}

export async function startHttp(o: Readonly<Omit<HttpOptions, 'token'>> & { token?: string }, routes: Readonly<Record<string, Route>>, log: Logger): Promise<HttpServer> {
  const expected = o.token ? sha256(o.token) : null;
  const authorised = (req: IncomingMessage): boolean => (expected ? tokenMatches(req.headers.authorization, expected) : true);
  const send = (res: ServerResponse, r: Reply) => {
    res.writeHead(r.status, { 'Content-Type': r.type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...r.headers });
    res.end(r.body);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, { ...json(405, { error: 'only GET' }), headers: { Allow: 'GET, HEAD' } });
    // Two challenges: Bearer for scripts, Basic so that a browser asks for the token (as the password).
    if (!authorised(req)) return send(res, { ...json(401, { error: 'the token is needed: Authorization: Bearer <token>, or Basic auth with the token as the password' }), headers: { 'WWW-Authenticate': ['Basic realm="edge-agent", charset="UTF-8"', 'Bearer realm="edge-agent"'] } });
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) return send(res, json(404, { error: `no such path: ${path}`, paths: Object.keys(routes) }));
    Promise.resolve()
      .then(() => route(req))
      .then(
        (r) => send(res, r),
        (err: unknown) => {
          log.warn({ path, err: (err as Error).message }, 'http request failed');
          send(res, json(500, { error: (err as Error).message }));
        },
      );
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new EdgeError('EDGE_ERR_CONFIG', `http: cannot listen on ${o.host}:${o.port} (${err.code ?? err.message})${err.code === 'EADDRINUSE' ? ': another process has that port; set http.port' : ''}`)),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  log.info({ url, token: expected !== null }, 'http listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
    destroy: () => server.closeAllConnections(),
  };
}

const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/**
 * The token, from `Authorization: Bearer <token>` or `Basic base64(<any user>:<token>)`, equals the expected
 * one (given as its sha256). Digests of equal length are compared in constant time, so neither the token's
 * content nor its length shows in the answer's timing.
 */
export function tokenMatches(header: string | undefined, expectedSha256: Buffer): boolean {
  if (!header) return false;
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let given: Buffer;
  if (space > 0 && scheme === 'bearer') given = Buffer.from(value);
  else if (space > 0 && scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64');
    const colon = decoded.indexOf(0x3a);
    if (colon < 0) return false;
    given = decoded.subarray(colon + 1);
  } else return false;
  return timingSafeEqual(sha256(given), expectedSha256);
}
