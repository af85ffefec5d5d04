// The MQTT sync target: takes a gzip NDJSON batch and its idempotency key; publishes it as one QoS 1 MQTT 5
// message to an upstream broker (the plant's central broker, a cloud MQTT service) on a connection of its
// own, and says what the PUBACK means, with the same Outcome as the HTTP target. The README's "Wire
// contract (MQTT)" documents it for whoever subscribes.

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { secretSchema } from '../agent/secret.js';
import type { Batch, Outcome } from './http.js';
import { readTlsFiles, tlsFilesSchema } from '../agent/ingest/mqtt.js';

const PLACEHOLDER = /\{([^}]*)\}/g;

export const mqttTargetSchema = z.strictObject({
  type: z.literal('mqtt'),
  /** The target's name: its cursors in the store are kept under it (rename it and it starts from the first row). */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (up to 64)').default('mqtt'),
  /** mqtt:// or mqtts://host:port of the upstream broker; credentials go in username/password, never here (a URL is printed). */
  url: z
    .string()
    .regex(/^mqtts?:\/\/[^/\s]+\/?$/, 'a URL such as mqtts://central.plant.local:8883')
    .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), "a URL without credentials: give them as the target's username and password (which can be a secret)"),
  /** Default edge-agent-sync-<agent id>: stable, and never the ingest connection's id (two clients with one id throw each other off). */
  clientId: z.string().min(1).max(128).optional(),
  username: z.string().optional(),
  /** Inline, { env } or { file }. */
  password: secretSchema.optional(),
  tls: tlsFilesSchema.optional(),
  /** Where batches are published; {agent} is the agent's id, {kind} predictions, dead_letters or model_events. */
  topic: z
    .string()
    .min(1)
    .max(1024)
    .refine((s) => !/[+#]/.test(s) && !s.includes('\u0000'), 'a topic name without wildcards (+ #)')
    .refine((s) => [...s.matchAll(PLACEHOLDER)].every((m) => m[1] === 'agent' || m[1] === 'kind'), 'only the placeholders {agent} and {kind}')
    .default('edge-agent/{agent}/{kind}'),
  /** PUBACK 0x10 (no subscriber matched) counts as delivered: only where nobody needs the rows kept (a broker that always answers 0x10). */
  acceptNoSubscribers: z.boolean().default(false),
  /**
   * The largest message the agent publishes (larger batches go in smaller ones). Keep it at or below the
   * broker's own limit (mosquitto message_size_limit, a cloud service's quota): a broker that announces a
   * Maximum Packet Size in its CONNACK is obeyed anyway, but one that only drops larger messages is not seen.
   */
  maxMessageBytes: z.number().int().min(1024).max(268_435_455).default(128 * 1024),
  /** Connecting, and one publish until its PUBACK. */
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
});

export type MqttTargetOptions = z.infer<typeof mqttTargetSchema>;

/** MQTT 5 reason codes the mapping names (PUBACK and CONNACK share the numbering). */
const RC = { noSubscribers: 0x10, badCredentials: 0x86, notAuthorized: 0x87, banned: 0x8a, badAuthMethod: 0x8c, clientIdInvalid: 0x85, unsupportedVersion: 0x84, topicInvalid: 0x90, quota: 0x97, tooLarge: 0x95 } as const;

/** What a PUBACK reason code means for a batch (the wire contract). */
export function pubackOutcome(rc: number, acceptNoSubscribers: boolean): Outcome {
  const said = `PUBACK 0x${rc.toString(16).padStart(2, '0')}`;
  if (rc === RC.noSubscribers && !acceptNoSubscribers) return { type: 'retry', reason: `${said}: no subscriber matched the topic, the batch would have gone nowhere (subscribe with a persistent session, or set acceptNoSubscribers)`, retryAfterMs: null };
  if (rc < 0x80) return { type: 'ok', status: rc };
  if (rc === RC.notAuthorized || rc === RC.topicInvalid) return { type: 'stop', reason: `${said} (${rc === RC.notAuthorized ? 'not authorized to publish on this topic' : 'topic name invalid'}: check the target's topic and the broker's ACL)` };
  if (rc === RC.tooLarge) return { type: 'split', reason: `${said}: packet too large` };
  if (rc === RC.quota) return { type: 'retry', reason: `${said}: quota exceeded`, retryAfterMs: null };
  return { type: 'reject', status: rc, response: `${said}` };
}

