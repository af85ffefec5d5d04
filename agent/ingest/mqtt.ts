// MQTT connection: takes the broker options; gives a connected mqtt.js client with a persistent
// session, reconnect with exponential backoff, and a re-subscribe whenever the broker lost the session.
// The caller installs `handleMessage` (see ingest.ts) before the first CONNACK can deliver anything.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { EdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { secretSchema, type Resolved } from '../secret.js';

/**
 * mqtt:// or mqtts://host:port, shared with the CLI's `simulate --url`. Credentials in a URL would be
 * printed wherever the URL is (logs, `config check`): refused, they go in mqtt.username/password.
 */
export const brokerUrlSchema = z
  .string()
  .regex(/^mqtts?:\/\/[^/\s]+\/?$/, 'a URL such as mqtt://broker:1883 or mqtts://broker:8883')
  .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), 'a URL without credentials: give them as mqtt.username and mqtt.password (which can be a secret)');

/** Addresses that only this PC can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export const embeddedBrokerOptionsSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(1883),
  /** Clients allowed to connect. With any user listed, anonymous clients are refused. */
  users: z
    .array(z.strictObject({ username: z.string().min(1).max(256), password: secretSchema }))
    .default([])
    .refine((us) => new Set(us.map((u) => u.username)).size === us.length, 'each username once'),
  /** A client sending a larger MQTT packet is disconnected before the packet is buffered. */
  maxPacketBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(1024 * 1024),
  /** For a closed cell network only: listen beyond loopback without users. Logged as a warning at every start. */
  allowAnonymousOnNetwork: z.boolean().default(false),
});

export type EmbeddedBrokerOptions = Resolved<z.infer<typeof embeddedBrokerOptionsSchema>>;

/** TLS files (PEM) of a connection: the CA to trust, a client certificate and its key. Paths are checked at load. */
export const tlsFilesSchema = z.strictObject({
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  rejectUnauthorized: z.boolean().default(true),
});

export const mqttOptionsSchema = z
  .strictObject({
    /** mqtt:// or mqtts:// URL of the plant broker. Absent: the agent starts its embedded broker. */
    url: brokerUrlSchema.optional(),
    /** The embedded broker (used when url is absent). */
    embedded: embeddedBrokerOptionsSchema.prefault({}),
    clientId: z.string().min(1).max(128).default(`edge-agent-${hostname()}`),
    username: z.string().optional(),
    password: secretSchema.optional(),
    tls: tlsFilesSchema.optional(),
    protocolVersion: z.literal([4, 5]).default(4),
    /** MQTT 5 only: how long the broker keeps the session while the agent is away. */
    sessionExpirySec: z.number().int().nonnegative().default(7 * 24 * 3600),
    /**
     * MQTT 5 only: the largest packet the broker may send the agent (CONNECT's Maximum Packet Size). A
     * larger message is discarded by the broker for this client, so one huge payload costs the agent
     * nothing; MQTT 3.1.1 has no such limit and the agent reads each packet whole before judging it.
     */
    maxPacketBytes: z.number().int().min(1024).max(268435455).default(1024 * 1024),
    keepaliveSec: z.number().int().min(1).max(65535).default(30),
    connectTimeoutMs: z.number().int().min(100).default(30000),
    reconnectMinMs: z.number().int().min(10).default(1000),
    reconnectMaxMs: z.number().int().min(10).default(30000),
  })
  .superRefine((o, ctx) => {
    const e = o.embedded;
    if (o.url === undefined && !isLoopbackHost(e.host) && e.users.length === 0 && !e.allowAnonymousOnNetwork) {
      ctx.addIssue({
        code: 'custom',
        path: ['embedded', 'host'],
        message:
          'a loopback address (127.0.0.1, ::1) while mqtt.embedded.users is empty: list users, or set ' +
          'mqtt.embedded.allowAnonymousOnNetwork: true on a closed cell network',
      });
    }
  })
  .prefault({});

export type MqttOptions = Resolved<z.infer<typeof mqttOptionsSchema>>;

export interface Subscription { topic: string; qos: 0 | 1 | 2 }

/**
 * The TLS files of a connection read into what node:tls takes; an unreadable one is EDGE_ERR_CONFIG naming
 * its key (`at`: where the tls block is in the config, e.g. mqtt.tls).
 */
