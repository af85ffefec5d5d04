// A real HTTP ingest service for sync tests (Node's http module on loopback): takes gzip NDJSON batches,
// answers what the test scripts (status, Retry-After, a held answer), and keeps every request as it came
// (key, headers, rows, when) and the rows of each key once, as a receiver that discards resends would.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { teardown, type Teardown } from './parts.js';

export interface Received { key: string; kind: string; at: number; headers: IncomingMessage['headers']; rows: Record<string, unknown>[]; status: number; clientCn: string | null }
export interface Answer { status: number; retryAfter?: string; body?: string; holdMs?: number }

/** `tls`: HTTPS that demands a client certificate signed by `ca`. */
export async function startReceiver(t: Teardown, port = 0, tls?: { cert: string; key: string; ca: string }) {
  const requests: Received[] = [];
  const byKey = new Map<string, Record<string, unknown>[]>();
  /** Answers for the coming requests, in order; when empty, 200. */
  const script: ((r: Received) => Answer | undefined)[] = [];
  let onRequest: (r: Received) => void = () => undefined;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = gunzipSync(Buffer.concat(chunks)).toString('utf8');
      const rows = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const peer = tls ? (req.socket as TLSSocket).getPeerCertificate() : null;
      const r: Received = { key: String(req.headers['idempotency-key']), kind: String(req.headers['x-edge-agent-kind']), at: Date.now(), headers: req.headers, rows, status: 200, clientCn: typeof peer?.subject?.CN === 'string' ? peer.subject.CN : null };
      const answer = script.shift()?.(r) ?? { status: 200 };
      r.status = answer.status;
      requests.push(r);
      onRequest(r);
      const reply = () => {
        if (answer.status >= 200 && answer.status < 300 && !byKey.has(r.key)) byKey.set(r.key, rows);
        res.writeHead(answer.status, answer.retryAfter ? { 'Retry-After': answer.retryAfter } : {});
        res.end(answer.body ?? '');
      };
      if (answer.holdMs) setTimeout(reply, answer.holdMs);
      else reply();
    });
  };
  const server: Server = tls
    ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key), ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: true }, handler)
    : createServer(handler);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  teardown(t, close);
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
    port: (server.address() as AddressInfo).port,
    requests,
    script,
    /** The rows of every batch taken, each key once (what a receiver that discards resends keeps). */
    rows: (kind?: string) => [...byKey.values()].flat().filter((r) => kind === undefined || r.kind === kind),
    set onRequest(f: (r: Received) => void) {
      onRequest = f;
    },
    close,
  };
}
