// Ground truth: takes label messages from the broker (a quality station's measured outcome for an asset)
// and the predictions of committed batches; gives each label stored before its PUBACK, joined off the
// per-message path to the prediction it is about (labels table, synced upstream), or a dead letter, and
// rolling accuracy / MAE per model version (status()). The rules are in truth-join.ts.

import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { RejectReason } from '../errors.js';
import type { CommittedBatch } from '../infer/predict.js';
import { createLabelReader, type TruthOptions } from '../ingest/labels.js';
import { topicMatches } from '../ingest/topic.js';
import { createRateLimitedLog, type Logger } from '../log.js';
import type { DeadLetterRow, Store } from '../store/store.js';
import type { LabelRow, RecentPrediction } from '../store/labels.js';
import { createRecentPredictions, createRolling, judge, type VersionTruth } from './truth-join.js';

export interface TruthStatus {
  enabled: boolean;
  topic: string | null;
  /** Label messages stored, joined to at least one prediction, unmatched, unreadable, redeliveries dropped, waiting. */
  counters: { received: number; joined: number; unmatched: number; bad: number; duplicates: number; pending: number };
  models: VersionTruth[];
}

export interface Truth {
  status(): TruthStatus;
}

/** Label inbox rows read per join pass; a pass runs again at once while more wait. */
const PAGE = 500;
/** How often waiting labels are looked at again (they wait for the readings received before them). */
const RETRY_MS = 250;

/** With ground truth off: the same status shape, nothing counted. */
export const truthOff: Truth = {
  status: () => ({ enabled: false, topic: null, counters: { received: 0, joined: 0, unmatched: 0, bad: 0, duplicates: 0, pending: 0 }, models: [] }),
};

