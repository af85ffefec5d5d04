// The wiring file: one MQTT message's whole path, top to bottom.
//   broker --PUBLISH--> ingest (inbox row for QoS 1, then PUBACK) --> batcher --> predict (the model in
//   the slot when the batch leaves: decode, infer in its worker thread, one commit of predictions and
//   dead letters with their inbox rows out) --> publish (result topic) --> observers ("batch committed")
// Parts start in data-flow order and are handed to the lifecycle, which stops them in reverse, each
// within its budget: stop taking messages, finish the batches, wait for result acks, disconnect keeping
// the session, close the model and the store.

import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { createModelManager } from '../models/activate.js';
import type { ModelManager } from '../models/activate.js';
import { candidateVersion, installPolicy, seedVersion, type InstallPolicy } from '../models/install.js';
import { loadModel } from '../models/load.js';
import { readManifest, type Manifest } from '../models/manifest.js';
import { openModelVersions } from '../models/versions.js';
import { startRegistryPull } from '../sync/pull.js';
import { createReleaseListener, releaseTopic } from '../sync/push.js';
import { createTarget } from '../sync/targets.js';
import { longestGapMs, startSync, type Sync } from '../sync/upstream.js';
import { createBatcher } from './infer/batcher.js';
import { controlSocketPath, startControl } from './control.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './ingest/broker.js';
import { allSubscriptions, type FrozenConfig, type ModelSpec } from './config.js';
import { EdgeError } from './errors.js';
import { createDecoder, createRowJudge, featureSources, mappingProblems } from './ingest/features.js';
import { qualityProblems, type QualityOptions } from './ingest/quality.js';
import { createIngest, type Ingest, type Message } from './ingest/ingest.js';
import { createAssembler, payloadProblems } from './ingest/styles.js';
import type { BirthRecord, Command } from './ingest/sparkplug.js';
import { createSparkplugClient, leaveMainSession, sparkplugPlan, type StateSource } from './ingest/sparkplug-client.js';
import { createLifecycle, type CloseReport } from './lifecycle.js';
import { createRateLimitedLog, type Logger } from './log.js';
import { corkClient, createMqttClient } from './ingest/mqtt.js';
import { createModelSlot, createPredictor, type ModelSlot, type Route, type ServingModel } from './infer/predict.js';
import { modelTopicProblem, type Publisher } from './publish.js';
import { resultsClientId, startResults } from './results.js';
import { createStats, type Stats } from './observe/stats.js';
import { createMetrics } from './observe/metrics.js';
import { startHttp, json, type HttpServer, type Route as HttpRoute } from './observe/http.js';
import { liveness, readiness, statusSnapshot, type ObserveSources } from './observe/status.js';
import { createDriftMonitor, type DriftStatus } from './observe/drift.js';
import { createTruth, truthOff, type Truth } from './observe/truth.js';
import { statusPageRoutes } from './observe/page.js';
import { startRetention } from './store/retention.js';
import { startCheckpointer } from './store/checkpointer.js';
import { openStore } from './store/store.js';
import { redactUrl } from './redact.js';

export interface Agent {
  readonly brokerUrl: string;
  readonly stats: Stats;
  /** Drift and data quality per served model version (observe/drift.ts), for /metrics and the status page. */
  readonly drift: { status(): DriftStatus };
  /** Ground truth: labels joined, accuracy / MAE per model version (enabled: false when truth is off). */
  readonly truth: Truth;
  /** The models served and the version of each that serves now. */
  readonly models: readonly { name: string; version: string }[];
  /** Resolves when the broker has acknowledged the subscriptions (the agent is ready to serve). */
  readonly ready: Promise<void>;
  /**
   * Graceful stop within `deadlineMs`; gives the parts that had to be force-closed. `safe` tells whether
   * every one of them left nothing at risk (the results not acknowledged are in the store). Idempotent.
   */
  close(deadlineMs: number): Promise<CloseReport & { safe: boolean; hung: string | null }>;
  /** The part now closing (null when none): what hung when a deadline passes. */
  readonly closingStep: string | null;
  /** Abort: force-close everything now. Idempotent. */
  destroy(err?: Error): Promise<void>;
  /** What the agent's parts can tell, for health checks, metrics, the status page and systemd. */
  readonly observe: ObserveSources;
  /** The operators' HTTP server (null when http.enabled is false). */
  readonly http: HttpServer | null;
}

