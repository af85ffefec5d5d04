// Ingest: takes MQTT PUBLISH packets from mqtt.js (as its handleMessage hook); gives each message to
// the batcher (it is decoded when its batch is dispatched, against the model that serves it; see
// predict.ts). For QoS 1 and 2 the raw message is first written to the SQLite inbox, so by
// the time mqtt.js sends the PUBACK (when the hook calls back) the message is durable.
//
// Group commit: the inbox rows of the messages handled in one event-loop turn share one transaction,
// and the socket is corked meanwhile, so their PUBACKs (which mqtt.js writes when the hook calls back)
// stay in this process until the COMMIT is done; then the socket is uncorked and they leave together.
// A crash before the COMMIT loses the PUBACKs with the rows, so the broker redelivers: nothing is lost.
//
// mqtt.js reads the next packet only after the hook calls back: holding the callback while the
// batcher is full is the backpressure valve. A redelivered message (DUP flag) whose key we already
// hold is acknowledged again and not processed twice.
//
// Fairness (fairness.ts): with the batcher holding many rows, a QoS 0 message whose subscription holds most
// of them while another subscription is active is shed (counted, never queued), so the socket keeps being read.

import { createHash, hash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import { z } from 'zod';
import type { Store } from '../store/store.js';
import { createFairness, fairnessOptionsSchema } from './fairness.js';
import { createSubscriptionIndex } from './topic.js';

/**
 * Topic filters to subscribe to (+ and # wildcards) with their QoS. QoS 2 is not offered: mqtt.js keeps
 * a QoS 2 message between PUBREC and PUBREL in memory only, so a crash there would lose it; QoS 1 with
 * the inbox and redelivery detection gives exactly-once storage without that gap.
 */
export const subscriptionsSchema = z
  .array(
    z.strictObject({
      topic: z
        .string()
        .min(1)
        .refine((t) => /^(?:[^+#]*|\+)(?:\/(?:[^+#]*|\+))*(?:\/#)?$|^#$/.test(t), 'a topic filter: + for one whole level, # only as the last level'),
      qos: z.literal([0, 1]).default(1),
    }),
  )
  .min(1);

export type Subscription = z.infer<typeof subscriptionsSchema>[number];

export const ingestOptionsSchema = z.strictObject({
  /** The readings' topic filters, for an agent serving one model (with several, each model lists its own). */
  subscriptions: subscriptionsSchema.optional(),
  /** Larger payloads become dead letters (REJECT_PAYLOAD_TOO_LARGE) holding their first maxPayloadBytes bytes. */
  maxPayloadBytes: z.number().int().min(16).max(256 * 1024 * 1024).default(64 * 1024),
  /** How many recent QoS 1/2 message keys are kept to recognise a redelivery after a crash or reconnect. */
  dedupWindow: z.number().int().min(0).default(20000),
  /** Fair shedding of QoS 0 floods between subscriptions (see fairness.ts and the README's "Fairness"). */
  fairness: fairnessOptionsSchema.prefault({}),
});

export type IngestOptions = z.infer<typeof ingestOptionsSchema>;

/** Inbox rows read at once when the inbox is replayed after a crash. */
const REPLAY_PAGE = 1000;

/** Messages handled before the event loop gets a turn (for model results, timers, result acks). */
const YIELD_EVERY = 128;

export interface Message {
  inboxId: number | null;
  dedupKey: string | null;
  topic: string;
  /** The payload as received, cut to maxPayloadBytes when it was larger. */
  payload: Buffer;
  /** The payload's size as received (before any cut). */
  bytes: number;
  receivedAt: number;
  /** performance.now() at receipt, for in-agent latency. */
  t0: number;
  /** Replayed: the models that had consumed it before the restart (its inbox row stayed held); see assemble.ts. */
  doneBy?: readonly string[] | null;
  /** Not a message: a period tick for the assembler of the route with this index (see assemble.ts). */
  tick?: number;
  /** The subscription (index) this message counts for in the fairness books while queued; cleared when it leaves. */
  sub?: number;
}

export interface IngestDeps {
  store: Store;
  /** Takes the message; gives false when the batcher is full and the caller should wait for `drained`. */
  accept: (m: Message) => boolean;
  drained: () => Promise<void>;
  onDuplicate: (topic: string) => void;
  onRefused: (topic: string, qos: number) => void;
  /** Every PUBLISH taken (before dedup), by the index of its subscription in `filters` (-1: none), for /metrics: must stay O(1). */
  onReceived?: (subscription: number, qos: number) => void;
  /** Holds the broker socket's writes until the returned release is called. */
  cork: () => () => void;
  /** The group's COMMIT failed: its PUBACKs must never be sent. */
  onCommitFailed: (err: Error) => void;
  /** Null when the store has room; else resolves when it has (the disk budget's hold-intake policy). */
  room?: () => Promise<void> | null;
  /** Called after each group commit, before the PUBACKs leave (the crash test uses it to die then). */
  afterCommit?: (inboxRows: number) => void;
  /** Rows in the batcher (queued and in the model): fairness sheds only above ingest.fairness.queueRows. */
  queuedRows?: () => number;
  /** A QoS 0 message was shed (see fairness.ts): `subscription` is the filter it matched. */
  onShed?: (subscription: string, topic: string) => void;
}

export interface Ingest {
  handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void;
  /** Replays inbox rows left by a crash (received and acknowledged, no prediction yet). Gives how many. */
  replay(): Promise<number>;
  /** From now on QoS 1/2 messages are left unacknowledged (the broker redelivers them next session). */
  pause(): void;
  /** Commits the open group of inbox rows and lets its PUBACKs go. */
  commitGroup(): void;
  /** Messages left the batcher (their batch committed or failed): the fairness books count them out. */
  left(batch: readonly Message[]): void;
  /** Rows in the batcher per subscription (in `filters` order), as fairness counts them. */
  queuedBySubscription(): readonly number[];
}

/**
 * SHA-1 of topic, a zero byte and payload, base64: one-shot `crypto.hash` over a scratch buffer reused from message
 * to message (measured: 0.7 µs a message against 1.5 µs for a createHash object and three updates; same digest).
 */
let scratch = Buffer.allocUnsafe(4096);
const SCRATCH_MAX = 1024 * 1024;
export function digestOf(topic: string, payload: Buffer): string {
  const most = topic.length * 3 + 1 + payload.length;
  // A large payload is digested in place: the scratch buffer would keep its size for the process's life.
  if (most > SCRATCH_MAX) return createHash('sha1').update(topic).update('\0').update(payload).digest('base64');
  if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.min(SCRATCH_MAX, Math.max(most, scratch.length * 2)));
  const n = scratch.write(topic, 0, 'utf8');
  scratch[n] = 0;
  payload.copy(scratch, n + 1);
  return hash('sha1', scratch.subarray(0, n + 1 + payload.length), 'base64');
}

/** A recently seen key set of bounded size: a ring of keys, the oldest evicted first. */
function createRecentKeys(capacity: number, seed: readonly string[]) {
  const keys = new Set<string>();
  const ring: (string | undefined)[] = new Array(capacity);
  let next = 0;
  const add = (k: string) => {
    if (capacity === 0 || keys.has(k)) return;
    const old = ring[next];
    if (old !== undefined) keys.delete(old);
    ring[next] = k;
    next = (next + 1) % capacity;
    keys.add(k);
  };
  for (const k of seed.slice(0, capacity).reverse()) add(k);
  return { has: (k: string) => keys.has(k), add };
}

/** `rowsPerMessage`: the most rows one message can make in the store (one per model taking its topic). */
/** `filters`: every subscription's topic filter (all models'), the units fairness shares the queue between. */
export function createIngest(
  options: Readonly<Pick<IngestOptions, 'maxPayloadBytes' | 'dedupWindow'> & Partial<Pick<IngestOptions, 'fairness'>>> & { rowsPerMessage?: number; filters?: readonly string[] },
  deps: IngestDeps,
): Ingest {
  const recent = createRecentKeys(options.dedupWindow, deps.store.recentDedupKeys(options.dedupWindow, options.rowsPerMessage));
  const filters = options.filters ?? [];
  const subscriptionOf = createSubscriptionIndex(filters);
  const fair = createFairness(options.fairness ?? fairnessOptionsSchema.parse({ enabled: false }), filters.length, deps.queuedRows ?? (() => 0));
  let paused = false;
  let inboxRows = 0;
  let sinceYield = 0;
  let release: (() => void) | null = null;

  /** Corks the broker socket for this turn's group; the store opens the group's transaction with its first row. */
  function openGroup() {
    if (release) return;
    release = deps.cork();
    setImmediate(commitGroup);
  }

  function failGroup(err: Error) {
    release = null; // never uncorked: the stream is destroyed with the PUBACKs in it
    paused = true;
    deps.store.abortGroup();
    deps.onCommitFailed(err);
  }

  function commitGroup() {
    if (!release) return;
    const uncork = release;
    try {
      deps.store.commitGroup();
    } catch (err) {
      failGroup(err as Error);
      return;
    }
    release = null;
    deps.afterCommit?.(inboxRows);
    uncork();
  }
  const refusal = new Error('agent is shutting down: message left unacknowledged for redelivery');

  function toMessage(inboxId: number | null, dedupKey: string | null, topic: string, payload: Buffer, receivedAt: number): Message {
    // A copy, not a view: a view would keep the whole oversize packet in memory until its dead letter is stored.
    const cut = payload.length > options.maxPayloadBytes ? Buffer.from(payload.subarray(0, options.maxPayloadBytes)) : payload;
    return { inboxId, dedupKey, topic, payload: cut, bytes: payload.length, receivedAt, t0: performance.now(), sub: undefined };
  }

  /** Lets mqtt.js read the next packet, giving the event loop a turn every YIELD_EVERY messages. */
  function next(callback: () => void) {
    if (++sinceYield < YIELD_EVERY) return callback();
    // mqtt.js handles a socket's buffered packets in one chain of nextTicks, never giving the event
    // loop a turn: without this, model results and timers wait behind thousands of messages (shed ones too).
    sinceYield = 0;
    setImmediate(callback);
  }

  /** Into the batcher, counted for its subscription until it leaves. */
  function accept(m: Message, sub = subscriptionOf(m.topic)): boolean {
    m.sub = sub;
    fair.queued(m.sub);
    return deps.accept(m);
  }

  const ingest: Ingest = {
    handleMessage(packet, callback) {
      // The store at its disk budget with intake on hold: the reading is taken once there is room again.
      // Holding the callback holds mqtt.js's reading of the socket: the broker keeps what follows.
      const held = !paused && packet.qos > 0 ? deps.room?.() : null;
      if (held) return void held.then(() => ingest.handleMessage(packet, callback));
      const topic = packet.topic;
      // The subscription it came by, looked up once: for /metrics' counts and for fairness.
      const sub = subscriptionOf(topic);
      deps.onReceived?.(sub, packet.qos);
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const receivedAt = Date.now();
      let inboxId: number | null = null;
      let dedupKey: string | null = null;
      if (paused) {
        // Stopping: QoS 1 is left unacknowledged (the broker keeps it for the next session); QoS 0 is
        // not taken (counted as refused). Reading goes on, so the PUBACKs of our own results still arrive.
        deps.onRefused(topic, packet.qos);
        if (packet.qos > 0) callback(refusal);
        else callback();
        return;
      }
      // Before any inbox row: only QoS 0 is ever shed, and it has none.
      if (fair.shed(sub, packet.qos, receivedAt)) {
        deps.onShed?.(filters[sub] as string, topic);
        return next(callback);
      }
      if (packet.qos > 0) {
        // QoS 1 (QoS 2 is not subscribed to; a broker granting it anyway gets the same treatment).
        // The key: packet id + digest of topic and payload. A redelivery carries the same packet id.
        dedupKey = `${packet.messageId ?? 0}:${digestOf(topic, payload)}`;
        if (packet.dup && recent.has(dedupKey)) {
          deps.onDuplicate(topic);
          callback();
          return;
        }
        // An oversized payload is kept cut to one byte over the limit, so a replay still sees it as too large.
        const stored = payload.length > options.maxPayloadBytes ? payload.subarray(0, options.maxPayloadBytes + 1) : payload;
        try {
          openGroup();
          inboxId = deps.store.appendInbox({ receivedAt, topic, qos: packet.qos, dedupKey, payload: stored });
        } catch (err) {
          // Not stored, so not acknowledged: the broker keeps it. The group's PUBACKs must not leave either.
          failGroup(err as Error);
          callback(err as Error);
          return;
        }
        inboxRows++;
        recent.add(dedupKey);
      }
      const room = accept(toMessage(inboxId, dedupKey, topic, payload, receivedAt), sub);
      if (!room) void deps.drained().then(() => callback());
      else next(callback);
    },

    async replay() {
      // In pages: a backlog of days must not be read into memory at once.
      let count = 0;
      for (let after = 0, page = deps.store.inboxPage(after, REPLAY_PAGE); page.length; page = deps.store.inboxPage(after, REPLAY_PAGE)) {
        for (const r of page) {
          const m = toMessage(r.id, r.dedupKey, r.topic, r.payload, r.receivedAt);
          if (r.doneBy) m.doneBy = r.doneBy;
          if (!accept(m)) await deps.drained();
        }
        after = (page[page.length - 1] as { id: number }).id;
        count += page.length;
      }
      return count;
    },

    pause() {
      paused = true;
      commitGroup();
    },

    commitGroup,

    left(batch) {
      for (const m of batch) {
        if (m.sub === undefined) continue; // a tick, or a message not taken through ingest
        fair.left(m.sub);
        // Counted out once, whatever holds on to the message afterwards (assigned, not deleted: a delete would
        // turn every message object into a slow dictionary for the code that reads it later).
        m.sub = undefined;
      }
    },

    queuedBySubscription: () => [...fair.counts()],
  };
  return ingest;
}
