// Publish: takes a committed batch's results; gives the line each result as JSON on a topic made from the
// configured template, e.g. plant/{asset}/predictions/{model} (or, with publish.batch, one JSON array per topic
// and batch). Results go out only after the commit, so every result a PLC or HMI sees is also in the store.
// They leave on a connection of their own (results.ts).

import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import type { Verdict } from '../models/manifest.js';
import { publishTopicProblem, topicLevelProblem } from './ingest/topic.js';

const PLACEHOLDERS = ['asset', 'model', 'version'] as const;

/** A result topic template: {asset}, {model} and {version} are filled in. */
export const resultTopicSchema = z
  .string()
  .min(1)
  .refine((t) => !/[+#]/.test(t), 'a topic without the wildcards + and #')
  .refine((t) => publishTopicProblem(t.replace(/\{[^}]*\}/g, 'x')) === null, 'a topic a broker accepts: no control characters or noncharacters, not starting with $')
  .refine(
    (t) => [...t.matchAll(/\{([^}]*)\}/g)].every((m) => (PLACEHOLDERS as readonly string[]).includes(m[1] ?? '')),
    `placeholders among ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
  );

export const publishOptionsSchema = z
  .strictObject({
    /** Result topic; {asset}, {model} and {version} are filled in. A model may name its own (models[].resultTopic). */
    topic: resultTopicSchema.default('edge-agent/{asset}/predictions/{model}'),
    qos: z.literal([0, 1, 2]).default(1),
    retain: z.boolean().default(false),
    /** Set false to keep predictions in the store only. */
    enabled: z.boolean().default(true),
    /**
     * Results waiting to be published beyond which the oldest are not published (they stay in the
     * store; each one skipped is counted and logged). Bounds memory when the broker is slower than the model.
     */
    maxPendingResults: z.number().int().min(1).default(100000),
    /**
     * The same bound in bytes of the waiting messages' payloads (their JSON's length: a byte a character for ASCII
     * text), whichever is reached first. 100,000 results of about 700 bytes took about 75 MB of the agent's heap
     * (10,000 readings/s on a box that could not publish them).
     */
    maxPendingBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    /**
     * true: one message per batch and result topic, a JSON array of the results (for consumers that take them:
     * far fewer messages for the broker); false: one message per reading.
     */
    batch: z.boolean().default(false),
    /** The results connection's client id; default mqtt.clientId with "-results" appended. */
    clientId: z.string().min(1).max(128).optional(),
  })
  .prefault({});

export type PublishOptions = z.infer<typeof publishOptionsSchema>;

export interface Result {
  /** The result topic template of the model that made it (publish.topic or its models[].resultTopic). */
  topicTemplate: string;
  id: number;
  asset: string;
  model: string;
  version: string;
  receivedAt: number;
  sourceTopic: string;
  verdict: Verdict;
  latencyMs: number;
}

export function resultTopic(template: string, r: { asset: string; model: string; version: string }): string {
  return template.replace(/\{(asset|model|version)\}/g, (_, k: 'asset' | 'model' | 'version') => r[k]);
}

/**
 * What keeps a model's name or version out of the result topic, or null: checked when a model is
 * loaded, so that no result of it can poison the broker session (see topic.ts).
 */
export function modelTopicProblem(template: string, model: string, version: string, at = 'publish.topic'): string | null {
  for (const [key, value] of [['model', model], ['version', version]] as const) {
    if (!template.includes(`{${key}}`)) continue;
    const p = topicLevelProblem(value, 1024);
    if (p) return `${at} "${template}" puts the model's ${key} in the topic, and ${JSON.stringify(value)} ${p}`;
  }
  return null;
}

export function resultPayload(r: Result): string {
  return JSON.stringify(resultJson(r));
}

function resultJson(r: Result): Record<string, unknown> {
  return {
    id: r.id,
    asset: r.asset,
    model: r.model,
    version: r.version,
    receivedAt: new Date(r.receivedAt).toISOString(),
    sourceTopic: r.sourceTopic,
    ...r.verdict,
    latencyMs: Math.round(r.latencyMs * 1000) / 1000,
  };
}

/** A message for the broker: its topic, its payload, and the results it carries (one, or a batch's for this topic). */
export interface Outgoing {
  topic: string;
  payload: string;
  /** The first result's id and asset (for the log line when it is skipped or refused). */
  id: number;
  asset: string;
  results: number;
}

/**
 * Results as messages: one per result, or (batch) one per topic holding a JSON array of that topic's results.
 * A result whose topic a broker would reject is not made a message: `onInvalid` hears of it. Topics are filled in
 * and checked once per asset.
 */