export interface AgentHooks {
  /** A failure the agent cannot serve through (the store cannot commit, the model worker died). */
  onFatal(err: Error): void;
}

const EMPTY = Buffer.alloc(0);

/** Parts whose overrun loses nothing: a force-close there still ends in a clean stop (exit 0). */
const SAFE_OVERRUNS = new Set(['wait for result acknowledgements', 'disconnect from broker', 'disconnect sparkplug host', 'stop upstream sync']);

/** What keeps a model from serving with its part of the config: mapped features it lacks, a name or version no topic can hold. */
export function fitProblems(config: FrozenConfig, spec: ModelSpec, manifest: Manifest): string[] {
  const problems = [
    ...mappingProblems(spec.mapping, manifest, spec.keys.mapping), ...payloadProblems(spec.payload, manifest, spec.keys.payload),
    ...qualityProblems(spec.quality as QualityOptions, manifest, spec.keys.quality),
  ];
  const topicProblem = config.publish.enabled ? modelTopicProblem(spec.resultTopic, manifest.name, manifest.version, spec.keys.resultTopic) : null;
  if (topicProblem) problems.push(topicProblem);
  return problems;
}

/** The name of each model the config lists (from its first version's manifest); two entries for one model are refused. */
export function servedModelNames(config: FrozenConfig): string[] {
  const names: string[] = [];
  config.models.forEach((spec, i) => {
    const name = readManifest(spec.dir).name;
    const twin = names.indexOf(name);
    if (twin >= 0) throw new EdgeError('EDGE_ERR_CONFIG', `${spec.keys.dir}: model ${name} is listed already (${config.models[twin]?.keys.dir}); an agent serves each model once`);
    names[i] = name;
  });
  return names;
}

/** Loads a model version and checks it against its part of the config: what its slot serves. */
async function serve(config: FrozenConfig, spec: ModelSpec, dir: string): Promise<ServingModel & { dir: string }> {
  const model = await loadModel(dir, config.inference, { maxModelBytes: config.model.maxModelBytes });
  const { manifest } = model;
  const problems = fitProblems(config, spec, manifest);
  if (problems.length) {
    await model.inference.close();
    throw new EdgeError('EDGE_ERR_CONFIG_MODEL_MISMATCH', `the config does not fit model ${manifest.name}@${manifest.version}\n  ${problems.join('\n  ')}`, { details: problems });
  }
  // The data-quality gate of this version: a joined style's max ages (join.maxAgeMs, maxAgeMsByFeature) are the
  // gate's stale rule unless the quality options give their own.
  const { judge, counters } = createRowJudge(qualityWithAges(spec), manifest, spec.payload.style === 'json' ? featureSources(spec.mapping, manifest) : undefined);
  return { ...model, decode: createDecoder(spec.mapping, manifest, config.ingest.maxPayloadBytes, judge), judge, quality: counters };
}

/** A model's quality options with its joined style's max ages as the stale rule where the options give none. */
function qualityWithAges(spec: ModelSpec): QualityOptions {
  const q = structuredClone(spec.quality) as QualityOptions;
  if (spec.payload.style !== 'tags' && spec.payload.style !== 'sparkplug') return q;
  const join = spec.payload.join;
  q.maxAgeMs ??= join.maxAgeMs;
  for (const [feature, ms] of Object.entries(join.maxAgeMsByFeature)) {
    const f = (q.features[feature] ??= {});
    f.maxAgeMs ??= ms;
  }
  return q;
}

/** One model the agent serves: its part of the config, its slot and its lifecycle. */
interface Served {
  name: string;
  spec: ModelSpec;
  policy: InstallPolicy;
  slot: ModelSlot;
  route: Route;
}

