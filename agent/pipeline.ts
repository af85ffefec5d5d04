// The wiring file: one MQTT message's whole path, top to bottom.
//   broker --PUBLISH--> ingest (inbox row for QoS 1/2, then PUBACK) --> features (decode, map, check)
//   --> batcher --> infer (worker thread) --> store (predictions + dead letters, inbox rows out, one
//   transaction) --> publish (result topic) --> stats
// Start in data-flow order, stop in reverse: stop taking messages, finish the batches in flight,
// commit, wait for result acks, disconnect keeping the session, close the model and the store.

import type { MqttClient } from 'mqtt';
import { interpret, outputWidth } from '../models/manifest.js';
import { loadModel, type LoadedModel } from '../models/load.js';
import { createBatcher, type Batcher } from './batcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker.js';
import type { FrozenConfig } from './config.js';
import { EdgeError, type RejectReason } from './errors.js';
import { createDecoder, mappingProblems } from './features.js';
import type { InferResult } from './infer.js';
import { createIngest, type Ingest, type Message } from './ingest.js';
import { createRateLimitedLog, type Logger } from './log.js';
import { createMqttClient } from './mqtt.js';
import { createPublisher, modelTopicProblem, type Publisher, type Result } from './publish.js';
import { createStats, type Stats } from './stats.js';
import { openStore, type DeadLetterRow, type PredictionRow, type Store } from './store.js';

export interface Agent {
  readonly brokerUrl: string;
  readonly stats: Stats;
  readonly model: { name: string; version: string };
  /** Graceful stop; the caller bounds it with config.shutdown.deadlineMs. Idempotent. */
  close(): Promise<void>;
  /** The step of close() now running (null before close() and after it finished): what hung at a deadline. */
  readonly closingStep: string | null;
  /** Abort: force-close everything now. Idempotent. */
  destroy(err?: Error): Promise<void>;
}

export interface AgentHooks {
  /** A failure the agent cannot serve through (the store cannot commit, the model worker died). */
  onFatal(err: Error): void;
}

type BatchOutcome = { result: InferResult } | { error: Error } | null;