export function readTlsFiles(tls: Readonly<z.infer<typeof tlsFilesSchema>> | undefined, at: string): { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean } {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new EdgeError('EDGE_ERR_CONFIG', `${at}.${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  };
  return { ca: read(tls?.caFile, 'caFile'), cert: read(tls?.certFile, 'certFile'), key: read(tls?.keyFile, 'keyFile'), rejectUnauthorized: tls?.rejectUnauthorized ?? true };
}

/** Creates the client (not yet connected: call `client.connect()` after installing handleMessage). */
/** `onSubscribed`: the broker acknowledged the subscriptions (with `refused` topics it would not grant). */
/** `extra`: mqtt.js options over these (the Sparkplug B host's connection: a clean session). */
/** `name`: which connection its connect line is about, when the agent has several ("results connection"). */
export function createMqttClient(
  url: string,
  o: Omit<MqttOptions, 'embedded'>,
  subscriptions: readonly Subscription[],
  log: Logger,
  onSubscribed: (refused: string[]) => void = () => undefined,
  extra: Partial<IClientOptions> = {},
  name?: string,
): MqttClient {
  const options: IClientOptions = {
    clientId: o.clientId,
    clean: false,
    protocolVersion: o.protocolVersion,
    keepalive: o.keepaliveSec,
    connectTimeout: o.connectTimeoutMs,
    reconnectPeriod: o.reconnectMinMs,
    resubscribe: false,
    manualConnect: true,
    // A refused CONNACK (bad credentials, not authorised) is retried with backoff like a lost
    // connection: the broker's ACL may be fixed without touching the line PC.
    reconnectOnConnackError: true,
    // mqtt.js calls its debug logger on every packet; even disabled it cost ~2 % of a backlog drain.
    log: () => undefined,
    // mqtt-packet otherwise builds a cache of 65,536 two-byte Buffers (6.3 MB of heap, measured) at the first
    // packet: copied and promoted by the scavenges of the first seconds (12-35 ms pauses, measured with
    // --trace-gc-nvp) and marked by every major GC after. Without it, a packet id costs one 2-byte slice.
    writeCache: false,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.protocolVersion === 5 ? { properties: { sessionExpiryInterval: o.sessionExpirySec, maximumPacketSize: o.maxPacketBytes } } : {}),
  };
  if (o.tls) Object.assign(options, readTlsFiles(o.tls, 'mqtt.tls'));
  const client = mqtt.connect(url, { ...options, ...extra });
  let attempt = 0;
  // Runs before mqtt.js's own 'close' listener arms the reconnect timer, so the next retry waits longer.
  client.prependListener('close', () => {
    const delay = Math.min(o.reconnectMaxMs, o.reconnectMinMs * 2 ** Math.min(attempt, 16));
    client.options.reconnectPeriod = Math.round(delay * (0.8 + Math.random() * 0.4));
    attempt++;
  });
  watchForTakeovers(client, o.clientId, log);
  let subscribedOnce = false;
  client.on('connect', (connack) => {
    // Results and PUBACKs are small packets: without TCP_NODELAY, Nagle's algorithm holds them back
    // (measured: +10 ms at the median at 500 msg/s). mqtt.js leaves the option at Node's default.
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    attempt = 0;
    client.options.reconnectPeriod = o.reconnectMinMs;
    log.info({ url, clientId: o.clientId, sessionPresent: connack.sessionPresent }, name ? `${name}: connected to broker` : 'connected to broker');
    // Subscribe on this process's first connect (the config may have changed since the session was
    // made) and whenever the broker has lost the session; otherwise the session still holds them.
    if (subscribedOnce && connack.sessionPresent) return;
    subscribedOnce = true;
    if (subscriptions.length === 0) return onSubscribed([]); // every reading comes on the Sparkplug B host's connection
    const wanted = Object.fromEntries(subscriptions.map((s) => [s.topic, { qos: s.qos }]));
    client.subscribe(wanted, (err, granted) => {
      if (err) {
        log.error({ err }, 'subscribe failed');
        return;
      }
      const refused: string[] = [];
      for (const g of granted ?? []) {
        if (g.qos === 128) {
          refused.push(g.topic);
          log.error({ topic: g.topic }, 'broker refused subscription');
        } else log.info({ topic: g.topic, qos: g.qos }, 'subscribed');
      }
      onSubscribed(refused);
    });
  });
  return client;
}

/**
 * Holds the client's socket writes until the returned release is called (one write per event-loop turn instead
 * of one per packet). `onNewStream`: called once for each socket the client connects on, before its first cork.
 */
export function corkClient(client: MqttClient, onNewStream?: (stream: NodeJS.ReadWriteStream) => void): () => () => void {
  const seen = new WeakSet<object>();
  return () => {
    const stream = client.stream as (NodeJS.ReadWriteStream & { cork?: () => void; uncork?: () => void }) | undefined;
    if (!stream?.cork || !stream.uncork) return () => undefined;
    if (onNewStream && !seen.has(stream)) {
      seen.add(stream);
      onNewStream(stream);
    }
    stream.cork();
    return () => stream.uncork?.();
  };
}

/** Connections closed by the broker, each within this long of its CONNACK, that hint at a takeover... */
const TAKEOVER_LIFETIME_MS = 30_000;
/** ...when this many of them fall within this window. */
const TAKEOVER_COUNT = 3;
const TAKEOVER_WINDOW_MS = 120_000;

/**
 * Two clients with one client id (a copied config, a second agent started by hand) take the session
 * from each other in turn: each connect makes the broker close the other, and both reconnect forever.
 * MQTT 5 brokers say so (DISCONNECT with reason 0x8E, session taken over); MQTT 3.1.1 brokers just close
 * the socket, so a run of short connections that the broker closed without any error is the sign.
 */
function watchForTakeovers(client: MqttClient, clientId: string, log: Logger): void {
  let connectedAt = 0;
  let errored = false;
  const closes: number[] = [];
  client.on('connect', () => {
    connectedAt = performance.now();
    errored = false;
  });
  // A keepalive timeout or a refused CONNACK is another story; a reset socket is how a takeover often looks.
  client.on('error', (err) => void (errored ||= err.message === 'Keepalive timeout' || typeof (err as { code?: unknown }).code === 'number'));
  client.on('disconnect', (packet) => {
    if (packet.reasonCode === 0x8e) {
      errored = true; // reported here; not counted again below
      log.error({ clientId, reasonCode: 0x8e }, 'the broker gave this session to another client with the same client id');
    }
  });
  client.on('close', () => {
    const now = performance.now();
    const lived = now - connectedAt;
    const wasConnected = connectedAt > 0;
    connectedAt = 0;
    if (!wasConnected || errored || client.disconnecting || lived > TAKEOVER_LIFETIME_MS) return;
    closes.push(now);
    while (closes.length && now - (closes[0] as number) > TAKEOVER_WINDOW_MS) closes.shift();
    if (closes.length >= TAKEOVER_COUNT) {
      log.error(
        { clientId, closes: closes.length, windowSec: TAKEOVER_WINDOW_MS / 1000 },
        'the broker keeps closing the connection: another client is probably using the same client id (mqtt.clientId)',
      );
      closes.length = 0;
    }
  });
}
