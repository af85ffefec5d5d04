// Embedded broker: with no mqtt.url in the config, the agent starts aedes (on loopback by default) so
// a bare line PC works out of the box. Takes mqtt.embedded and the result topic template; gives the
// broker's URL and the agent's own per-start credentials. Clients authenticate against
// mqtt.embedded.users (anonymous only when none are listed), only the agent publishes on result
// topics, and a packet over maxPacketBytes closes its connection before it is buffered.
// Sessions and queues live in memory: they do not survive a restart of the agent.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { EdgeError } from '../errors.js';
import { createRateLimitedLog, type Logger } from '../log.js';
import { isLoopbackHost, type EmbeddedBrokerOptions } from './mqtt.js';

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** Made at every start; the only client allowed to publish results. */
  agentCredentials: { username: string; password: string };
  close(): Promise<void>;
}

/** What a client must present; the agent's own client is one of them. */
export interface BrokerAccess {
  /** The agent's client ids (its readings and its results connections): no other client may take one over (that would disconnect the agent). */
  agentClientIds: readonly string[];
  /** Every model's result topic: {asset}, {model} and {version} match anything. */
  resultTopicTemplates: readonly string[];
}

const digest = (s: string | Buffer) => createHash('sha256').update(s).digest();

/** The topics the agent's results can have: the template with each placeholder matching anything. */
export function resultTopicPattern(template: string): RegExp {
  const parts = template.split(/\{(?:asset|model|version)\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 's');
}

/**
 * Hand-written because aedes 1.2 and its parser mqtt-packet 9 have no maximum packet size (aedes
 * issue #831): mqtt-packet keeps a whole packet in memory before parsing it, so four 250 MB publishes
 * took the agent to 1.38 GB. This follows each packet's fixed header (type byte, then the Remaining
 * Length as 1-4 bytes of 7 bits) as bytes pass from the socket to aedes, skips the body, and says
 * "too large" as soon as a header announces more than `maxBytes` in all.
 */
export function createPacketSizeGuard(maxBytes: number): (chunk: Buffer) => string | null {
  let bodyLeft = 0;
  let inHeader = false;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  return (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (bodyLeft > 0) {
        const n = Math.min(bodyLeft, chunk.length - i);
        bodyLeft -= n;
        i += n;
        continue;
      }
      if (!inHeader) {
        inHeader = true; // the type byte
        length = 0;
        multiplier = 1;
        lengthBytes = 0;
        i++;
        continue;
      }
      const b = chunk[i++] as number;
      length += (b & 0x7f) * multiplier;
      multiplier *= 128;
      lengthBytes++;
      if (1 + lengthBytes + length > maxBytes) return 'packet too large';
      if (b & 0x80) {
        if (lengthBytes === 4) return 'malformed remaining length';
        continue;
      }
      inHeader = false;
      bodyLeft = length;
    }
    return null;
  };
}

/** aedes reads its socket with `read()` on 'readable': every chunk passes the guard first. */
function guardSocket(socket: Socket, maxBytes: number, onRefused: (reason: string) => void): void {
  const guard = createPacketSizeGuard(maxBytes);
  const read = socket.read.bind(socket);
  socket.read = ((size?: number) => {
    const chunk = read(size) as Buffer | null;
    if (chunk === null || socket.destroyed) return chunk;
    const problem = guard(chunk);
    if (problem === null) return chunk;
    onRefused(problem);
    socket.destroy();
    return null;
  }) as Socket['read'];
}

function authHooks(options: EmbeddedBrokerOptions, access: BrokerAccess, agent: { username: string; password: string }, log: Logger) {
  const users = options.users.map((u) => ({ username: digest(u.username), password: digest(u.password) }));
  const agentUser = { username: digest(agent.username), password: digest(agent.password) };
  const agentClients = new WeakSet<Client>();
  const patterns = access.resultTopicTemplates.map(resultTopicPattern);
  const results = { test: (topic: string) => patterns.some((p) => p.test(topic)) };
  const limited = createRateLimitedLog(10000);
  const refused = (key: string, fields: Record<string, unknown>, msg: string) =>
    limited(key, (suppressed) => log.warn({ ...fields, suppressed }, msg));
  const badLogin = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });

  const authenticate: NonNullable<AedesOptions['authenticate']> = (client, username, password, done) => {
    const name = username ?? '';
    // Fixed-size digests compared in constant time, every user and both fields each time: the time
    // taken says neither which username exists nor how much of a password was right.
    const givenName = digest(name);
    const givenPassword = digest(password ?? Buffer.alloc(0));
    const matches = (u: { username: Buffer; password: Buffer }) => {
      const nameOk = timingSafeEqual(givenName, u.username);
      const passwordOk = timingSafeEqual(givenPassword, u.password);
      return nameOk && passwordOk;
    };
    const isAgent = matches(agentUser);
    let isUser = false;
    for (const u of users) isUser = matches(u) || isUser;
    const anonymousAllowed = users.length === 0;
    const claimsAgent = name === agent.username || access.agentClientIds.includes(client.id);
    if (isAgent || (!claimsAgent && (isUser || anonymousAllowed))) {
      if (isAgent) agentClients.add(client);
      return done(null, true);
    }
    const reason = claimsAgent && (isUser || anonymousAllowed) ? "the agent's client id or username" : 'bad username or password';
    refused(`auth:${reason}`, { clientId: client.id, username: username ?? null, reason }, 'embedded broker refused a client');
    done(badLogin, false);
  };

  const authorizePublish: NonNullable<AedesOptions['authorizePublish']> = (client, packet, done) => {
    if (packet.topic.startsWith('$SYS')) return done(new Error('$SYS topics are reserved'));
    if (results.test(packet.topic) && !(client && agentClients.has(client))) {
      refused('publish', { clientId: client?.id ?? null, topic: packet.topic }, 'embedded broker refused a publish on a result topic');
      return done(new Error('only the agent publishes on result topics'));
    }
    done(null);
  };
  return { authenticate, authorizePublish };
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions, access: BrokerAccess, log: Logger): Promise<EmbeddedBroker> {
  const { host, port, maxPacketBytes } = options;
  const agentCredentials = { username: `edge-agent-internal-${randomBytes(6).toString('hex')}`, password: randomBytes(32).toString('base64url') };
  const aedes = await Aedes.createBroker(authHooks(options, access, agentCredentials, log));
  const limited = createRateLimitedLog(10000);
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    s.setNoDelay(true); // small MQTT packets must not wait for Nagle's algorithm
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    guardSocket(s, maxPacketBytes, (reason) =>
      limited(reason, (suppressed) =>
        log.warn({ reason, maxPacketBytes, remote: s.remoteAddress ?? null, suppressed }, 'embedded broker closed a connection: packet over mqtt.embedded.maxPacketBytes'),
      ),
    );
    aedes.handle(s);
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
  const authentication = options.users.length > 0 ? 'users' : 'anonymous';
  log.info({ host, port: realPort, authentication, users: options.users.length, maxPacketBytes }, 'embedded broker listening');
  if (authentication === 'anonymous' && !isLoopbackHost(host)) {
    // Only reachable with mqtt.embedded.allowAnonymousOnNetwork (the config refuses it otherwise): say so at every start.
    log.warn({ host, port: realPort, key: 'mqtt.embedded.allowAnonymousOnNetwork' }, 'embedded broker accepts anonymous clients from the network');
  }
  let closing: Promise<void> | null = null;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${realPort}`,
    port: realPort,
    agentCredentials,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }).then(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
      return closing;
    },
  };
}
