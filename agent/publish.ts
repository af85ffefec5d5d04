// Publish: takes a committed prediction; gives the line its result as JSON on a topic made from the
// configured template, e.g. plant/{asset}/predictions/{model}. Results go out only after the commit,
// so every result a PLC or HMI sees is also in the store.

import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import type { Verdict } from '../models/manifest.js';

const PLACEHOLDERS = ['asset', 'model', 'version'] as const;

export const publishOptionsSchema = z
  .strictObject({
    /** Result topic; {asset}, {model} and {version} are filled in. */
    topic: z
      .string()
      .min(1)
      .refine((t) => !/[+#]/.test(t), 'a topic without the wildcards + and #')
      .refine(
        (t) => [...t.matchAll(/\{([^}]*)\}/g)].every((m) => (PLACEHOLDERS as readonly string[]).includes(m[1] ?? '')),
        `placeholders among ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
      )
      .default('edge-agent/{asset}/predictions/{model}'),
    qos: z.literal([0, 1, 2]).default(1),
    retain: z.boolean().default(false),
    /** Set false to keep predictions in the store only. */
    enabled: z.boolean().default(true),
  })
  .prefault({});

export type PublishOptions = z.infer<typeof publishOptionsSchema>;

export interface Result {
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
}

/**
 * Results in the hands of mqtt.js at once. Beyond this they wait in our queue: mqtt.js adds one
 * 'drain' listener per publish while the socket is full, and thousands of them make every write
 * quadratic (measured: 40 % of the agent's CPU in removeListener during a backlog drain).
 */
const WINDOW = 256;

export function createPublisher(
  options: PublishOptions,
  client: MqttClient,
  cork: () => () => void,
  onError: (err: Error) => void,
): Publisher {
  const queue: Result[] = [];
  let corked = false;
  let head = 0;
  let inFlight = 0;
  let waiters: (() => void)[] = [];

  const pump = () => {
    if (!corked && head < queue.length && inFlight < WINDOW) {
      // Results sent in one turn leave in one write instead of one syscall each.
      corked = true;
      const release = cork();
      setImmediate(() => {
        corked = false;
        release();
      });
    }
    while (inFlight < WINDOW && head < queue.length) {
      const r = queue[head++] as Result;
      inFlight++;
      client.publish(resultTopic(options.topic, r), resultPayload(r), { qos: options.qos, retain: options.retain }, done);
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
    pump();
  }
  return {
    publish(r) {
      if (!options.enabled) return;
      queue.push(r);
      pump();
    },
    settled() {
      return inFlight === 0 && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
    get pending() {
      return inFlight + queue.length - head;
    },
  };
}
