// Control channel: a Unix socket beside the store (mode 0600), on which a command run on the same PC
// (`edge-agent model install|rollback|list`) asks the running agent to act. No network port is opened.
// One JSON line asks ({ cmd, args }), one JSON line answers ({ ok: true, result } or { ok: false, code, message }).

import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { EdgeError, isEdgeError, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';

/** The control socket of the agent whose store is at `storePath`: `<store>.sock`, one per store (and so per agent). */
export function controlSocketPath(storePath: string): string {
  return `${storePath}.sock`;
}

export type Handlers = Record<string, (args: Record<string, unknown>) => Promise<unknown>>;

const MAX_REQUEST_BYTES = 64 * 1024;

/** Listens on `path`; the agent holds the store lock, so a socket file left there is a crashed agent's. */
export async function startControl(path: string, handlers: Handlers, log: Logger): Promise<{ close(): Promise<void> }> {
  rmSync(path, { force: true });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.length > MAX_REQUEST_BYTES) return void socket.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void answer(line).then((reply) => socket.end(`${JSON.stringify(reply)}\n`));
    });
  });
  async function answer(line: string): Promise<unknown> {
    let req: { cmd?: unknown; args?: unknown };
    try {
      req = JSON.parse(line) as { cmd?: unknown; args?: unknown };
    } catch {
      return { ok: false, code: 'EDGE_ERR_CLI_USAGE', message: 'not a JSON request' };
    }
    const handler = typeof req.cmd === 'string' && Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : undefined;
    if (!handler) return { ok: false, code: 'EDGE_ERR_CLI_USAGE', message: `unknown command ${JSON.stringify(req.cmd)}` };
    try {
      return { ok: true, result: await handler((req.args ?? {}) as Record<string, unknown>) };
    } catch (err) {
      log.warn({ cmd: req.cmd, err: (err as Error).message }, 'control command failed');
      return isEdgeError(err) ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'EDGE_ERR_INTERNAL', message: (err as Error).message };
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  log.info({ path }, 'control socket listening');
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Asks the agent listening on `path`; gives its result or throws its error. `null` when no agent listens. */
export async function callControl(path: string, cmd: string, args: Record<string, unknown>, timeoutMs: number): Promise<{ result: unknown } | null> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new EdgeError('EDGE_ERR_CONTROL', `the agent on ${path} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify({ cmd, args })}\n`));
    socket.on('data', (d: Buffer) => (buf += d.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(null);
      else reject(new EdgeError('EDGE_ERR_CONTROL', `cannot reach the agent on ${path}: ${err.message}`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(buf) as { ok: boolean; result?: unknown; code?: ErrorCode; message?: string };
        if (reply.ok) resolve({ result: reply.result });
        else reject(new EdgeError(reply.code ?? 'EDGE_ERR_CONTROL', reply.message ?? 'the agent refused'));
      } catch {
        reject(new EdgeError('EDGE_ERR_CONTROL', `the agent on ${path} gave no answer`));
      }
    });
  });
}
