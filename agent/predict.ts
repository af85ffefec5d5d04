// Predict: one batch, from dispatch to commit. Takes the messages of a batch and captures the model in
// the slot when the batch is dispatched: the messages are decoded against that model's manifest, its
// worker runs the valid rows, and one transaction stores the predictions (naming that model's version)
// and the dead letters and removes their inbox rows. Then the results are published and observers hear
// "batch committed". A model swapped in meanwhile serves the next batch; this one finishes on its own.

import { interpret, outputWidth, type Manifest } from '../models/manifest.js';
import { EdgeError, type RejectReason } from './errors.js';
import type { Decoded, Decoder } from './features.js';
import type { Inference, InferResult } from './infer.js';
import type { Message } from './ingest.js';
import { createRateLimitedLog, type Logger } from './log.js';
import type { Publisher, Result } from './publish.js';
import type { Stats } from './stats.js';
import type { DeadLetterRow, PredictionRow, Store } from './store.js';

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

/** What a dispatched batch carries to its commit. */
export interface BatchOutcome {
  model: ServingModel;
  decoded: Decoded[];
  result?: InferResult;
  error?: Error;
}

/** Told after every committed batch (drift, probation, shadow agreement, metrics hang on this). */
export interface CommittedBatch {
  model: ServingModel;
  predictions: readonly PredictionRow[];
  deadLetters: readonly DeadLetterRow[];
  modelMs: number;
}

export interface PredictDeps {
  slot: ModelSlot;
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
  // Batches dispatched and not yet committed, per model: a swapped-out model closes when it has none.
  const inFlight = new Map<ServingModel, { batches: number; idle: (() => void)[] }>();

  /** At dispatch: capture the model, decode against it, run the valid rows through its worker. */
  async function run(batch: Message[]): Promise<BatchOutcome> {
    const model = deps.slot.current;
    const entry = inFlight.get(model) ?? { batches: 0, idle: [] };
    entry.batches++;
    inFlight.set(model, entry);
    const decoded = new Array<Decoded>(batch.length);
    const cols = model.manifest.features.length;
    let ok = 0;
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i] as Message;
      const d = (decoded[i] = model.decode(m.topic, m.payload, m.bytes));
      if (d.ok) ok++;
    }
    if (!ok) return { model, decoded };
    const data = new Float32Array(ok * cols);
    let r = 0;
    for (const d of decoded) if (d.ok) data.set(d.values, r++ * cols);
    try {
      return { model, decoded, result: await model.inference.run(model.manifest.input.name, data, ok, cols) };
    } catch (err) {
      return { model, decoded, error: err as Error };
    }
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
      settle(outcome.model);
    }
  }

  function commitBatch(batch: Message[], outcome: BatchOutcome): void {
    deps.commitInbox();
    const { model, decoded } = outcome;
    const { manifest, inference } = model;
    const width = outputWidth(manifest.output);
    const predictions: PredictionRow[] = [];
    const results: Result[] = []; // one per prediction; the row id is filled in after the commit
    const t0s: number[] = [];
    const dead: DeadLetterRow[] = [];
    const inboxIds: number[] = [];
    const data = outcome.result?.outputs[manifest.output.tensor]?.data;
    const modelMs = outcome.result?.ms ?? 0;
    const failure = outcome.error?.message ?? `no output "${manifest.output.tensor}"`;
    let k = 0;
    let deferred = 0;
    // Plain loops and object literals without spreads: this runs once per message.
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i] as Message;
      const d = decoded[i] as Decoded;
      if (d.ok && !data && m.inboxId !== null && !inference.alive) {
        // The worker is gone and the agent is stopping: keep the inbox row for the replay after restart.
        deferred++;
        continue;
      }
      if (m.inboxId !== null) inboxIds.push(m.inboxId);
      if (!d.ok || !data) {
        const code: RejectReason = d.ok ? 'REJECT_INFERENCE_FAILED' : d.code;
        dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: code, reason: d.ok ? failure : d.detail, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey });
        continue;
      }
      const row = new Array<number>(width);
      let finite = true;
      for (let j = 0; j < width; j++) finite = Number.isFinite((row[j] = data[k * width + j] as number)) && finite;
      k++;
      if (!finite) {
        // A NaN or ±Infinity is no verdict (interpret() would pick a label anyway): a dead letter, never a result.
        dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: 'REJECT_NONFINITE_OUTPUT', reason: `model output "${manifest.output.tensor}" is [${row.join(', ')}] for ${d.asset}`, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey });
        continue;
      }
      const verdict = interpret(manifest.output, row);
      results.push({ id: 0, asset: d.asset, model: manifest.name, version: manifest.version, receivedAt: m.receivedAt, sourceTopic: m.topic, verdict, latencyMs: modelMs });
      t0s.push(m.t0);
      predictions.push({
        receivedAt: m.receivedAt, asset: d.asset, topic: m.topic, modelName: manifest.name, modelVersion: manifest.version,
        features: d.values, outputs: row, label: 'label' in verdict ? verdict.label : null,
        score: verdict.kind === 'classification' ? (verdict.probabilities[verdict.label] ?? null) : verdict.kind === 'score' ? verdict.score : verdict.value,
        latencyMs: modelMs, inboxId: m.inboxId, dedupKey: m.dedupKey,
      });
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
    if (outcome.result) {
      stats.counters.batches++;
      stats.counters.modelMs += modelMs;
    }
    for (const d of dead) {
      stats.reject(d.reasonCode as RejectReason);
      rejectLog(d.reasonCode, (suppressed) => log.warn({ topic: d.topic, reason: d.reasonCode, detail: d.reason, suppressedSinceLast: suppressed }, 'message rejected'));
    }
    if (outcome.error) {
      log.error({ err: outcome.error.message, rows: batch.length, deadLetters: dead.length, keptForReplay: deferred, model: manifest.name, version: manifest.version }, 'inference failed');
      if (!inference.alive) deps.onFatal(outcome.error instanceof EdgeError ? outcome.error : new EdgeError('EDGE_ERR_INFERENCE', outcome.error.message));
    }
    deps.onCommitted?.({ model, predictions, deadLetters: dead, modelMs });
  }

  /** Resolves when no batch that captured `model` is still in flight (it can then be closed). */
  function retired(model: ServingModel): Promise<void> {
    const entry = inFlight.get(model);
    return entry ? new Promise((resolve) => entry.idle.push(resolve)) : Promise.resolve();
  }

  return { run, commit, retired };
}
