// Predict: one batch, from dispatch to commit. Takes the messages of a batch and captures the model in
// the slot when the batch is dispatched: the messages are decoded against that model's manifest, its
// worker runs the valid rows, and one transaction stores the predictions (naming that model's version)
// and the dead letters and removes their inbox rows. Then the results are published and observers hear
// "batch committed". A model swapped in meanwhile serves the next batch; this one finishes on its own.

import { interpret, outputWidth, type Manifest } from '../../models/manifest.js';
import { EdgeError, type RejectReason } from '../errors.js';
import type { Decoded, Decoder } from '../ingest/features.js';
import type { Inference, InferResult } from './infer.js';
import type { Message } from '../ingest/ingest.js';
import { createRateLimitedLog, type Logger } from '../log.js';
import { deliveredFilter, topicMatches } from '../ingest/topic.js';
import type { Publisher, Result } from '../publish.js';
import type { Stats } from '../observe/stats.js';
import type { DeadLetterRow, PredictionRow, Store } from '../store/store.js';

/** A loaded, verified model as it serves: its contract, its worker and its decoder. */
export interface ServingModel {
  readonly manifest: Manifest;
  readonly inference: Inference;
  readonly decode: Decoder;
}

/** The model that serves the next batch. A handle, not a constant: it can be swapped while batches run. */
export interface ModelSlot {
  readonly current: ServingModel;
  /** From the next dispatched batch on, `next` serves; gives the model it replaces. */
  swap(next: ServingModel): ServingModel;
}

export function createModelSlot(initial: ServingModel): ModelSlot {
  let current = initial;
  return {
    get current() {
      return current;
    },
    swap(next) {
      const old = current;
      current = next;
      return old;
    },
  };
}

/** A model the agent serves, with the topics it takes and where its results go. */
export interface Route {
  readonly slot: ModelSlot;
  /** Subscription filters: a message whose topic matches one of them goes to this model. */
  readonly filters: readonly string[];
  /** Result topic template. */
  readonly resultTopic: string;
}

/** The routes a topic goes to, by index; cached per topic (topics repeat: one per asset and signal). */
export function createRouter(routes: readonly Route[], cacheSize = 10_000): (topic: string) => readonly number[] {
  const cache = new Map<string, readonly number[]>();
  const filters = routes.map((r) => r.filters.map(deliveredFilter));
  return (topic) => {
    let hit = cache.get(topic);
    if (hit) return hit;
    hit = filters.flatMap((fs, i) => (fs.some((f) => topicMatches(f, topic)) ? [i] : []));
    if (cache.size >= cacheSize) cache.clear();
    cache.set(topic, hit);
    return hit;
  };
}

/** One model's share of a batch: the messages routed to it, decoded against the model captured at dispatch. */
export interface BatchPart {
  route: Route;
  model: ServingModel;
  /** Indexes into the batch of the messages it took. */
  rows: number[];
  decoded: Decoded[];
  result?: InferResult;
  error?: Error;
}

/** What a dispatched batch carries to its commit: one part per model, and the messages no model takes. */
export interface BatchOutcome {
  parts: BatchPart[];
  unrouted: number[];
}

/** Told after every committed batch, once per model (drift, probation, shadow agreement, metrics hang on this). */
export interface CommittedBatch {
  model: ServingModel;
  predictions: readonly PredictionRow[];
  /** The predictions' row ids, in the same order. */
  ids: readonly number[];
  deadLetters: readonly DeadLetterRow[];
  modelMs: number;
}

export interface PredictDeps {
  routes: readonly Route[];
  store: Store;
  publisher: Publisher;
  stats: Stats;
  log: Logger;
  /** Commits the open group of inbox rows: a batch's inbox rows are durable before its predictions. */
  commitInbox(): void;
  /** The model's worker died: the agent cannot serve on. */
  onFatal(err: Error): void;
  onCommitted?(batch: CommittedBatch): void;
}

