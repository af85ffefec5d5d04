// Embedded broker: with no mqtt.url in the config, the agent starts aedes on loopback so a bare
// line PC works out of the box (gateways point at it). Takes host and port; gives the broker's URL.
// Its sessions and queues live in memory: they do not survive a restart of the agent.

import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { EdgeError } from './errors.js';
import type { Logger } from './log.js';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number, log: Logger): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle);
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    s.setNoDelay(true); // small MQTT packets must not wait for Nagle's algorithm
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new EdgeError('EDGE_ERR_BROKER', `embedded broker cannot listen on ${host}:${port}: ${err.message}`, { cause: err })),
    );
    server.listen(port, host, () => resolve());
  }).catch(async (err: unknown) => {
    await new Promise<void>((r) => aedes.close(() => r()));
    throw err;
  });
  const address = server.address();
  const realPort = typeof address === 'object' && address ? address.port : port;
  log.info({ host, port: realPort }, 'embedded broker listening');
  let closing: Promise<void> | null = null;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${realPort}`,
    port: realPort,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }).then(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
      return closing;
    },
  };
}
