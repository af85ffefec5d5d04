// Publish: takes a committed prediction; gives the line its result as JSON on a topic made from the
// configured template, e.g. plant/{asset}/predictions/{model}. Results go out only after the commit,
// so every result a PLC or HMI sees is also in the store.

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
  return JSON.stringify({
    id: r.id,
    asset: r.asset,
    model: r.model,
    version: r.version,
    receivedAt: new Date(r.receivedAt).toISOString(),
    sourceTopic: r.sourceTopic,
    ...r.verdict,
    latencyMs: Math.round(r.latencyMs * 1000) / 1000,
  });
}

export interface Publisher {
  publish(r: Result): void;
  /** Resolves when every result handed over so far is sent (QoS 0) or acknowledged (QoS 1/2). */
  settled(): Promise<void>;
  /** Results handed over and not yet sent or acknowledged. */
  readonly pending: number;
  /** Results sent (QoS 0) or acknowledged by the broker (QoS 1/2) so far. */
  readonly sent: number;
  /** Results not published because maxPendingResults was reached (they are in the store). */
  readonly skipped: number;
  /** Results not published because their topic is one a broker would reject (they are in the store). */
  readonly invalid: number;
}

/**
 * Results handed to mqtt.js in one event-loop turn. mqtt.js adds one 'drain' listener per publish
 * while the socket is full, and thousands of them make every write quadratic (measured: 40 % of the
 * agent's CPU in removeListener during a backlog drain); after the turn the socket is flushed.
 */
const PER_TURN = 256;
/**
 * Results awaiting the broker's PUBACK at once. Large, because during a backlog drain those PUBACKs
 * queue behind thousands of incoming readings on the same socket: a small window starves the results
 * (measured: 256 in flight let results trail the committed rows by ~20k).
 */
const IN_FLIGHT = 8192;

export function createPublisher(
  options: PublishOptions,
  client: MqttClient,
  cork: () => () => void,
  onError: (err: Error) => void,
  onSkip: (r: Result) => void = () => undefined,
  onInvalid: (r: Result, topic: string, problem: string) => void = () => undefined,
): Publisher {
  const queue: Result[] = [];
  let corked = false;
  let head = 0;
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  let sent = 0;
  let skipped = 0;
  let invalid = 0;
  const pending = () => inFlight + queue.length - head;

  let budget = PER_TURN;
  const pump = () => {
    if (!corked && head < queue.length && inFlight < IN_FLIGHT) {
      // Results sent in one turn leave in one write instead of one syscall each.
      corked = true;
      const release = cork();
      setImmediate(() => {
        corked = false;
        budget = PER_TURN;
        release();
        pump();
      });
    }
    while (budget > 0 && inFlight < IN_FLIGHT && head < queue.length) {
      budget--;
      const r = queue[head++] as Result;
      const topic = resultTopic(r.topicTemplate, r);
      // Last line of defence: the asset and the model were checked on the way in, but a topic the
      // broker rejects would drop the connection and be resent on every reconnect.
      const problem = publishTopicProblem(topic);
      if (problem) {
        invalid++;
        onInvalid(r, topic, problem);
        continue;
      }
      inFlight++;
      client.publish(topic, resultPayload(r), { qos: options.qos, retain: options.retain }, done);
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    }
    if (inFlight === 0 && queue.length === 0 && waiters.length) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
  };
  function done(err?: Error) {
    inFlight--;
    if (err) onError(err);
    else sent++;
    pump();
  }
  return {
    publish(r) {
      if (!options.enabled) return;
      queue.push(r);
      pump();
      if (pending() > options.maxPendingResults && head < queue.length) {
        skipped++;
        onSkip(queue[head++] as Result);
      }
    },
    settled() {
      return inFlight === 0 && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
    get pending() {
      return pending();
    },
    get sent() {
      return sent;
    },
    get skipped() {
      return skipped;
    },
    get invalid() {
      return invalid;
    },
  };
}