export async function startAgent(config: FrozenConfig, log: Logger, hooks: AgentHooks): Promise<Agent> {
  const stats = createStats();
  const startedAt = Date.now();
  const life = createLifecycle(log);
  life.add({ name: 'stop stats sampler', close: () => stats.close() });
  // Prometheus metrics: counted from here on (lifecycle events, received messages, committed batches), read at scrape.
  // Every model's subscriptions, in one order: ingest names a message's subscription by its index here (fairness, /metrics).
  const subscriptionList = allSubscriptions(config.models);
  const metrics = config.http.enabled && config.http.metrics.enabled
    ? createMetrics(config.http.metrics, { stats, subscriptions: subscriptionList, maxBatchRows: config.inference.maxBatchRows })
    : null;
  if (metrics) life.add({ name: 'stop metrics sampler', close: () => metrics.close() });
  try {
    // 1. Store: open and migrate the SQLite file (one agent per store: it holds the store's lock).
    const store = openStore(config.store);
    life.add({ name: 'close store', close: () => store.close() });
    // WAL checkpoints in a thread of their own, not inside a commit on this event loop (checkpointer.ts).
    const checkpointer = startCheckpointer(store, log);
    life.add({ name: 'stop checkpoint thread', close: () => checkpointer.close() });
    if (store.exposure) log.warn({ path: store.path, problem: store.exposure }, 'store folder is readable by other users');
    const recordEvent = (e: Parameters<typeof store.recordModelEvent>[0]) => {
      store.recordModelEvent(e);
      metrics?.modelEvent(e);
    };
    // Retention: rows past their age once every sync target has them; the database within its byte budget.
    const syncNames = config.sync.targets.map((t) => t.name);
    const retention = startRetention(config.store.retention, {
      retention: store.retention, log,
      syncedUpTo: (kind) => (syncNames.length ? Math.min(...syncNames.map((n) => store.sync.state(n, kind).ackedId)) : Number.MAX_SAFE_INTEGER),
    });
    life.add({ name: 'stop retention', close: () => retention.close() });

    // 2. Models: the versions on disk (each model's dir in the config is its first version, installed once);
    //    each model's active version loaded in its own worker (manifest, sha256, contract, golden vectors)
    //    and put in its slot, with the topics it takes and its result topic.
    const versions = openModelVersions(config.model.versionsDir as string);
    for (const r of versions.recovered) log.warn({ model: r.model, removedIncoming: r.removedIncoming, problem: r.problem }, 'model versions recovered after an unclean stop');
    servedModelNames(config); // each model once
    const served: Served[] = [];
    // Sparkplug B: the births kept (alias maps), and where its commands go once the broker client exists.
    const savedBirths = config.models.some((m) => m.payload.style === 'sparkplug') ? store.savedBirths().map((b) => b.record as BirthRecord) : [];
    const sparkplugOut = { command: (_c: Command) => undefined as void, state: (_c: Command) => undefined as void };
    // With a Sparkplug host id: those models' messages and the host's STATE on a connection of their own (sparkplug-client.ts).
    const spbPlan = sparkplugPlan(config.models);
    let spbHost = null as StateSource | null;
    for (const spec of config.models) {
      const policy = installPolicy(config, spec);
      const name = await seedVersion(versions, spec, policy, recordEvent);
      const first = await serve(config, spec, versions.versionDir(name, versions.state(name).active as string));
      const slot = createModelSlot(first);
      life.add({ name: config.models.length > 1 ? `close model ${name}` : 'close model', close: () => slot.current.inference.close() });
      // The payload style's assembler (tags, Sparkplug B, windows): its state outlives version swaps.
      const assembler = createAssembler(spec.payload, first.manifest, {
        maxPayloadBytes: config.ingest.maxPayloadBytes, model: first.manifest.name, savedBirths,
        command: (c) => sparkplugOut.command(c), state: (c) => sparkplugOut.state(c), windowMarks: spec.payload.style === 'window' ? store.windowMarks(first.manifest.name) : new Map(),
        onHost: (h) => void (spec === spbPlan?.owner && (spbHost = h)),
      });
      served.push({ name, spec, policy, slot, route: { slot, filters: [...spec.subscriptions.map((s) => s.topic), ...(spec === spbPlan?.owner ? [spbPlan.stateTopic] : [])], resultTopic: spec.resultTopic, assembler } });
      const { manifest } = first;
      log.info({ model: manifest.name, version: manifest.version, dir: first.dir, golden: manifest.golden.length, subscriptions: spec.subscriptions.map((s) => s.topic) }, 'model loaded and verified');
    }
    const servedNow = () => served.map((s) => ({ name: s.name, version: s.slot.current.manifest.version }));

    // 3. Broker: the plant's, or the embedded one on loopback.
    let broker: EmbeddedBroker | undefined;
    if (!config.mqtt.url) {
      broker = await startEmbeddedBroker(config.mqtt.embedded, { agentClientIds: [config.mqtt.clientId, resultsClientId(config.publish, config.mqtt.clientId)], resultTopicTemplates: [...new Set(served.map((s) => s.spec.resultTopic))] }, log);
      const b = broker;
      life.add({ name: 'close embedded broker', close: () => b.close() });
    }
    const brokerUrl = config.mqtt.url ?? (broker as EmbeddedBroker).url;

    // The sync schedule's longest gap, before connecting: node-cron takes ~50 ms of a cold start for it (upstream.ts).
    const gapMs = config.sync.targets.length ? longestGapMs(config.sync.schedule) : 0;

    // 4. MQTT client: with the embedded broker the agent logs in with the credentials made for this start.
    let markReady: () => void = () => undefined;
    let subscribed = false;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const mqttOptions = broker ? { ...config.mqtt, ...broker.agentCredentials } : config.mqtt;
    const agentId = config.releases.agentId ?? config.mqtt.clientId;
    if (config.releases.enabled && !/^[A-Za-z0-9._-]{1,128}$/.test(agentId)) {
      throw new EdgeError('EDGE_ERR_CONFIG', `releases.agentId: the agent's id on the release topics defaults to mqtt.clientId "${agentId}", which cannot stand in a topic level: set releases.agentId (letters, digits, . _ -)`);
    }
    const releaseTopics = config.releases.enabled ? [releaseTopic(config.releases.topicPrefix, 'agents', agentId), ...config.releases.groups.map((g) => releaseTopic(config.releases.topicPrefix, 'groups', g))] : [];
    const readings = allSubscriptions(config.models.filter((m) => !spbPlan?.models.includes(m)));
    const labelTopics = config.truth.enabled ? [config.truth.topic] : [];
    const subscriptions = [...readings, ...[...releaseTopics, ...labelTopics].map((topic) => ({ topic, qos: 1 as const }))];
    // Ready once each connection has its subscriptions (the Sparkplug host's, when there is one).
    const parts = { main: false, spb: spbPlan === null };
    const partReady = (part: keyof typeof parts) => {
      parts[part] = true;
      if (!parts.main || !parts.spb) return;
      subscribed = true;
      markReady();
    };
    const client: MqttClient = createMqttClient(brokerUrl, mqttOptions, subscriptions, log, (refused) => {
      if (readings.length && refused.length >= readings.length) return; // nothing to serve: not ready
      partReady('main');
    });
    void ready.then(() => log.info({ url: brokerUrl, models: servedNow().map((m) => `${m.name}@${m.version}`) }, 'agent ready'));
    client.on('error', (err) => log.error({ err: err.message, code: (err as { code?: unknown }).code }, 'mqtt error'));
    client.on('offline', () => log.warn({ url: brokerUrl }, 'broker connection lost; reconnecting'));
    // Holds writes to the broker socket (PUBACKs, results) until released: see ingest.ts, group commit.
    // When the broker closes its side, Node ends ours too, and end() flushes corked writes: commit first.
    const corkBroker = corkClient(client, (stream) => void stream.prependListener('end', () => ingest.commitGroup()));

    // Sparkplug B commands (rebirth requests): QoS 0, not retained, as the specification asks.
    sparkplugOut.command = (c) => void client.publish(c.topic, c.payload, { qos: 0, retain: false }, (err) => {
      if (err) log.warn({ topic: c.topic, err: err.message }, 'sparkplug command not published');
    });
    sparkplugOut.state = (c) => void client.publish(c.topic, c.payload, { qos: 1, retain: true });
    const spb = spbPlan && spbHost ? createSparkplugClient(brokerUrl, mqttOptions, spbPlan, {
      host: spbHost, log, handleMessage: (packet, callback) => ingest.handleMessage(packet, callback),
      onSubscribed: (refused) => void (refused.length < spbPlan.subscriptions.length && partReady('spb')),
    }) : null;
    if (spb) {
      leaveMainSession(client, spbPlan as NonNullable<typeof spbPlan>, readings, log);
      sparkplugOut.command = (c) => spb.command(c);
      sparkplugOut.state = (c) => spb.state(c);
      life.add({ name: 'disconnect sparkplug host', closeBudgetMs: 2000, onOverrun: 'the broker publishes the Will: the offline STATE', close: () => spb.close(), destroy: () => spb.destroy() });
    }

    // 5. Publish: results out after commit, on their own connection (results.ts).
    const results = config.publish.enabled ? startResults(brokerUrl, mqttOptions, config.publish, log) : null;
    const publisher: Publisher = results ?? { publish: () => undefined, settled: () => Promise.resolve(), pending: 0, sent: 0, skipped: 0, invalid: 0 };
    stats.gauges.resultsPending = () => publisher.pending;
    stats.gauges.resultsSent = () => publisher.sent;
    stats.gauges.resultsSkipped = () => publisher.skipped;
    stats.gauges.resultsInvalid = () => publisher.invalid;

    // 6. Predict: each message goes to the models whose subscriptions match its topic; a batch captures each
    //    model in its slot at dispatch, is committed in order (one transaction for all models), then published.
    const drift = createDriftMonitor(config.drift, { log });
    const predictor = createPredictor({
      routes: served.map((s) => s.route), store, publisher, stats, log, commitInbox: () => ingest.commitGroup(), onFatal: hooks.onFatal,
      // Observers of committed batches (off the per-message path): each model's lifecycle (probation, shadow),
      // drift and data quality, and upstream sync (an early run when the backlog grows).
      onCommitted: (b) => {
        managers.get(b.model.manifest.name)?.observe(b);
        stats.countLabels(b.model.manifest.name, b.predictions);
        drift.observe(b);
        truth?.observe(b);
        metrics?.committed(b);
        sync?.stored(b.predictions.length + b.deadLetters.length);
      },
    });
    const batcher = createBatcher(config.inference, predictor.run, predictor.commit, (err) => {
      hooks.onFatal(err instanceof EdgeError ? err : new EdgeError('EDGE_ERR_STORE', `cannot commit a batch: ${(err as Error).message}`, { cause: err }));
    }, (batch) => ingest.left(batch));

    // 7. Ingest: inbox, dedup, into the batcher. Replay what a crash left, then connect.
    const duplicateLog = createRateLimitedLog(10_000);
    const shedLog = createRateLimitedLog(10_000);
    const { fairness } = config.ingest;
    const ingest: Ingest = createIngest({ ...config.ingest, rowsPerMessage: served.length, filters: subscriptionList.map((s) => s.topic) }, {
      store,
      // Backpressure on the model only: holding the callback stops mqtt.js reading every packet,
      // including the PUBACKs of our own results, so waiting on the publisher here would deadlock.
      accept: (m: Message) => batcher.push(m),
      drained: () => batcher.drained(),
      onDuplicate: (topic) => {
        stats.counters.duplicates++;
        // A reconnect after a stall redelivers a whole window at once: one line per 10 s, not one per message.
        duplicateLog('duplicate', (suppressed) => log.info({ topic, suppressedSinceLast: suppressed, duplicates: stats.counters.duplicates }, 'redelivered message already stored; acknowledged again'));
      },
      onRefused: () => void stats.counters.refusedWhileStopping++,
      onReceived: metrics?.received,
      cork: corkBroker,
      onCommitFailed: (err) => {
        // The PUBACKs of this group are in the corked socket buffer: destroy it so they are never sent.
        client.stream?.destroy();
        hooks.onFatal(new EdgeError('EDGE_ERR_STORE', `cannot commit inbox rows: ${err.message}`, { cause: err }));
      },
      afterCommit: killHook(process.env.EDGE_AGENT_TEST_KILL_AFTER_INBOX),
      room: () => retention.room(),
      queuedRows: () => batcher.queued,
      onShed: (subscription, topic) => {
        stats.shed(subscription);
        shedLog('shed', (suppressed) => log.warn({ subscription, topic, shedSinceLast: suppressed, shed: stats.counters.shed, queuedRows: batcher.queued, queueRows: fairness.queueRows, maxShare: fairness.maxShare }, 'QoS 0 messages shed: one subscription holds most of the queue while others are active'));
      },
    });

    // 7b. Ground truth (optional): labels stored before their PUBACK, joined to predictions off the per-message path.
    const truth = config.truth.enabled
      ? createTruth(config.truth, {
        store, log, models: served.map((s) => s.name), maxPayloadBytes: config.ingest.maxPayloadBytes,
        // Test-only: SIGKILL once a label is stored and acknowledged, before any join pass (a crash test).
        afterStore: process.env.EDGE_AGENT_TEST_KILL_AFTER_LABEL === '1' ? () => process.kill(process.pid, 'SIGKILL') : undefined,
      })
      : null;
    if (truth) life.add({ name: 'stop ground truth', close: () => truth.close() });

    // 8. The model lifecycle, one manager per model: installs and rollbacks asked for on the control socket
    //    (edge-agent model …), pushed or pulled releases (each names its model).
    const managers = new Map<string, ModelManager>();
    for (const s of served) {
      managers.set(s.name, createModelManager({
        versions, slot: s.slot, load: (dir) => serve(config, s.spec, dir), retired: (m) => predictor.retired(m),
        record: (e) => {
          recordEvent(e);
          releases?.onEvent(e);
        },
        storeShadow: (rows) => store.commitShadow(rows),
        log, keepVersions: config.model.keepVersions, policy: s.policy, probation: config.model.probation,
      }));
    }
    for (const m of managers.values()) await m.resumeShadow();
    life.add({ name: 'close shadow models', close: async () => void (await Promise.all([...managers.values()].map((m) => m.close()))) });
    // 9. Releases pushed on the broker (retained, per agent and per group); this agent's status, retained.
    const releases = config.releases.enabled
      ? createReleaseListener(config.releases, { client, managers, versionsDir: config.model.versionsDir as string, agentId, log })
      : null;
    if (releases) void ready.then(() => releases.publishStatus());
    // And from a registry on a schedule, once the agent is ready (its status then reports the progress).
    let pull: { close(): Promise<void> } | null = null;
    const registry = config.releases.registry;
    if (releases && registry) {
      void ready.then(() => (pull = startRegistryPull(registry, { modelNames: () => [...managers.keys()], offer: (a, from) => releases.offer(a, from), log })));
    }
    // 10. Upstream sync: every row to each target on the schedule, once the agent is ready.
    let sync: Sync | null = null;
    let syncStopped = false;
    const syncTargets = config.sync.targets.map((t) => createTarget(t, agentId));
    void ready.then(() => {
      if (!syncStopped) sync = startSync(config.sync, { store, targets: syncTargets, agentId, log, afterRun: () => void retention.check(), gapMs });
    });
    life.add({
      name: 'stop upstream sync',
      closeBudgetMs: 3000,
      onOverrun: 'the batch in flight is sent again at the next start, with the same idempotency key',
      close: async () => {
        syncStopped = true;
        if (sync) await sync.close();
        else for (const t of syncTargets) t.close();
      },
    });
    const syncNotRunning = () => new EdgeError('EDGE_ERR_CONTROL', 'upstream sync starts once the agent is ready (connected and subscribed)');
    const control = await startControl(controlSocketPath(config.store.path), {
      'sync.now': async () => (sync ? sync.now() : Promise.reject(syncNotRunning())),
      'sync.status': async () => (sync ? { ...sync.status(), store: retention.status() } : Promise.reject(syncNotRunning())),
      'model.install': async (a) => {
        const path = String(a.path);
        // With one model its manager checks the release (and records a refusal); with several, the release's
        // manifest says which model it is for (an unreadable one is refused here, with its own error).
        const m = managers.size === 1 ? managerFor(managers, undefined) : managerFor(managers, readManifest(path).name, (e) => recordEvent({ ...e, version: candidateVersion(path) }));
        return a.shadow === true ? m.installShadow(path) : m.install(path);
      },
      'model.promote': async (a) => managerFor(managers, a.model).promote(),
      'model.rollback': async (a) => managerFor(managers, a.model).rollback(typeof a.reason === 'string' ? a.reason : 'rolled back by hand'),
      'model.list': async (a) => ({ models: (a.model === undefined ? [...managers.values()] : [managerFor(managers, a.model)]).map((m) => m.list()), events: store.modelEvents(20) }),
      'truth.status': async () => (truth ?? truthOff).status(),
      'model.drill': async (a) => managerFor(managers, a.model).drill(Number(a.readings ?? 100), Number(a.timeoutMs ?? 120_000)),
      status: async (a) => statusSnapshot(observe, config.http.maxSyncLagSec, Number(a.historySec ?? 0) || 0),
    }, log);

    // 11. Observe: what the parts can tell, read by /healthz, /readyz, /metrics, the status page, `edge-agent
    //     status` and the systemd notifier. Readers only: nothing here is on the per-message path.
    const observe: ObserveSources = {
      agentId,
      version: agentVersion(),
      startedAt,
      stats,
      models: () => served.map((s) => {
        const m = managers.get(s.name)?.list();
        return { name: s.name, serving: s.slot.current.manifest.version, state: m?.state ?? null, versions: m?.versions ?? [], shadow: m?.shadow ?? null, workerAlive: s.slot.current.inference.alive };
      }),
      events: (limit) => store.modelEvents(limit),
      sync: () => (sync ? sync.status() : null),
      store: () => ({ ...retention.status(), wal: checkpointer.status() }),
      broker: () => ({ connected: client.connected, subscribed, url: redactUrl(brokerUrl), ...(results ? { results: { connected: results.connected, clientId: results.clientId } } : {}) }),
      pingWorkers: (timeoutMs) => Promise.all(served.map(async (s) => ({ model: s.name, alive: await s.slot.current.inference.ping(timeoutMs) }))),
      drift: () => drift.status(),
      truth: () => (truth ?? truthOff).status(),
      ingest: () => served.map((s) => ({ model: s.name, style: s.spec.payload.style, ...s.route.assembler?.status(), quality: s.slot.current.quality?.() ?? null })),
    };
    let http: HttpServer | null = null;
    if (config.http.enabled) {
      const maxLag = config.http.maxSyncLagSec;
      const routes: Record<string, HttpRoute> = {
        '/healthz': async () => {
          const r = await liveness(observe);
          return json(r.ok ? 200 : 503, r);
        },
        '/readyz': () => {
          const r = readiness(observe, maxLag);
          return json(r.ok ? 200 : 503, r);
        },
        '/api/status': (req) => json(200, statusSnapshot(observe, maxLag, Number(new URL(req.url ?? '/', 'http://x').searchParams.get('historySec') ?? 300) || 0)),
        // The status page at / (its script, style and uPlot under /assets/): it polls /api/status.
        ...statusPageRoutes(log),
      };
      if (metrics) routes['/metrics'] = async () => ({ status: 200, ...(await metrics.scrape(observe)) });
      http = await startHttp(config.http, routes, log);
      const h = http;
      life.add({ name: 'close http server', closeBudgetMs: 1000, close: () => h.close(), destroy: () => h.destroy() });
    }

    // The stop, in reverse of the data flow (the lifecycle closes the last added first).
    life.add({ name: 'finish batches taken while disconnecting', close: () => batcher.flush() });
    life.add({
      name: 'disconnect from broker',
      closeBudgetMs: 2000,
      onOverrun: 'the broker did not answer; the session stays with the broker',
      close: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
      destroy: () => void (client.stream ? client.end(true) : undefined),
    });
    if (results) {
      const r = results;
      life.add({ name: 'disconnect results connection', closeBudgetMs: 1000, onOverrun: 'the broker did not answer', close: () => r.close(), destroy: () => r.destroy() });
    }
    life.add({
      name: 'wait for result acknowledgements',
      closeBudgetMs: Math.min(5000, Math.round(config.shutdown.deadlineMs / 3)),
      onOverrun: 'results not acknowledged by the broker are in the store',
      close: () => publisher.settled(),
    });
    life.add({ name: 'finish batches in flight', onOverrun: 'batches not committed keep their inbox rows: replayed at restart', close: () => batcher.flush() });
    life.add({ name: 'stop taking messages', close: () => ingest.pause() });
    life.add({ name: 'close control socket', close: () => control.close() });
    life.add({ name: 'stop registry pull', close: () => pull?.close() });

    // Ground truth loads its memory of recent predictions before the replay commits more of them.
    truth?.start();
    const replayed = await ingest.replay();
    stats.counters.replayed = replayed;
    if (replayed) log.info({ rows: replayed }, 'replaying inbox rows left by an unclean stop');
    // Styles that make rows on a period (a join on a period, Sparkplug B reorder timeouts): a tick goes through
    // the batcher like a message, so the assembler only ever runs at dispatch, in order.
    const tickers = served.flatMap((s, route) => {
      const every = s.route.assembler?.tickMs;
      if (!every) return [];
      const timer = setInterval(() => void batcher.push({ inboxId: null, dedupKey: null, topic: '', payload: EMPTY, bytes: 0, receivedAt: Date.now(), t0: performance.now(), tick: route }), every);
      timer.unref();
      return [timer];
    });
    if (tickers.length) life.add({ name: 'stop assembler ticks', close: () => tickers.forEach((t) => clearInterval(t)) });
    // Release announcements and labels are not readings: they go to the release listener and to ground truth,
    // everything else to ingest.
    client.handleMessage = releases || truth
      ? (packet, callback) => {
          if (truth?.handles(packet.topic)) return truth.handleMessage(packet, callback);
          if (!releases?.handles(packet.topic)) return ingest.handleMessage(packet, callback);
          releases.receive(packet.topic, typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload);
          callback();
        }
      : ingest.handleMessage;
    stats.resetEventLoop();
    client.connect();
    spb?.connect();
    log.info({ url: brokerUrl, subscriptions: readings }, 'agent started');

    let closing: Promise<CloseReport & { safe: boolean; hung: string | null }> | null = null;
    return {
      brokerUrl,
      stats,
      drift: { status: () => drift.status() },
      truth: truth ?? truthOff,
      get models() {
        return servedNow();
      },
      ready,
      get closingStep() {
        return life.closing;
      },
      close(deadlineMs) {
        closing ??= life.close(deadlineMs).then((report) => {
          const hung = report.forced.find((f) => !SAFE_OVERRUNS.has(f.part))?.part ?? null;
          log.info({ ...stats.snapshot(), rejects: undefined, forced: report.forced.map((f) => f.part) }, 'agent stopped');
          return { ...report, safe: hung === null, hung };
        });
        return closing;
      },
      destroy: async (err) => {
        if (err) log.error({ err: err.message }, 'force-closing the agent');
        await life.destroy(err);
      },
      observe,
      http,
    };
  } catch (err) {
    await life.destroy();
    throw err;
  }
}

