// Predict: one batch, from dispatch to commit. Takes the messages of a batch and captures the model in
// the slot when the batch is dispatched: the messages are decoded against that model's manifest, its
// worker runs the valid rows, and one transaction stores the predictions (naming that model's version)
// and the dead letters and removes their inbox rows. Then the results are published and observers hear
// "batch committed". A model swapped in meanwhile serves the next batch; this one finishes on its own.

import { interpret, outputWidth, rowShape, type Manifest } from '../../models/manifest.js';
import { EdgeError, type RejectReason } from '../errors.js';
import { createHolds, type AssembledRow, type Assembler } from '../ingest/assemble.js';
import type { Decoded, Decoder } from '../ingest/features.js';
import type { Inference, InferResult } from './infer.js';
import type { Message } from '../ingest/ingest.js';
import { createRateLimitedLog, type Logger } from '../log.js';
import { deliveredFilter, topicMatches } from '../ingest/topic.js';
import type { Publisher, Result } from '../publish.js';
import type { Stats } from '../observe/stats.js';
import type { BatchExtra, BirthRow, DeadLetterRow, HistoricalRow, PredictionRow, Store, WindowMark } from '../store/store.js';

/** A loaded, verified model as it serves: its contract, its worker and its decoder. */
export interface ServingModel {
  readonly manifest: Manifest;
  readonly inference: Inference;
  readonly decode: Decoder;
  /** Judges an assembled row's raw values (the data-quality gate); gives the row to run or why not. */
  readonly judge: (asset: string, raw: readonly unknown[], ages: readonly (number | undefined)[] | null) => Decoded;
  /** The gate's counters (by feature, reason and action), for the status page and /metrics. */
  readonly quality?: () => unknown;
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
  /** The payload style's assembler (tags, Sparkplug B, windows); absent: one JSON message is one row. */
  readonly assembler?: Assembler;
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
  /** One per message (JSON), or one per assembled row. */
  decoded: Decoded[];
  /** A style that makes rows of several messages (assemble.ts): what it made and let go of. */
  assembled?: AssembledPart;
  result?: InferResult;
  error?: Error;
}

/** An assembler's share of a batch. */
export interface AssembledPart {
  rows: AssembledRow[];
  /** Messages it could not read (index into the batch): dead letters. */
  rejects: { i: number; code: RejectReason; detail: string }[];
  /** Messages it let go of (of this batch or earlier ones). */
  released: Message[];
  /** Indexes of this batch's messages it consumed (not restored). */
  fresh: number[];
  births: BirthRow[];
  historical: HistoricalRow[];
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
  // Some model's style holds messages: the inbox rows are kept in books (assemble.ts); else each goes at its commit.
  const assembling = deps.routes.some((r) => r.assembler);
  const holds = createHolds();
  // Batches dispatched and not yet committed, per model: a swapped-out model closes when it has none.
  const inFlight = new Map<ServingModel, { batches: number; idle: (() => void)[] }>();

  /** At dispatch: route each message, capture each model it goes to, decode against it, run its worker. */
  async function run(batch: Message[]): Promise<BatchOutcome> {
    const byRoute: number[][] = deps.routes.map(() => []);
    const unrouted: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i] as Message;
      if (m.tick !== undefined) {
        (byRoute[m.tick] as number[]).push(i);
        continue;
      }
      const to = routeOf(m.topic);
      if (to.length === 0) unrouted.push(i);
      for (const r of to) {
        // Replayed, and this JSON model stored its row before the restart (the row stayed for another model).
        if (m.doneBy && !deps.routes[r]?.assembler && m.doneBy.includes((deps.routes[r] as Route).slot.current.manifest.name)) continue;
        (byRoute[r] as number[]).push(i);
      }
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
    if (route.assembler) return runAssembled(route, route.assembler, model, batch, rows);
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

