// HTTP for operators: takes the options and a table of routes (path -> handler); gives a server on
// 127.0.0.1 by default with /healthz, /readyz, /metrics, the status page and its JSON. Read-only: no
// route changes the agent (commands go through the control socket). An optional bearer token guards
// every path.

import { timingSafeEqual } from 'node:crypto';
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
    /** When set, every request needs `Authorization: Bearer <token>`; inline, { env } or { file }. */
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
  headers?: Record<string, string>;
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
  const expected = o.token ? Buffer.from(`Bearer ${o.token}`) : null;
  const authorised = (req: IncomingMessage): boolean => {
    if (!expected) return true;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  const send = (res: ServerResponse, r: Reply) => {
    res.writeHead(r.status, { 'Content-Type': r.type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...r.headers });
    res.end(r.body);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, { ...json(405, { error: 'only GET' }), headers: { Allow: 'GET, HEAD' } });
    if (!authorised(req)) return send(res, { ...json(401, { error: 'a bearer token is needed' }), headers: { 'WWW-Authenticate': 'Bearer' } });
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