/**
 * Which of the served models (`names`) a command or a release names: `model` undefined picks the only one;
 * a name the agent does not serve is refused naming those it does (a release's refusal is
 * EDGE_ERR_RELEASE_FILES, a command's EDGE_ERR_CLI_USAGE). Used by the running agent and by the commands
 * that work on the store when no agent runs.
 */
export function servedModelIndex(names: readonly string[], model: unknown, release = false): number {
  if (model === undefined || model === null) {
    if (names.length === 1) return 0;
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `this agent serves several models (${names.join(', ')}): name one`);
  }
  const i = names.indexOf(String(model));
  if (i >= 0) return i;
  throw new EdgeError(release ? 'EDGE_ERR_RELEASE_FILES' : 'EDGE_ERR_CLI_USAGE', `this agent serves ${names.join(', ')}, not ${String(model)}`);
}

/** The manager of the model a command names (see servedModelIndex); a release's refusal is recorded through `refused`. */
function managerFor(managers: ReadonlyMap<string, ModelManager>, model: unknown, refused?: (e: { model: string; event: string; reason: string }) => void): ModelManager {
  const list = [...managers.values()];
  try {
    return list[servedModelIndex([...managers.keys()], model, refused !== undefined)] as ModelManager;
  } catch (err) {
    refused?.({ model: String(model), event: 'refused', reason: (err as Error).message });
    throw err;
  }
}

/** The agent's own version (package.json), for the status page, /metrics and `edge-agent status`. */
export function agentVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
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