export function createOutgoing(batch: boolean, onInvalid: (r: Result, topic: string, problem: string) => void) {
  const topics = new Map<string, { topic: string; problem: string | null }>();
  const topicOf = (r: Result) => {
    const key = `${r.topicTemplate}\0${r.asset}\0${r.model}\0${r.version}`;
    let t = topics.get(key);
    if (!t) {
      const topic = resultTopic(r.topicTemplate, r);
      // Last line of defence: the asset and the model were checked on the way in, but a topic the
      // broker rejects would drop the connection and be resent on every reconnect.
      t = { topic, problem: publishTopicProblem(topic) };
      if (topics.size >= 10_000) topics.clear();
      topics.set(key, t);
    }
    return t;
  };
  return (results: readonly Result[]): Outgoing[] => {
    const out: Outgoing[] = [];
    const byTopic = batch ? new Map<string, { first: Result; items: Record<string, unknown>[] }>() : null;
    for (const r of results) {
      const t = topicOf(r);
      if (t.problem) {
        onInvalid(r, t.topic, t.problem);
        continue;
      }
      if (!byTopic) {
        out.push({ topic: t.topic, payload: resultPayload(r), id: r.id, asset: r.asset, results: 1 });
        continue;
      }
      const g = byTopic.get(t.topic);
      if (g) g.items.push(resultJson(r));
      else byTopic.set(t.topic, { first: r, items: [resultJson(r)] });
    }
    if (byTopic) for (const [topic, g] of byTopic) out.push({ topic, payload: JSON.stringify(g.items), id: g.first.id, asset: g.first.asset, results: g.items.length });
    return out;
  };
}

/** What the predictor hands results to (results.ts: the results connection). */
export interface Publisher {
  /** A committed batch's results, in order. */
  publish(results: readonly Result[]): void;
  /** Resolves when every result handed over so far is sent (QoS 0) or acknowledged (QoS 1/2), or given up. */
  settled(): Promise<void>;
  /** Results handed over and not yet sent or acknowledged. */
  readonly pending: number;
  /** Results sent (QoS 0: handed to the socket) or acknowledged by the broker (QoS 1/2) so far. */
  readonly sent: number;
  /** Results not published because maxPendingResults or maxPendingBytes was reached (they are in the store). */
  readonly skipped: number;
  /** Results not published because their topic is one a broker would reject (they are in the store). */
  readonly invalid: number;
}

/** The counts of a sender: every result handed over ends in exactly one of them (or is still pending). */
export interface SenderCounts { sent: number; skipped: number; invalid: number; failed: number }

/**
 * Messages handed to mqtt.js in one event-loop turn. mqtt.js adds one 'drain' listener per publish
 * while the socket is full, and thousands of them make every write quadratic (measured: 40 % of the
 * agent's CPU in removeListener during a backlog drain); after the turn the socket is flushed.
 */
const PER_TURN = 256;
/**
 * Messages awaiting the broker's PUBACK at once. Large, so that a slow broker round trip does not cap the
 * rate (measured when results shared the readings' socket: 256 in flight let results trail the committed
 * rows by ~20k).
 */
const IN_FLIGHT = 8192;
/** Bytes waiting in the results socket beyond which no more messages are handed to mqtt.js until it drains. */
const MAX_BUFFERED = 256 * 1024;
/** Messages taken from the front of the queue after which the queue lets go of them (see compact). */
const COMPACT_AT = 1024;

/**
 * The sending end, on the results connection: a queue of messages, at most PER_TURN handed to mqtt.js per turn
 * (one corked write), at most IN_FLIGHT awaiting acknowledgement; past maxPendingResults results, or past
 * maxPendingBytes of payload waiting in the queue, the oldest queued messages are skipped (counted, `onSkip`;
 * their predictions are in the store).
 */