export function createPredictor(deps: PredictDeps) {
  const { store, publisher, stats, log } = deps;
  const rejectLog = createRateLimitedLog(10_000);
  const routeOf = createRouter(deps.routes);
  // Batches dispatched and not yet committed, per model: a swapped-out model closes when it has none.
  const inFlight = new Map<ServingModel, { batches: number; idle: (() => void)[] }>();

  /** At dispatch: route each message, capture each model it goes to, decode against it, run its worker. */
  async function run(batch: Message[]): Promise<BatchOutcome> {
    const byRoute: number[][] = deps.routes.map(() => []);
    const unrouted: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const to = routeOf((batch[i] as Message).topic);
      if (to.length === 0) unrouted.push(i);
      for (const r of to) (byRoute[r] as number[]).push(i);
    }
    const parts: Promise<BatchPart>[] = [];
    byRoute.forEach((rows, r) => {
      if (rows.length) parts.push(runPart(deps.routes[r] as Route, batch, rows));
    });
    return { parts: await Promise.all(parts), unrouted };
  }

  async function runPart(route: Route, batch: Message[], rows: number[]): Promise<BatchPart> {
    const model = route.slot.current;
    const entry = inFlight.get(model) ?? { batches: 0, idle: [] };
    entry.batches++;
    inFlight.set(model, entry);
    const decoded = new Array<Decoded>(rows.length);
    const cols = model.manifest.features.length;
    let ok = 0;
    for (let j = 0; j < rows.length; j++) {
      const m = batch[rows[j] as number] as Message;
      const d = (decoded[j] = model.decode(m.topic, m.payload, m.bytes));
      if (d.ok) ok++;
    }
    const part: BatchPart = { route, model, rows, decoded };
    if (!ok) return part;
    const data = new Float32Array(ok * cols);
    let r = 0;
    for (const d of decoded) if (d.ok) data.set(d.values, r++ * cols);
    try {
      part.result = await model.inference.run(model.manifest.input.name, data, ok, cols);
    } catch (err) {
      part.error = err as Error;
    }
    return part;
  }

  function settle(model: ServingModel): void {
    const entry = inFlight.get(model);
    if (!entry || --entry.batches > 0) return;
    inFlight.delete(model);
    for (const f of entry.idle) f();
  }

  /** In dispatch order: one transaction for the batch, then the results, then the counters. */
  function commit(batch: Message[], outcome: BatchOutcome): void {
    try {
      commitBatch(batch, outcome);
    } finally {
      for (const part of outcome.parts) settle(part.model);
    }
  }

  /** One model's rows of a batch: its predictions, results and dead letters, leaving out the messages kept for the replay. */
  function collect(batch: Message[], part: BatchPart, keep: ReadonlySet<number>, out: { predictions: PredictionRow[]; results: Result[]; t0s: number[]; dead: DeadLetterRow[] }): void {
    const { model, decoded, rows } = part;
    const { manifest } = model;
    const width = outputWidth(manifest.output);
    const data = part.result?.outputs[manifest.output.tensor]?.data;
    const modelMs = part.result?.ms ?? 0;
    const failure = part.error?.message ?? `no output "${manifest.output.tensor}"`;
    const template = part.route.resultTopic;
    let k = 0;
    // Plain loops and object literals without spreads: this runs once per message.
    for (let j = 0; j < rows.length; j++) {
      const i = rows[j] as number;
      const m = batch[i] as Message;
      const d = decoded[j] as Decoded;
      if (keep.has(i)) continue;
      if (!d.ok || !data) {
        const code: RejectReason = d.ok ? 'REJECT_INFERENCE_FAILED' : d.code;
        out.dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: code, reason: d.ok ? failure : d.detail, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey, model: manifest.name });
        continue;
      }
      const row = new Array<number>(width);
      let finite = true;
      for (let c = 0; c < width; c++) finite = Number.isFinite((row[c] = data[k * width + c] as number)) && finite;
      k++;
      if (!finite) {
        // A NaN or ±Infinity is no verdict (interpret() would pick a label anyway): a dead letter, never a result.
        out.dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: 'REJECT_NONFINITE_OUTPUT', reason: `model output "${manifest.output.tensor}" is [${row.join(', ')}] for ${d.asset}`, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey, model: manifest.name });
        continue;
      }
      const verdict = interpret(manifest.output, row);
      out.results.push({ topicTemplate: template, id: 0, asset: d.asset, model: manifest.name, version: manifest.version, receivedAt: m.receivedAt, sourceTopic: m.topic, verdict, latencyMs: modelMs });
      out.t0s.push(m.t0);
      out.predictions.push({
        receivedAt: m.receivedAt, asset: d.asset, topic: m.topic, modelName: manifest.name, modelVersion: manifest.version,
        features: d.values, outputs: row, label: 'label' in verdict ? verdict.label : null,
        score: verdict.kind === 'classification' ? (verdict.probabilities[verdict.label] ?? null) : verdict.kind === 'score' ? verdict.score : verdict.value,
        latencyMs: modelMs, inboxId: m.inboxId, dedupKey: m.dedupKey,
      });
    }
  }

  function commitBatch(batch: Message[], outcome: BatchOutcome): void {
    deps.commitInbox();
    const predictions: PredictionRow[] = [];
    const results: Result[] = []; // one per prediction; the row id is filled in after the commit
    const t0s: number[] = [];
    const dead: DeadLetterRow[] = [];
    // Messages left for the replay after restart: a model's worker is gone (the agent is stopping) and it did
    // not run them. Their inbox rows stay and nothing of them is stored now, for any model: the replay
    // gives every model that takes them its one row.
    const keep = new Set<number>();
    for (const part of outcome.parts) {
      if (part.result?.outputs[part.model.manifest.output.tensor]?.data || part.model.inference.alive) continue;
      for (let j = 0; j < part.rows.length; j++) {
        const i = part.rows[j] as number;
        if ((part.decoded[j] as Decoded).ok && (batch[i] as Message).inboxId !== null) keep.add(i);
      }
    }
    // Each model's rows are one stretch of `predictions` and `dead`: [from, to) of each.
    const shares: { part: BatchPart; p: [number, number]; d: [number, number] }[] = [];
    for (const part of outcome.parts) {
      const p0 = predictions.length;
      const d0 = dead.length;
      collect(batch, part, keep, { predictions, results, t0s, dead });
      shares.push({ part, p: [p0, predictions.length], d: [d0, dead.length] });
    }
    for (const i of outcome.unrouted) {
      const m = batch[i] as Message;
      dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: 'REJECT_NO_MODEL', reason: `no model in the config takes topic "${m.topic}"`, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey, model: null });
    }
    const inboxIds: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const id = (batch[i] as Message).inboxId;
      if (id !== null && !keep.has(i)) inboxIds.push(id);
    }
    const ids = store.commitBatch(predictions, dead, inboxIds);
    const now = performance.now();
    stats.counters.received += batch.length;
    for (let p = 0; p < results.length; p++) {
      const r = results[p] as Result;
      r.id = ids[p] as number;
      publisher.publish(r);
      stats.latency(now - (t0s[p] as number));
    }
    stats.counters.predictions += predictions.length;
    for (const d of dead) {
      stats.reject(d.reasonCode as RejectReason);
      rejectLog(d.reasonCode, (suppressed) => log.warn({ topic: d.topic, model: d.model, reason: d.reasonCode, detail: d.reason, suppressedSinceLast: suppressed }, 'message rejected'));
    }
    // The whole array when one model has all of it (no copy on the usual path), else its stretch.
    const stretch = <T>(a: T[], [from, to]: [number, number]) => (from === 0 && to === a.length ? a : a.slice(from, to));
    for (const { part, p, d } of shares) {
      const { manifest, inference } = part.model;
      const modelMs = part.result?.ms ?? 0;
      if (part.result) {
        stats.counters.batches++;
        stats.counters.modelMs += modelMs;
      }
      if (part.error) {
        log.error({ err: part.error.message, rows: part.rows.length, keptForReplay: keep.size, model: manifest.name, version: manifest.version }, 'inference failed');
        if (!inference.alive) deps.onFatal(part.error instanceof EdgeError ? part.error : new EdgeError('EDGE_ERR_INFERENCE', part.error.message));
      }
      deps.onCommitted?.({ model: part.model, predictions: stretch(predictions, p), ids: stretch(ids, p), deadLetters: stretch(dead, d), modelMs });
    }
  }

  /** Resolves when no batch that captured `model` is still in flight (it can then be closed). */
  function retired(model: ServingModel): Promise<void> {
    const entry = inFlight.get(model);
    return entry ? new Promise((resolve) => entry.idle.push(resolve)) : Promise.resolve();
  }

  return { run, commit, retired };
}
