// Ingest, the Sparkplug B host's own MQTT connection: takes the broker options, the models whose payload style
// is sparkplug with a hostId, and their host's STATE; gives a second mqtt.js client (clean session, client id
// `<mqtt.clientId>-spb`) that carries their subscriptions and the host's STATE, rebirth requests and answers.
//
// Why a second connection: the specification wants a host's session clean (Clean Session, or Clean Start with
// Session Expiry 0) and STATE as its first publish after the SUBACK, with the Will set at every CONNECT; the
// agent's main connection keeps a persistent session for its QoS 1 readings. Everything on this one is QoS 0:
// ingest stores QoS 1 in the inbox before the PUBACK by corking the main socket only, so a PUBACK on this socket
// would leave before the message is durable. Sparkplug B edge nodes publish DATA at QoS 0 anyway.

import type { IPublishPacket, MqttClient } from 'mqtt';
import type { ModelSpec } from '../config.js';
import type { Logger } from '../log.js';
import { createMqttClient, type MqttOptions, type Subscription } from './mqtt.js';
import type { Command } from './sparkplug-types.js';

/** What the connection needs of the host (sparkplug.ts): STATE birth + Will before each CONNECT, death at a clean stop. */
export interface StateSource {
  stateBirth(now: number): (Command & { will: Command }) | null;
  stateDeath(now: number): Command | null;
}

type Spec = Pick<ModelSpec, 'payload' | 'subscriptions' | 'keys'>;

const hostIdOf = (m: Spec): string | undefined => (m.payload.style === 'sparkplug' ? m.payload.sparkplug.hostId : undefined);

/** The models that publish STATE as a Sparkplug host: their host id, the one whose host owns the STATE, their topic filters. */
export interface SparkplugPlan<S extends Spec = Spec> {
  hostId: string;
  stateTopic: string;
  /** The model whose host answers the STATE topic (the first with a hostId). */
  owner: S;
  models: S[];
  subscriptions: Subscription[];
}

export function sparkplugPlan<S extends Spec>(models: readonly S[]): SparkplugPlan<S> | null {
  const hosted = models.filter((m) => hostIdOf(m) !== undefined);
  const owner = hosted[0];
  if (!owner) return null;
  const hostId = hostIdOf(owner) as string;
  const topics = [...new Set(hosted.flatMap((m) => m.subscriptions.map((s) => s.topic)))];
  return { hostId, stateTopic: `spBv1.0/STATE/${hostId}`, owner, models: hosted, subscriptions: topics.map((topic) => ({ topic, qos: 0 })) };
}

/** Config problems, each naming its key: a QoS 1 subscription of a hosted model, two host ids in one agent. */
export function sparkplugConfigProblems(models: readonly Spec[]): string[] {
  const problems: string[] = [];
  let first: { id: string; key: string } | null = null;
  for (const m of models) {
    const id = hostIdOf(m);
    if (id === undefined) continue;
    const key = `${m.keys.payload}.sparkplug.hostId`;
    if (first && first.id !== id) problems.push(`${key}: got "${id}" — the host id of ${first.key} ("${first.id}"): one Sparkplug host id per agent`);
    first ??= { id, key };
    m.subscriptions.forEach((s, j) => {
      if (s.qos !== 0) {
        problems.push(`${m.keys.subscriptions}[${j}].qos: got ${s.qos} — 0 (write qos: 0): with sparkplug.hostId the model's messages come on the host's own clean-session connection, where a QoS 1 acknowledgement could not wait for the inbox`);
      }
    });
  }
  return problems;
}

/**
 * The main connection's persistent session may still hold these filters from a run before hostId was set: every
 * message would then come on both connections (the second copy a duplicate seq, a birth taken twice). At its
 * first connect with a session present, the main connection unsubscribes those no other model of it takes.
 */
export function leaveMainSession(main: MqttClient, plan: SparkplugPlan, kept: readonly Subscription[], log: Logger): void {
  const stale = plan.subscriptions.map((s) => s.topic).filter((f) => !kept.some((k) => k.topic === f));
  if (!stale.length) return;
  main.once('connect', (connack) => {
    if (!connack.sessionPresent) return;
    main.unsubscribe(stale, (err) => {
      if (err) log.warn({ topics: stale, err: err.message }, 'sparkplug filters not dropped from the main session');
    });
  });
}

export interface SparkplugDeps {
  host: StateSource;
  log: Logger;
  /** Where the messages go (ingest.handleMessage): set before connect(). */
  handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void;
  /** The broker acknowledged the subscriptions and the STATE birth (with the filters it refused). */
  onSubscribed(refused: string[]): void;
}

export function createSparkplugClient(url: string, o: Omit<MqttOptions, 'embedded'>, plan: SparkplugPlan, deps: SparkplugDeps) {
  const { host, log } = deps;
  const clientId = `${o.clientId}-spb`;
  let birth: Command | null = null;
  const subscriptions = [...plan.subscriptions, { topic: plan.stateTopic, qos: 0 as const }];
  const client: MqttClient = createMqttClient(url, { ...o, clientId, sessionExpirySec: 0 }, subscriptions, log, (refused) => {
    // tck-id-host-topic-phid-birth-required: the birth right after the SUBACK, QoS 1, retained, the Will's timestamp.
    // Ready once the broker has it (PUBACK): a SCADA that reads STATE then sees the agent online.
    const b = birth;
    if (!b) return deps.onSubscribed(refused);
    client.publish(b.topic, b.payload, { qos: 1, retain: true }, (err) => {
      if (err) return log.warn({ topic: b.topic, err: err.message }, 'sparkplug STATE birth not published');
      log.info({ topic: b.topic, clientId }, 'sparkplug host online');
      deps.onSubscribed(refused);
    });
  }, { clean: true, queueQoSZero: false });
  client.handleMessage = (packet, callback) => deps.handleMessage(packet, callback);
  client.on('error', (err) => log.error({ clientId, err: err.message }, 'mqtt error'));
  /** A fresh STATE birth and its Will (one timestamp) before every CONNECT (tck-id-host-topic-phid-death-payload-timestamp-connect). */
  const arm = () => {
    const s = host.stateBirth(Date.now());
    if (!s) return;
    birth = s;
    client.options.will = { topic: s.will.topic, payload: s.will.payload, qos: 1, retain: true };
  };
  client.on('reconnect', arm);
  let closed = false;
  return {
    client,
    connect(): void {
      arm();
      client.connect();
    },
    /** A rebirth request: QoS 0, not retained. */
    command(c: Command): void {
      client.publish(c.topic, c.payload, { qos: 0, retain: false }, (err) => {
        if (err) log.warn({ topic: c.topic, err: err.message }, 'sparkplug command not published');
      });
    },
    /** Our STATE again (we read ourselves offline): QoS 1, retained. */
    state(c: Command): void {
      client.publish(c.topic, c.payload, { qos: 1, retain: true });
    },
    /** The STATE death, acknowledged by the broker, then DISCONNECT (the broker drops the Will). */
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const death = client.connected ? host.stateDeath(Date.now()) : null;
      if (death) await new Promise<void>((resolve) => client.publish(death.topic, death.payload, { qos: 1, retain: true }, () => resolve()));
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
    destroy(): void {
      closed = true;
      client.end(true);
    },
  };
}

export type SparkplugClient = ReturnType<typeof createSparkplugClient>;