/** What a refused CONNECT means: credentials and identity are the operator's to fix (stop); anything else passes (retry). */
export function connackOutcome(rc: number, message: string): Outcome {
  const refused: number[] = [4, 5, RC.badCredentials, RC.notAuthorized, RC.banned, RC.badAuthMethod, RC.clientIdInvalid, RC.unsupportedVersion];
  if (refused.includes(rc)) return { type: 'stop', reason: `CONNACK ${rc}: ${message} (check the target's url, username, password and clientId)` };
  return { type: 'retry', reason: `CONNACK ${rc}: ${message}`, retryAfterMs: null };
}

/** A publish of `payload` bytes on `topic` with `props`, counted generously: a packet at most this large. */
function packetBytes(topic: string, payload: number, props: Record<string, string>): number {
  let n = 5 + 2 + Buffer.byteLength(topic) + 2 + 5 + 64; // fixed header, topic, packet id, property length, content type and format
  for (const [k, v] of Object.entries(props)) n += 5 + Buffer.byteLength(k) + Buffer.byteLength(v);
  return n + payload;
}

export function createMqttTarget(o: Readonly<MqttTargetOptions> & { password?: string }, agentId: string) {
  const topicOf = (kind: string) => o.topic.replace(PLACEHOLDER, (_, p: string) => (p === 'agent' ? agentId : kind));
  if (/[+#]/.test(agentId) && o.topic.includes('{agent}')) {
    throw new EdgeError('EDGE_ERR_CONFIG', `sync.targets (${o.name}).topic: the agent's id "${agentId}" holds + or # and cannot stand in a topic: set releases.agentId`);
  }
  const options: IClientOptions = {
    protocolVersion: 5,
    clientId: o.clientId ?? `edge-agent-sync-${agentId}`.slice(0, 128),
    username: o.username,
    password: o.password,
    // The store is the outbox: a batch not PUBACKed goes again with its key, so the broker need keep no session.
    clean: true,
    // Reconnecting is the sync loop's business (its backoff, its runs), not the library's.
    reconnectPeriod: 0,
    // As the agent's own connections (agent/ingest/mqtt.ts): no 6 MB cache of packet-id Buffers.
    writeCache: false,
    connectTimeout: o.timeoutMs,
    keepalive: 60,
    ...readTlsFiles(o.tls, `sync.targets (${o.name}).tls`),
  };
  let client: MqttClient | null = null;
  let maxPacket = Infinity;

  const drop = () => {
    client?.removeAllListeners();
    client?.on('error', () => undefined);
    client?.end(true);
    client = null;
  };

  /** The connection, made now if there is none; or the Outcome that says why there is none. */
  function connect(signal: AbortSignal): Promise<MqttClient | Outcome> {
    if (client?.connected) return Promise.resolve(client);
    drop();
    return new Promise((resolve) => {
      const c = mqtt.connect(o.url, options);
      client = c;
      const settle = (r: MqttClient | Outcome) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
        c.off('connect', connected);
        c.off('error', failed);
        c.off('close', closed);
        if (r !== c) drop();
        resolve(r);
      };
      const connected = (connack: mqtt.IConnackPacket) => {
        maxPacket = connack.properties?.maximumPacketSize ?? Infinity;
        // Later losses only mark the connection gone; the publish under way hears of it by its own listener.
        c.on('close', () => {
          if (client === c) client = null;
        });
        c.on('error', () => undefined);
        settle(c);
      };
      const failed = (err: Error & { code?: unknown }) => settle(typeof err.code === 'number' ? connackOutcome(err.code, err.message) : { type: 'retry', reason: `cannot connect to ${o.url}: ${err.message}`, retryAfterMs: null });
      const closed = () => settle({ type: 'retry', reason: `cannot connect to ${o.url}: connection closed`, retryAfterMs: null });
      const aborted = () => settle({ type: 'retry', reason: 'sync stopping', retryAfterMs: null });
      const timer = setTimeout(() => settle({ type: 'retry', reason: `no CONNACK from ${o.url} within ${o.timeoutMs} ms`, retryAfterMs: null }), o.timeoutMs);
      c.on('connect', connected);
      c.on('error', failed);
      c.on('close', closed);
      signal.addEventListener('abort', aborted, { once: true });
    });
  }

  async function send(batch: Batch, signal: AbortSignal): Promise<Outcome> {
    const c = await connect(signal);
    if (!('publish' in c)) return c;
    const topic = topicOf(batch.kind);
    const userProperties = {
      'idempotency-key': batch.key,
      'content-encoding': 'gzip',
      agent: agentId,
      kind: batch.kind,
      rows: String(batch.rows),
      ids: `${batch.first}-${batch.last}`,
    };
    // A packet over the broker's Maximum Packet Size would cost the connection (the broker disconnects): smaller batches instead.
    const size = packetBytes(topic, batch.body.length, userProperties);
    if (size > maxPacket) return { type: 'split', reason: `a ${size}-byte packet is over the broker's maximum packet size (${maxPacket} bytes)` };
    if (size > o.maxMessageBytes) return { type: 'split', reason: `a ${size}-byte message is over the target's maxMessageBytes (${o.maxMessageBytes})` };
    return new Promise((resolve) => {
      let rc = 0;
      let settled = false;
      const done = (r: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
        c.off('packetreceive', onPacket);
        c.off('close', closed);
        c.off('error', failed);
        // A batch that was not answered leaves its connection: a late PUBACK must not count for anything.
        if (r.type === 'retry' && client === c) drop();
        resolve(r);
      };
      // mqtt.js gives the publish callback no PUBACK reason code below 0x80; one publish at a time, so the next PUBACK is this one's.
      const onPacket = (p: mqtt.Packet) => {
        if (p.cmd === 'puback') rc = p.reasonCode ?? 0;
      };
      const closed = () => done({ type: 'retry', reason: `connection to ${o.url} lost before the PUBACK`, retryAfterMs: null });
      // mosquitto 2.0 answers a message over its message_size_limit with PUBACK 0x95, a code MQTT 5 does not allow
      // in a PUBACK: mqtt.js reports a parse error and never calls back. Said plainly, and the connection dropped.
      const failed = (err: Error) => done({ type: 'retry', reason: `unreadable answer from the broker: ${err.message}${/puback/i.test(err.message) ? ` (mosquitto answers so a message over its message_size_limit: set this target's maxMessageBytes below it)` : ''}`, retryAfterMs: null });
      const aborted = () => done({ type: 'retry', reason: 'sync stopping', retryAfterMs: null });
      const timer = setTimeout(() => done({ type: 'retry', reason: `no PUBACK within ${o.timeoutMs} ms`, retryAfterMs: null }), o.timeoutMs);
      c.on('packetreceive', onPacket);
      c.on('close', closed);
      c.on('error', failed);
      signal.addEventListener('abort', aborted, { once: true });
      c.publish(topic, batch.body, { qos: 1, properties: { contentType: 'application/x-ndjson', payloadFormatIndicator: false, userProperties } }, (err) => {
        const code = (err as { code?: unknown } | undefined)?.code;
        if (!err) done(pubackOutcome(rc, o.acceptNoSubscribers));
        else if (typeof code === 'number') done(pubackOutcome(code, o.acceptNoSubscribers));
        else done({ type: 'retry', reason: `publish failed: ${err.message}`, retryAfterMs: null });
      });
    });
  }

  return { name: o.name, send, close: drop };
}