export async function startAgent(config: FrozenConfig, log: Logger, hooks: AgentHooks): Promise<Agent> {
  const stats = createStats();
  const parts: { store?: Store; model?: LoadedModel; broker?: EmbeddedBroker; client?: MqttClient } = {};
  try {
    // 1. Store: open and migrate the SQLite file.
    const store = (parts.store = openStore(config.store));
    if (store.exposure) log.warn({ path: store.path, problem: store.exposure }, 'store folder is readable by other users');
    // 2. Model: manifest, sha256, ONNX session in its worker, contract and golden vectors checked.
    const model = (parts.model = await loadModel(config.model.dir, config.inference, { maxModelBytes: config.model.maxModelBytes }));
    const { manifest, inference } = model;
    const problems = mappingProblems(config.mapping, manifest);
    const topicProblem = config.publish.enabled ? modelTopicProblem(config.publish.topic, manifest.name, manifest.version) : null;
    if (topicProblem) problems.push(topicProblem);
    if (problems.length) throw new EdgeError('EDGE_ERR_CONFIG_MODEL_MISMATCH', `the config does not fit model ${manifest.name}@${manifest.version}\n  ${problems.join('\n  ')}`, { details: problems });
    log.info({ model: manifest.name, version: manifest.version, dir: model.dir, golden: manifest.golden.length }, 'model loaded and verified');
    // 3. Features: payload -> asset + ordered feature row, or a reject reason.
    const decode = createDecoder(config.mapping, manifest, config.ingest.maxPayloadBytes);
    // 4. Broker: the plant's, or the embedded one on loopback.
    if (!config.mqtt.url) parts.broker = await startEmbeddedBroker(config.mqtt.embedded, { agentClientId: config.mqtt.clientId, resultTopicTemplate: config.publish.topic }, log);
    const brokerUrl = config.mqtt.url ?? (parts.broker as EmbeddedBroker).url;
    // With the embedded broker the agent logs in with the credentials made for this start.
    const mqttOptions = parts.broker ? { ...config.mqtt, ...parts.broker.agentCredentials } : config.mqtt;
    const client = (parts.client = createMqttClient(brokerUrl, mqttOptions, config.ingest.subscriptions, log));
    client.on('error', (err) => log.error({ err: err.message, code: (err as { code?: unknown }).code }, 'mqtt error'));
    client.on('offline', () => log.warn({ url: brokerUrl }, 'broker connection lost; reconnecting'));
    // Holds writes to the broker socket (PUBACKs, results) until released: see ingest.ts, group commit.
    const guarded = new WeakSet<object>();
    function corkBroker(): () => void {
      const stream = client.stream as (NodeJS.ReadWriteStream & { cork?: () => void; uncork?: () => void }) | undefined;
      if (!stream?.cork || !stream.uncork) return () => undefined;
      if (!guarded.has(stream)) {
        // When the broker closes its side, Node ends ours too, and end() flushes corked writes: commit first.
        guarded.add(stream);
        stream.prependListener('end', () => ingest.commitGroup());
      }
      stream.cork();
      return () => stream.uncork?.();
    }

    // 5. Publish: results out after commit.
    const skipLog = createRateLimitedLog(10_000);
    const publisher: Publisher = createPublisher(
      config.publish,
      client,
      () => corkBroker(),
      (err) => log.warn({ err: err.message }, 'result publish failed'),
      (r) => skipLog('skip', (suppressed) => log.warn({ id: r.id, asset: r.asset, skippedSinceLast: suppressed, maxPendingResults: config.publish.maxPendingResults }, 'result not published: too many pending (the prediction is stored)')),
      (r, topic, problem) => skipLog('invalid', (suppressed) => log.error({ id: r.id, topic, problem, skippedSinceLast: suppressed }, 'result not published: a broker would reject its topic (the prediction is stored)')),
    );

    stats.gauges.resultsPending = () => publisher.pending;
    stats.gauges.resultsSent = () => publisher.sent;
    stats.gauges.resultsSkipped = () => publisher.skipped;
    stats.gauges.resultsInvalid = () => publisher.invalid;
    const rejectLog = createRateLimitedLog(10_000);
    const duplicateLog = createRateLimitedLog(10_000);
    const cols = manifest.features.length;
    const width = outputWidth(manifest.output);

    // 6. Infer: the valid rows of a batch, packed, through the worker.
    async function runBatch(batch: Message[]): Promise<BatchOutcome> {
      const ok = batch.filter((m) => m.decoded.ok);
      if (!ok.length) return null;
      const data = new Float32Array(ok.length * cols);
      ok.forEach((m, r) => data.set((m.decoded as { values: number[] }).values, r * cols));
      try {
        return { result: await inference.run(manifest.input.name, data, ok.length, cols) };
      } catch (err) {
        return { error: err as Error };
      }
    }

    // 7. Store + publish: one transaction for the batch, then the results, then the counters.
    function commitBatch(batch: Message[], outcome: BatchOutcome): void {
      ingest.commitGroup(); // the inbox rows of this batch are committed before their predictions
      const predictions: PredictionRow[] = [];
      const results: Result[] = []; // one per prediction; the row id is filled in after the commit
      const t0s: number[] = [];
      const dead: DeadLetterRow[] = [];
      const inboxIds: number[] = [];
      const data = outcome && 'result' in outcome ? outcome.result.outputs[manifest.output.tensor]?.data : undefined;
      const modelMs = outcome && 'result' in outcome ? outcome.result.ms : 0;
      const failure = outcome && 'error' in outcome ? outcome.error.message : `no output "${manifest.output.tensor}"`;
      let k = 0;
      let deferred = 0;
      // Plain loops and object literals without spreads: this runs once per message.
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i] as Message;
        const d = m.decoded;
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
      if (outcome && 'result' in outcome) {
        stats.counters.batches++;
        stats.counters.modelMs += modelMs;
      }
      for (const d of dead) {
        stats.reject(d.reasonCode as RejectReason);
        rejectLog(d.reasonCode, (suppressed) =>
          log.warn({ topic: d.topic, reason: d.reasonCode, detail: d.reason, suppressedSinceLast: suppressed }, 'message rejected'),
        );
      }
      if (outcome && 'error' in outcome) {
        log.error({ err: outcome.error.message, rows: batch.length, deadLetters: dead.length, keptForReplay: deferred }, 'inference failed');
        if (!inference.alive) hooks.onFatal(outcome.error);
      }
    }

    const batcher: Batcher<Message> = createBatcher(config.inference, runBatch, commitBatch, (err) => {
      hooks.onFatal(err instanceof EdgeError ? err : new EdgeError('EDGE_ERR_STORE', `cannot commit a batch: ${(err as Error).message}`, { cause: err }));
    });

    // 8. Ingest: inbox, dedup, decode, into the batcher. Replay what a crash left, then connect.
    const ingest: Ingest = createIngest(config.ingest, {
      store,
      decode,
      // Backpressure on the model only: holding the callback stops mqtt.js reading every packet,
      // including the PUBACKs of our own results, so waiting on the publisher here would deadlock.
      accept: (m) => batcher.push(m),
      drained: () => batcher.drained(),
      onDuplicate: (topic) => {
        stats.counters.duplicates++;
        // A reconnect after a stall redelivers a whole window at once: one line per 10 s, not one per message.
        duplicateLog('duplicate', (suppressed) => log.info({ topic, suppressedSinceLast: suppressed, duplicates: stats.counters.duplicates }, 'redelivered message already stored; acknowledged again'));
      },
      onRefused: () => void stats.counters.refusedWhileStopping++,
      cork: corkBroker,
      onCommitFailed: (err) => {
        // The PUBACKs of this group are in the corked socket buffer: destroy it so they are never sent.
        client.stream?.destroy();
        hooks.onFatal(new EdgeError('EDGE_ERR_STORE', `cannot commit inbox rows: ${err.message}`, { cause: err }));
      },
      afterCommit: killHook(process.env.EDGE_AGENT_TEST_KILL_AFTER_INBOX),
    });
    const replayed = await ingest.replay();
    stats.counters.replayed = replayed;
    if (replayed) log.info({ rows: replayed }, 'replaying inbox rows left by an unclean stop');
    client.handleMessage = ingest.handleMessage;
    stats.resetEventLoop();
    client.connect();
    log.info({ url: brokerUrl, subscriptions: config.ingest.subscriptions }, 'agent started');

    // Stop in reverse, one named step at a time, so a deadline can say which step hung.
    const closeSteps: { name: string; run: () => unknown }[] = [
      { name: 'stop taking messages', run: () => ingest.pause() },
      { name: 'finish batches in flight', run: () => batcher.flush() },
      { name: 'wait for result acknowledgements', run: () => publisher.settled() },
      { name: 'disconnect from broker', run: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())) },
      { name: 'finish batches taken while disconnecting', run: () => batcher.flush() },
      { name: 'close model', run: () => inference.close() },
      { name: 'close store', run: () => store.close() },
      { name: 'close embedded broker', run: () => parts.broker?.close() },
    ];
    let closingStep: string | null = null;
    let closing: Promise<void> | null = null;
    const agent: Agent = {
      brokerUrl,
      stats,
      model: { name: manifest.name, version: manifest.version },
      get closingStep() {
        return closingStep;
      },
      close() {
        closing ??= (async () => {
          for (const step of closeSteps) {
            closingStep = step.name;
            await step.run();
          }
          closingStep = null;
          log.info({ ...stats.snapshot(), rejects: undefined }, 'agent stopped');
        })();
        return closing;
      },
      destroy: (err) => destroyParts(parts, log, err),
    };
    return agent;
  } catch (err) {
    await destroyParts(parts, log);
    throw err;
  }
}

/**
 * Test-only fault injection: EDGE_AGENT_TEST_KILL_AFTER_INBOX=N kills the process with SIGKILL after
 * the first group commit that brings the inbox writes to N or more, before that group's PUBACKs leave:
 * the one moment at which a crash makes the broker redeliver messages the agent already holds.
 */
function killHook(value: string | undefined): ((rows: number) => void) | undefined {
  const at = value ? Number(value) : NaN;
  if (!Number.isInteger(at) || at <= 0) return undefined;
  return (rows) => {
    if (rows >= at) process.kill(process.pid, 'SIGKILL');
  };
}

async function destroyParts(parts: { store?: Store; model?: LoadedModel; broker?: EmbeddedBroker; client?: MqttClient }, log: Logger, err?: Error): Promise<void> {
  if (err) log.error({ err: err.message }, 'force-closing the agent');
  // mqtt.js's end() before its first connect() throws (no stream yet).
  if (parts.client?.stream) parts.client.end(true);
  await parts.model?.inference.close();
  parts.store?.close();
  await parts.broker?.close();
}