export function createSender(
  options: Pick<PublishOptions, 'qos' | 'retain' | 'maxPendingResults' | 'maxPendingBytes'>,
  client: MqttClient,
  cork: () => () => void,
  onError: (err: Error) => void,
  onSkip: (m: Outgoing) => void = () => undefined,
  /** A message was acknowledged, failed or skipped (the counts moved). */
  onProgress: () => void = () => undefined,
) {
  const queue: Outgoing[] = [];
  let corked = false;
  let head = 0;
  let inFlight = 0;
  let inFlightResults = 0;
  let queuedResults = 0;
  /** Payload length of the messages waiting in the queue (not those handed to mqtt.js), for maxPendingBytes. */
  let queuedBytes = 0;
  let waiters: (() => void)[] = [];
  const counts: SenderCounts = { sent: 0, skipped: 0, invalid: 0, failed: 0 };
  const pending = () => inFlightResults + queuedResults;

  /** The oldest waiting message, taken off the queue: its slot lets go of it at once (compact() shortens the array). */
  const take = (): Outgoing => {
    const m = queue[head] as Outgoing;
    queue[head++] = undefined as unknown as Outgoing;
    queuedResults -= m.results;
    queuedBytes -= m.payload.length;
    return m;
  };

  /**
   * Lets go of the messages already taken from the queue. Under a steady load the queue may never empty
   * completely, so waiting for it to empty would keep every message ever sent (measured: the agent's heap
   * at 1.1 GB after ten minutes at 10,000 results/s).
   */
  const compact = () => {
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head >= COMPACT_AT && head * 2 >= queue.length) {
      queue.splice(0, head);
      head = 0;
    }
  };

  // Past MAX_BUFFERED bytes waiting in the socket, nothing more is handed to mqtt.js until it drains; one listener
  // of our own waits ('close' too: a lost connection never drains, and mqtt.js makes a new stream).
  let waitingOn: NodeJS.EventEmitter | null = null;
  const socketFull = (): boolean => {
    const stream = client.stream as (NodeJS.EventEmitter & { writableLength?: number }) | undefined;
    if (!stream || (stream.writableLength ?? 0) < MAX_BUFFERED) return false;
    if (waitingOn !== stream) {
      waitingOn = stream;
      const resume = () => {
        stream.off('drain', resume);
        stream.off('close', resume);
        if (waitingOn === stream) waitingOn = null;
        pump();
      };
      stream.on('drain', resume);
      stream.on('close', resume);
    }
    return true;
  };

  /** A message is done: sent (QoS 0: handed to the socket; QoS 1/2: acknowledged) or failed. */
  const done = (m: Outgoing, err?: Error | null) => {
    if (err) {
      counts.failed += m.results;
      onError(err);
    } else counts.sent += m.results;
    onProgress();
  };

  let budget = PER_TURN;
  const pump = () => {
    if (!corked && head < queue.length && inFlight < IN_FLIGHT) {
      // Messages sent in one turn leave in one write instead of one syscall each.
      corked = true;
      const release = cork();
      setImmediate(() => {
        corked = false;
        budget = PER_TURN;
        release();
        pump();
      });
    }
    while (budget > 0 && inFlight < IN_FLIGHT && head < queue.length && !socketFull()) {
      budget--;
      const m = take();
      if (options.qos === 0) {
        // No callback: for each QoS 0 publish written while the socket's buffer is past its high-water mark,
        // mqtt.js adds a 'drain' listener for it, and each listener's removal scans all the others (measured:
        // one 'drain' took 166 ms of the event loop at the end of a QoS 0 drain). Sent once handed to the socket.
        if (client.disconnecting) done(m, new Error('client disconnecting'));
        else {
          client.publish(m.topic, m.payload, { qos: 0, retain: options.retain });
          done(m);
        }
        continue;
      }
      inFlight++;
      inFlightResults += m.results;
      client.publish(m.topic, m.payload, { qos: options.qos, retain: options.retain }, (err) => {
        inFlight--;
        inFlightResults -= m.results;
        done(m, err);
        pump();
      });
    }
    compact();
    if (pending() === 0 && waiters.length) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
  };
  return {
    send(messages: readonly Outgoing[]): void {
      for (const m of messages) {
        queue.push(m);
        queuedResults += m.results;
        queuedBytes += m.payload.length;
      }
      pump();
      while ((pending() > options.maxPendingResults || queuedBytes > options.maxPendingBytes) && head < queue.length) {
        const m = take();
        counts.skipped += m.results;
        onSkip(m);
        onProgress();
      }
      compact();
    },
    /** A result that never became a message (its topic is invalid): counted here so every result ends somewhere. */
    refused(n: number): void {
      counts.invalid += n;
      onProgress();
    },
    settled(): Promise<void> {
      return pending() === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
    get pending() {
      return pending();
    },
    /** The queue's slots, those of messages taken already included until it is compacted: for the tests. */
    get held() {
      return queue.length;
    },
    /** Messages the queue still holds on to (a taken message's slot is emptied): for the tests. */
    get referenced() {
      return queue.reduce((n, m) => (m ? n + 1 : n), 0);
    },
    /** Payload bytes of the messages waiting in the queue: for the tests. */
    get queuedBytes() {
      return queuedBytes;
    },
    counts,
  };
}
