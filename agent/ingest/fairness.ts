// Fairness between subscriptions: takes each incoming message's topic and QoS and the batcher's queued rows;
// gives whether a QoS 0 message is shed because its subscription floods the queue while another one is
// active. Keeps exact queued-row counts per subscription (a row counts from push until its batch leaves).
//
// Why shed at all: the batcher's queue is one FIFO. Without this, a reading on subscription B waits behind
// up to inference.maxQueuedRows of A's rows, and once the queue is full the socket is not read, so the
// broker drops QoS 0 messages of every subscription when its queue for the agent overflows, uncounted.
// Shedding A's QoS 0 surplus here keeps the socket read, so B's readings get in, and every drop is counted.
// QoS 1 is never shed: a QoS 1 message the broker gave us is stored before its PUBACK, whatever the load.

import { z } from 'zod';

export const fairnessOptionsSchema = z.strictObject({
  /** Off: every message is queued in arrival order (the broker may then drop QoS 0 messages unseen). */
  enabled: z.boolean().default(true),
  /**
   * Shedding starts only when the batcher holds at least this many rows: below it nothing is shed, so a
   * burst that the model works off in well under a second is kept whole. 1024 rows is a few batches of
   * the default maxBatchRows, and an eighth of the default maxQueuedRows, so the others' readings wait
   * behind at most about that many rows instead of the whole queue.
   */
  queueRows: z.number().int().min(1).default(1024),
  /** A subscription holding more than this share of the queued rows is the one shed (0.5: it holds the majority). */
  maxShare: z.number().gt(0).max(1).default(0.5),
});

export type FairnessOptions = z.infer<typeof fairnessOptionsSchema>;

/** A subscription counts as active for this long after its last message, even with nothing queued. */
const ACTIVE_MS = 1000;

export interface Fairness {
  /** Whether a message of subscription `sub` and `qos`, arrived at `now` (ms), is to be shed. Notes it as activity. */
  shed(sub: number, qos: number, now: number): boolean;
  /** A message of `sub` was queued. */
  queued(sub: number): void;
  /** A message of `sub` left the batcher (its batch committed, or failed). */
  left(sub: number): void;
  /** Rows queued per subscription (by subscription index). */
  counts(): readonly number[];
}

/** `subscriptions`: how many there are (a message names its own by index, topic.ts createSubscriptionIndex); `queuedRows`: the batcher's rows (queued and in the model). */
export function createFairness(options: Readonly<FairnessOptions>, subscriptions: number, queuedRows: () => number): Fairness {
  const counts = new Array<number>(subscriptions).fill(0);
  const lastSeen = new Array<number>(subscriptions).fill(-Infinity);

  /** Another subscription than `sub` has rows queued or sent a message within ACTIVE_MS. */
  function othersActive(sub: number, now: number): boolean {
    for (let j = 0; j < counts.length; j++) {
      if (j !== sub && ((counts[j] as number) > 0 || now - (lastSeen[j] as number) < ACTIVE_MS)) return true;
    }
    return false;
  }

  return {
    shed(sub, qos, now) {
      if (sub < 0) return false;
      lastSeen[sub] = now;
      if (!options.enabled || qos > 0) return false;
      const total = queuedRows();
      return total >= options.queueRows && (counts[sub] as number) > options.maxShare * total && othersActive(sub, now);
    },
    queued(sub) {
      if (sub >= 0) counts[sub] = (counts[sub] as number) + 1;
    },
    left(sub) {
      if (sub >= 0) counts[sub] = (counts[sub] as number) - 1;
    },
    counts: () => counts,
  };
}