export function createTruth(o: Readonly<TruthOptions>, deps: { store: Store; log: Logger; models: readonly string[]; maxPayloadBytes: number; afterStore?: () => void }) {
  const { store, log } = deps;
  const labels = store.labels;
  const read = createLabelReader(o);
  const recent = createRecentPredictions(o.windowMs + o.maxDelayMs, o.perKey);
  const rolling = createRolling(o.rollingWindow);
  const counters = { received: 0, joined: 0, unmatched: 0, bad: 0, duplicates: 0, pending: 0 };
  const rejectLog = createRateLimitedLog(10_000);
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let lastSweep = Date.now();

  /** A join pass soon (coalesced): after a label is stored, after a batch commits while labels wait. */
  function schedule(delayMs = 0) {
    if (closed || timer || counters.pending === 0) return;
    timer = setTimeout(() => {
      timer = null;
      try {
        join();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'ground truth join failed; labels stay stored and are joined at the next pass');
        schedule(RETRY_MS * 4);
      }
    }, delayMs);
  }

  /**
   * Joins the waiting labels whose readings are all committed: a label waits while a reading that came before
   * it is still in the inbox (its prediction would be missing from the join). In arrival order; one
   * transaction per pass: the labels and dead letters in, their label inbox rows out.
   */
  function join(): void {
    const floor = labels.firstReading();
    const rows: LabelRow[] = [];
    const dead: DeadLetterRow[] = [];
    const done: number[] = [];
    const taken = new Set<number>();
    let joined = 0;
    let waiting = false;
    for (const r of labels.pending(0, PAGE)) {
      if (floor !== null && r.inboxSeen >= floor) {
        waiting = true;
        break;
      }
      done.push(r.id);
      const dl = (code: RejectReason, reason: string, model: string | null = null) =>
        dead.push({ receivedAt: r.receivedAt, topic: r.topic, reasonCode: code, reason, payload: r.payload, inboxId: null, dedupKey: r.dedupKey, model });
      const label = read(r.topic, r.payload, r.receivedAt);
      if (!label.ok) {
        dl('REJECT_BAD_LABEL', label.detail);
        continue;
      }
      if (label.model !== null && !deps.models.includes(label.model)) {
        dl('REJECT_BAD_LABEL', `names model ${JSON.stringify(label.model).slice(0, 80)}, which this agent does not serve (${deps.models.join(', ')})`);
        continue;
      }
      if (r.receivedAt - label.at > o.maxDelayMs) {
        dl('REJECT_UNMATCHED_LABEL', `its time ${new Date(label.at).toISOString()} is more than truth.maxDelayMs=${o.maxDelayMs} before it arrived`, label.model);
        continue;
      }
      const verdict = judge(label, recent.newest(label.key, label.at, o.windowMs, label.model), (id) => taken.has(id) || labels.labelled(id), o.windowMs);
      if ('code' in verdict) {
        dl(verdict.code, verdict.detail, label.model);
        continue;
      }
      for (const j of verdict.joined) {
        taken.add(j.predictionId);
        rows.push({ ...j, receivedAt: r.receivedAt, topic: r.topic, dedupKey: r.dedupKey });
      }
      joined++;
    }
    if (done.length) {
      labels.commit(rows, dead, done);
      counters.pending -= done.length;
      counters.joined += joined;
      for (const j of rows) rolling.add(j.modelName, j.modelVersion, j);
      for (const d of dead) {
        if (d.reasonCode === 'REJECT_BAD_LABEL') counters.bad++;
        else counters.unmatched++;
        rejectLog(d.reasonCode, (suppressed) => log.warn({ topic: d.topic, reason: d.reasonCode, detail: d.reason, suppressedSinceLast: suppressed }, 'label rejected'));
      }
      if (rows.length) log.debug({ labels: rows.length }, 'labels joined');
    }
    if (Date.now() - lastSweep > 60_000) {
      lastSweep = Date.now();
      recent.sweep();
    }
    if (done.length === PAGE) schedule();
    else if (waiting) schedule(RETRY_MS);
  }

  return {
    /** Whether a message on `topic` is a label (the pipeline gives it here instead of to ingest). */
    handles: (topic: string) => topicMatches(o.topic, topic),

    /**
     * mqtt.js's handleMessage for label topics: the label is stored (its own transaction: labels are few)
     * before the callback lets the PUBACK go. A redelivery of a label already stored is acknowledged again.
     */
    handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const dedupKey = packet.qos > 0 ? `${packet.messageId ?? 0}:${createHash('sha1').update(packet.topic).update('\0').update(payload).digest('base64')}` : null;
      try {
        if (packet.dup && dedupKey && labels.holds(dedupKey)) {
          counters.duplicates++;
          return callback();
        }
        // Cut like readings are, so a label cannot hold more of the disk than a reading may.
        labels.append({ receivedAt: Date.now(), topic: packet.topic, dedupKey, payload: payload.length > deps.maxPayloadBytes ? payload.subarray(0, deps.maxPayloadBytes) : payload });
      } catch (err) {
        // Not stored, so not acknowledged: the broker keeps it.
        log.error({ topic: packet.topic, err: (err as Error).message }, 'label not stored; left unacknowledged');
        return callback(err as Error);
      }
      counters.received++;
      counters.pending++;
      schedule();
      callback();
      deps.afterStore?.();
    },

    /** A committed batch (off the per-message path): its predictions become joinable. */
    observe(b: CommittedBatch): void {
      const { predictions, ids } = b;
      const now = Date.now();
      for (let i = 0; i < predictions.length; i++) {
        const p = predictions[i] as CommittedBatch['predictions'][number];
        recent.add({ id: ids[i] as number, receivedAt: p.receivedAt, asset: p.asset, model: p.modelName, version: p.modelVersion, label: p.label, score: p.score }, now);
      }
      schedule();
    },

    /**
     * At start, before readings flow: the predictions a waiting or coming label may join (since the oldest
     * waiting label's window), the rolling windows from the labels joined before, then a join pass.
     */
    start(): void {
      const now = Date.now();
      counters.pending = labels.pendingCount();
      let oldest = now - o.maxDelayMs;
      for (const r of labels.pending(0, 10_000)) {
        const l = read(r.topic, r.payload, r.receivedAt);
        if (l.ok && l.at < oldest && r.receivedAt - l.at <= o.maxDelayMs) oldest = l.at;
      }
      const seeded: RecentPrediction[] = labels.recentPredictions(oldest - o.windowMs, o.perKey * 1000);
      for (let i = seeded.length - 1; i >= 0; i--) recent.add(seeded[i] as RecentPrediction, now);
      const past = labels.recentLabels(o.rollingWindow * 64);
      for (let i = past.length - 1; i >= 0; i--) {
        const l = past[i] as (typeof past)[number];
        rolling.add(l.model_name, l.model_version, { correct: l.correct, absError: l.abs_error }, false);
      }
      for (const t of labels.totals()) rolling.setJoined(t.model_name, t.model_version, t.n);
      log.info({ topic: o.topic, pending: counters.pending, predictionsInMemory: seeded.length, keys: recent.keys }, 'ground truth started');
      schedule();
    },

    /** A join pass now (what the timer runs). */
    joinNow: () => join(),

    status(): TruthStatus {
      return { enabled: true, topic: o.topic, counters: { ...counters }, models: rolling.status() };
    },

    /** Stops the join passes; waiting labels stay stored and are joined at the next start. */
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