  /** A style that makes rows of several messages: its assembler takes them in order, the gate judges each row. */
  async function runAssembled(route: Route, asm: Assembler, model: ServingModel, batch: Message[], rows: number[]): Promise<BatchPart> {
    const { manifest } = model;
    const a: AssembledPart = { rows: [], rejects: [], released: [], fresh: [], births: [], historical: [] };
    const now = Date.now();
    for (const i of rows) {
      const m = batch[i] as Message;
      const restore = m.doneBy?.includes(manifest.name) ?? false;
      const t = m.tick !== undefined ? asm.tick(manifest, now) : asm.take(m, manifest, now, restore);
      if (m.tick === undefined && !restore) a.fresh.push(i);
      for (const r of t.rows) a.rows.push(r);
      for (const r of t.released) a.released.push(r);
      if (t.reject) a.rejects.push({ i, ...t.reject });
      if (t.extra?.births) for (const b of t.extra.births) a.births.push(b);
      if (t.extra?.historical) for (const h of t.extra.historical) a.historical.push(h);
    }
    const decoded = a.rows.map((r) => (r.window ? ({ ok: true, asset: r.asset, values: r.window as unknown as number[] } as const) : model.judge(r.asset, r.raw ?? [], r.ages)));
    const part: BatchPart = { route, model, rows, decoded, assembled: a };
    let ok = 0;
    let width = 0;
    for (const d of decoded) {
      if (!d.ok) continue;
      ok++;
      width = d.values.length;
    }
    if (!ok) return part;
    const data = new Float32Array(ok * width);
    let r = 0;
    for (const d of decoded) if (d.ok) data.set(d.values, r++ * width);
    try {
      part.result = await model.inference.run(manifest.input.name, data, ok, width, manifest.input.window ? rowShape(manifest) : undefined);
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

  type Out = { predictions: PredictionRow[]; results: Result[]; t0s: number[]; dead: DeadLetterRow[] };

  /**
   * What one row of a part gives: a dead letter (it could not be read, the model failed, or its output is not
   * finite), or a prediction and its result. `m` names the row (its topic, times and keys), `payload` is what its
   * dead letter keeps, `features` what its prediction stores. Gives whether the row took an output row (k moves on).
   * Plain code and object literals without spreads: this runs once per message.
   */
  function collectRow(part: BatchPart, data: Float32Array | undefined, k: number, m: Message, d: Decoded, deadPayload: Buffer | (() => Buffer), features: (() => readonly number[]) | null, out: Out): boolean {
    const { manifest } = part.model;
    const payload = () => (typeof deadPayload === 'function' ? deadPayload() : deadPayload);
    if (!d.ok || !data) {
      const reason = d.ok ? (part.error?.message ?? `no output "${manifest.output.tensor}"`) : d.detail;
      out.dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: d.ok ? 'REJECT_INFERENCE_FAILED' : d.code, reason, payload: payload(), inboxId: m.inboxId, dedupKey: m.dedupKey, model: manifest.name });
      return false;
    }
    const width = outputWidth(manifest.output);
    const row = new Array<number>(width);
    let finite = true;
    for (let c = 0; c < width; c++) finite = Number.isFinite((row[c] = data[k * width + c] as number)) && finite;
    if (!finite) {
      // A NaN or ±Infinity is no verdict (interpret() would pick a label anyway): a dead letter, never a result.
      out.dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: 'REJECT_NONFINITE_OUTPUT', reason: `model output "${manifest.output.tensor}" is [${row.join(', ')}] for ${d.asset}`, payload: payload(), inboxId: m.inboxId, dedupKey: m.dedupKey, model: manifest.name });
      return true;
    }
    const modelMs = part.result?.ms ?? 0;
    const verdict = interpret(manifest.output, row);
    out.results.push({ topicTemplate: part.route.resultTopic, id: 0, asset: d.asset, model: manifest.name, version: manifest.version, receivedAt: m.receivedAt, sourceTopic: m.topic, verdict, latencyMs: modelMs });
    out.t0s.push(m.t0);
    out.predictions.push({
      receivedAt: m.receivedAt, asset: d.asset, topic: m.topic, modelName: manifest.name, modelVersion: manifest.version,
      features: features ? features() : d.values, outputs: row, label: 'label' in verdict ? verdict.label : null,
      score: verdict.kind === 'classification' ? (verdict.probabilities[verdict.label] ?? null) : verdict.kind === 'score' ? verdict.score : verdict.value,
      latencyMs: modelMs, inboxId: m.inboxId, dedupKey: m.dedupKey, quality: d.quality ?? null,
    });
    return true;
  }

  /** One model's rows of a batch: its predictions, results and dead letters, leaving out the messages kept for the replay. */
  function collect(batch: Message[], part: BatchPart, keep: ReadonlySet<number>, out: Out): void {
    const data = part.result?.outputs[part.model.manifest.output.tensor]?.data;
    let k = 0;
    for (let j = 0; j < part.rows.length; j++) {
      const i = part.rows[j] as number;
      if (keep.has(i)) continue;
      const m = batch[i] as Message;
      if (collectRow(part, data, k, m, part.decoded[j] as Decoded, m.payload, null, out)) k++;
    }
  }

  /** An assembled part's rows, each named by the message that made it (its dead letter keeps the values it was made of); its unreadable messages. */
  function collectAssembled(batch: Message[], part: BatchPart, a: AssembledPart, out: Out): void {
    const data = part.result?.outputs[part.model.manifest.output.tensor]?.data;
    for (const x of a.rejects) {
      const m = batch[x.i] as Message;
      out.dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: x.code, reason: x.detail, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey, model: part.model.manifest.name });
    }
    let k = 0;
    for (let j = 0; j < a.rows.length; j++) {
      const row = a.rows[j] as AssembledRow;
      const w = row.window;
      if (collectRow(part, data, k, row.source, part.decoded[j] as Decoded, () => rowPayload(row), w ? () => windowValues(w) : null, out)) k++;
    }
  }

  /**
   * The inbox rows a batch removes, when some model holds messages (assemble.ts): each message of the batch
   * counts a hold per model that took it; JSON models let go at once, styles when they release; a row goes
   * when nobody holds it. A dead model's part lets go of nothing (the replay gives it its messages again).
   * Held rows get a done row per model that consumed them, so a replay restores instead of redoing them.
   */
  function inboxBooks(batch: Message[], outcome: BatchOutcome, keep: ReadonlySet<number>, dead: ReadonlySet<BatchPart>): { ids: number[]; extra: BatchExtra } {
    const ids: number[] = [];
    const done: { inboxId: number; model: string }[] = [];
    const undone: number[] = [];
    const taken = new Uint8Array(batch.length);
    const go = (id: number) => {
      ids.push(id);
      if (holds.forget(id)) undone.push(id);
    };
    for (const part of outcome.parts) {
      for (const i of part.rows) {
        const m = batch[i] as Message;
        if (m.inboxId === null) continue;
        if (m.doneBy && m.doneBy.length && taken[i] === 0) holds.markDone(m.inboxId);
        taken[i] = 1;
        holds.hold(m.inboxId, 1);
      }
    }
    for (const part of outcome.parts) {
      if (dead.has(part)) continue;
      if (!part.assembled) {
        for (const i of part.rows) {
          const id = (batch[i] as Message).inboxId;
          if (id !== null && !keep.has(i) && holds.release(id)) go(id);
        }
        continue;
      }
      for (const m of part.assembled.released) if (m.inboxId !== null && holds.release(m.inboxId)) go(m.inboxId);
    }
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i] as Message;
      if (m.inboxId !== null && taken[i] === 0 && !keep.has(i)) go(m.inboxId);
    }
    for (const part of outcome.parts) {
      if (!part.assembled || dead.has(part)) continue;
      const model = part.model.manifest.name;
      for (const i of part.assembled.fresh) {
        const id = (batch[i] as Message).inboxId;
        if (id === null || !holds.held(id)) continue;
        done.push({ inboxId: id, model });
        holds.markDone(id);
      }
    }
    ids.sort((x, y) => x - y);
    const births: BirthRow[] = [];
    const historical: HistoricalRow[] = [];
    const marks: WindowMark[] = [];
    for (const part of outcome.parts) {
      if (!part.assembled || dead.has(part)) continue;
      for (const b of part.assembled.births) births.push(b);
      for (const h of part.assembled.historical) historical.push(h);
      const model = part.model.manifest.name;
      for (const r of part.assembled.rows) if (r.window) marks.push({ model, asset: r.asset, at: r.at });
    }
    return { ids, extra: { done, undone, births, historical, marks } };
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
    const deadParts = new Set<BatchPart>();
    for (const part of outcome.parts) {
      if (part.result?.outputs[part.model.manifest.output.tensor]?.data || part.model.inference.alive) continue;
      if (part.assembled) {
        // A style's state moved on already: its messages stay held (no done rows), the replay makes its rows again.
        if (part.assembled.rows.length) deadParts.add(part);
        continue;
      }
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
      if (part.assembled) {
        if (!deadParts.has(part)) collectAssembled(batch, part, part.assembled, { predictions, results, t0s, dead });
      } else {
        collect(batch, part, keep, { predictions, results, t0s, dead });
      }
      shares.push({ part, p: [p0, predictions.length], d: [d0, dead.length] });
    }
    for (const i of outcome.unrouted) {
      const m = batch[i] as Message;
      dead.push({ receivedAt: m.receivedAt, topic: m.topic, reasonCode: 'REJECT_NO_MODEL', reason: `no model in the config takes topic "${m.topic}"`, payload: m.payload, inboxId: m.inboxId, dedupKey: m.dedupKey, model: null });
    }
    let inboxIds: number[] = [];
    let extra: BatchExtra | undefined;
    if (assembling) {
      ({ ids: inboxIds, extra } = inboxBooks(batch, outcome, keep, deadParts));
    } else {
      let undone: number[] | null = null;
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i] as Message;
        const id = m.inboxId;
        if (id === null || keep.has(i)) continue;
        inboxIds.push(id);
        // Replayed with consumers recorded by an earlier config's style: their done rows go too.
        if (m.doneBy) (undone ??= []).push(id);
      }
      if (undone) extra = { undone };
    }
    const ids = store.commitBatch(predictions, dead, inboxIds, extra);
    const now = performance.now();
    let received = batch.length;
    if (assembling) for (const m of batch) if (m.tick !== undefined) received--;
    stats.counters.received += received;
    for (let p = 0; p < results.length; p++) {
      (results[p] as Result).id = ids[p] as number;
      stats.latency(now - (t0s[p] as number));
    }
    // The results go out in one hand-over per batch (publish.batch makes one message per topic of them).
    if (results.length) publisher.publish(results);
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

/** An assembled row's dead letter payload: what the row was made of (a row has no one message of its own). */
function rowPayload(row: AssembledRow): Buffer {
  const values = row.window ? { window: row.window.length } : row.raw;
  return Buffer.from(JSON.stringify({ asset: row.asset, at: row.at, values, ages: row.ages }));
}

/** A window's samples as stored with its prediction: float32 values to 7 significant digits (what float32 holds). */
function windowValues(w: Float32Array): number[] {
  const out = new Array<number>(w.length);
  for (let i = 0; i < w.length; i++) out[i] = Number((w[i] as number).toPrecision(7));
  return out;
}
