// Observe: Prometheus metrics. Takes the stats, each committed batch, each message's topic and QoS at ingest,
// lifecycle events, and what the agent's parts tell at scrape time (ObserveSources); gives /metrics in the
// Prometheus text format, from a registry of its own (never prom-client's global one).
//
// Values the agent already counts (stats, publisher, sync cursors, retention totals) are read when scraped,
// never counted twice. What is counted here is counted once per batch, except the received messages by
// subscription (one Map lookup and one increment per message). Labels stay bounded: subscriptions, models,
// versions, labels and reason codes come from the config and the manifests; assets only when opted in, up to
// `perAsset` of them, the rest under asset="other". A scrape changes nothing another reader sees.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { collectDefaultMetrics, exponentialBuckets, Histogram, Registry, type Metric } from 'prom-client';
import { z } from 'zod';
import type { Subscription } from '../ingest/ingest.js';
import type { CommittedBatch } from '../infer/predict.js';
import { qualitySamples, type QualityFamily, type Sample } from './metrics-quality.js';
import type { Stats } from './stats.js';
import type { ObserveSources } from './status.js';

export const metricsOptionsSchema = z
  .strictObject({
    /** Serve /metrics (with http.enabled). */
    enabled: z.boolean().default(true),
    /** Predictions by asset: the first N assets seen get their own `asset` label, later ones count as "other"; 0: no asset label. */
    perAsset: z.number().int().min(0).max(1000).default(0),
  })
  .prefault({});

export type MetricsOptions = z.infer<typeof metricsOptionsSchema>;

type Labels = Record<string, string | number>;
type Kind = 'counter' | 'gauge' | 'histogram';

/** Default metrics whose collect would disturb another reader, or that promtool rejects (gauges named _total). */
const DROPPED_DEFAULTS = [
  'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_min_seconds', 'nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds', 'nodejs_eventloop_lag_p50_seconds', 'nodejs_eventloop_lag_p90_seconds', 'nodejs_eventloop_lag_p99_seconds',
  'nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total',
];
/** The sampling interval of the event-loop monitor: its figures include it, the delay is what lies beyond. */
const LOOP_RESOLUTION_MS = 10;

/** Sync's status() as the pipeline hands it over (ObserveSources names only what readiness needs). */
type SyncKindStatus = { kind: string; backlog: number; oldestUnsyncedSec: number | null; rowsSent?: number; bytesSent?: number; lastSuccess?: string | null; lastErrorAt?: string | null };

export interface Metrics {
  /** Ingest: one PUBLISH taken from the broker (before dedup), by its topic's subscription and its QoS. */
  /** A message taken from the broker, by the index of its subscription in `subscriptions` (-1: none). */
  received(subscription: number, qos: number): void;
  /** A batch committed for one model. */
  committed(batch: CommittedBatch): void;
  /** A model lifecycle event was recorded. */
  modelEvent(e: { model: string; event: string }): void;
  /** The text for one scrape and its Content-Type. */
  scrape(sources: ObserveSources): Promise<{ type: string; body: string }>;
  close(): void;
}

export function createMetrics(o: Readonly<MetricsOptions>, deps: { stats: Stats; subscriptions: readonly Subscription[]; maxBatchRows: number }): Metrics {
  const { stats } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULTS) registry.removeSingleMetric(name);

  /** A family whose samples are read at scrape time. */
  const family = (name: string, help: string, type: Kind, read: () => Sample[]) => {
    const get = () => ({ name, help, type, aggregator: 'sum', values: read() });
    registry.registerMetric({ name, help, type, aggregator: 'sum', get } as unknown as Metric);
  };
  const one = (value: number, labels?: Labels): Sample[] => [{ value, labels }];
  const entries = (o: Record<string, number>, key: string): Sample[] => Object.entries(o).map(([k, value]) => ({ labels: { [key]: k }, value }));

  // Messages by subscription and QoS (ingest names the subscription by its index in deps.subscriptions), counts in a flat array.
  const received = new Float64Array((deps.subscriptions.length + 1) * 3);
  family('edge_agent_messages_received_total', 'MQTT messages taken from the broker, by subscription (the topic filter in the config; "none": a topic no subscription of this config covers) and QoS, counted before dedup', 'counter', () => {
    const out: Sample[] = [];
    for (let i = 0; i < received.length; i++) {
      const value = received[i] as number;
      if (value === 0) continue;
      const s = Math.floor(i / 3) - 1;
      out.push({ labels: { subscription: s < 0 ? 'none' : (deps.subscriptions[s] as Subscription).topic, qos: i % 3 }, value });
    }
    return out;
  });

  // Read from stats at scrape time.
  const c = stats.counters;
  family('edge_agent_messages_committed_total', 'Messages whose batch was committed to the store (as predictions or dead letters), replayed ones included', 'counter', () => one(c.received));
  family('edge_agent_predictions_total', 'Predictions committed, by model and predicted label (a regression model counts under label="")', 'counter', () =>
    Object.entries(stats.labels).flatMap(([model, byLabel]) => Object.entries(byLabel).map(([label, value]) => ({ labels: { model, label }, value }))));
  family('edge_agent_dead_letters_total', 'Messages stored as dead letters, by reason code (see the README\'s reject reasons)', 'counter', () => entries(stats.rejects as Record<string, number>, 'reason'));
  family('edge_agent_duplicates_total', 'Redelivered QoS 1 messages already stored: acknowledged again, not processed twice', 'counter', () => one(c.duplicates));
  family('edge_agent_messages_shed_total', 'QoS 0 messages shed because their subscription held most of a long queue while others were active (ingest.fairness), by subscription', 'counter', () => entries(stats.shedBySubscription, 'subscription'));
  family('edge_agent_messages_refused_total', 'Messages not taken while the agent was stopping (QoS 1 ones are redelivered at the next start)', 'counter', () => one(c.refusedWhileStopping));
  family('edge_agent_messages_replayed_total', 'Inbox rows an unclean stop left, replayed at this start', 'counter', () => one(c.replayed));
  family('edge_agent_results_published_total', 'Results published on the result topic and acknowledged by the broker', 'counter', () => one(stats.gauges.resultsSent()));
  family('edge_agent_results_pending', 'Results published and not yet acknowledged by the broker', 'gauge', () => one(stats.gauges.resultsPending()));
  family('edge_agent_results_skipped_total', 'Results not published because publish.maxPendingResults results or publish.maxPendingBytes bytes were pending (the prediction is stored)', 'counter', () => one(stats.gauges.resultsSkipped()));
  family('edge_agent_results_invalid_topic_total', 'Results not published because a broker would reject their topic (the prediction is stored)', 'counter', () => one(stats.gauges.resultsInvalid()));
  family('edge_agent_message_latency_seconds', 'In-agent latency per prediction: from the message taken from the broker to its batch committed and its result handed to MQTT', 'histogram', () => {
    const h = stats.latencyHistogram();
    const out: Sample[] = [];
    let cumulative = 0;
    h.boundsMs.forEach((b, i) => {
      cumulative += h.counts[i] as number;
      out.push({ metricName: 'edge_agent_message_latency_seconds_bucket', labels: { le: b / 1000 }, value: cumulative });
    });
    out.push({ metricName: 'edge_agent_message_latency_seconds_bucket', labels: { le: '+Inf' }, value: h.count });
    out.push({ metricName: 'edge_agent_message_latency_seconds_sum', value: h.sumMs / 1000 });
    out.push({ metricName: 'edge_agent_message_latency_seconds_count', value: h.count });
    return out;
  });

  // Counted once per committed batch.
  const batchBuckets = exponentialBuckets(1, 2, Math.max(1, Math.ceil(Math.log2(deps.maxBatchRows)) + 1));
  const batchRows = new Histogram({ name: 'edge_agent_batch_rows', help: 'Rows in one model\'s share of a batch (predictions and dead letters)', labelNames: ['model'], buckets: batchBuckets, registers: [registry] });
  const inference = new Histogram({ name: 'edge_agent_inference_seconds', help: 'The model\'s run time per batch, measured in its worker thread', labelNames: ['model'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
  const score = new Histogram({ name: 'edge_agent_prediction_score', help: 'Score (score models) or predicted value (regression models) of each prediction', labelNames: ['model'], buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 5, 10, 20, 50, 100, 1000], registers: [registry] });
  const events = new Map<string, { model: string; event: string; n: number }>();
  family('edge_agent_model_events_total', 'Model lifecycle events since the agent started (installed, activated, refused, rolled back, probation …), by model and event', 'counter', () =>
    [...events.values()].map((e) => ({ labels: { model: e.model, event: e.event }, value: e.n })));
  // Predictions by asset, opted in: the first `perAsset` assets by name, the rest as "other".
  const named = new Set<string>();
  const byAsset = new Map<string, Map<string, number>>();
  if (o.perAsset > 0) {
    family('edge_agent_asset_predictions_total', `Predictions by model and asset (http.metrics.perAsset: the first ${o.perAsset} assets seen, the rest as asset="other")`, 'counter', () =>
      [...byAsset].flatMap(([model, m]) => [...m].map(([asset, value]) => ({ labels: { model, asset }, value }))));
  }

  // Event-loop delay: a monitor of its own, read and reset once a second; each second's largest delay is
  // observed. (prom-client's default gauges reset theirs at every scrape: two scrapers would disturb each other.)
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const loopDelay = new Histogram({ name: 'edge_agent_event_loop_delay_seconds', help: 'The main thread\'s largest event-loop delay in each second (beyond the monitor\'s 10 ms sampling interval)', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
  const sampler = setInterval(() => {
    if (loop.count > 0) loopDelay.observe(Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS) / 1000);
    loop.reset();
  }, 1000);
  sampler.unref();

  // What the parts tell, read once per scrape so that every family of one scrape sees the same moment.
  let view: { sources: ObserveSources; sync: ReturnType<ObserveSources['sync']>; store: ReturnType<ObserveSources['store']>; models: ReturnType<ObserveSources['models']> } | null = null;
  const syncKinds = (): { target: string; k: SyncKindStatus }[] => (view?.sync?.targets ?? []).flatMap((t) => t.kinds.map((k) => ({ target: t.target, k: k as SyncKindStatus })));
  const perKind = (pick: (k: SyncKindStatus) => number | null | undefined): Sample[] =>
    syncKinds().flatMap(({ target, k }) => {
      const value = pick(k);
      return value === null || value === undefined ? [] : [{ labels: { target, kind: k.kind }, value }];
    });
  const seconds = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : null);
  family('edge_agent_info', 'The agent: its id and version', 'gauge', () => (view ? one(1, { agent: view.sources.agentId, version: view.sources.version }) : []));
  family('edge_agent_broker_connected', '1 while connected to the broker', 'gauge', () => (view ? one(view.sources.broker().connected ? 1 : 0) : []));
  family('edge_agent_results_connected', '1 while the results connection is up (absent when results are not published)', 'gauge', () => {
    const r = view?.sources.broker().results;
    return r ? one(r.connected ? 1 : 0) : [];
  });
  family('edge_agent_broker_subscribed', '1 once the broker acknowledged the subscriptions', 'gauge', () => (view ? one(view.sources.broker().subscribed ? 1 : 0) : []));
  family('edge_agent_model_info', 'Model versions on this agent: role "active" (serving), "previous" (the rollback target), "shadow"', 'gauge', () =>
    (view?.models ?? []).flatMap((m) => {
      const previous = (m.state as { previous?: string | null } | null)?.previous;
      const shadow = (m.shadow as { version?: string } | null)?.version;
      return [
        { labels: { model: m.name, version: m.serving, role: 'active' }, value: 1 },
        ...(previous ? [{ labels: { model: m.name, version: previous, role: 'previous' }, value: 1 }] : []),
        ...(shadow ? [{ labels: { model: m.name, version: shadow, role: 'shadow' }, value: 1 }] : []),
      ];
    }));
  family('edge_agent_model_worker_up', '1 while the serving version\'s worker thread is alive', 'gauge', () => (view?.models ?? []).map((m) => ({ labels: { model: m.name }, value: m.workerAlive ? 1 : 0 })));
  const shadowOf = (pick: (s: { version: string; compared: number; agreed: number; dropped: number }) => number): Sample[] =>
    (view?.models ?? []).flatMap((m) => {
      const s = m.shadow as { version: string; compared: number; agreed: number; dropped: number } | null;
      return s ? [{ labels: { model: m.name, version: s.version }, value: pick(s) }] : [];
    });
  family('edge_agent_shadow_compared_total', 'Rows the shadow version predicted beside the active one (since it started)', 'counter', () => shadowOf((s) => s.compared));
  family('edge_agent_shadow_agreed_total', 'Rows on which the shadow version\'s label agreed with the active one\'s', 'counter', () => shadowOf((s) => s.agreed));
  family('edge_agent_sync_running', '1 while an upstream sync run is under way', 'gauge', () => (view?.sync ? one(view.sync.running ? 1 : 0) : []));
  family('edge_agent_sync_backlog_rows', 'Rows not yet acknowledged by the target, by target and kind', 'gauge', () => perKind((k) => k.backlog));
  family('edge_agent_sync_oldest_unsynced_age_seconds', 'Age of the oldest row the target has not acknowledged (0: none waiting)', 'gauge', () => perKind((k) => k.oldestUnsyncedSec ?? 0));
  family('edge_agent_sync_rows_sent_total', 'Rows the target acknowledged (kept in the store across restarts)', 'counter', () => perKind((k) => k.rowsSent));
  family('edge_agent_sync_bytes_sent_total', 'Bytes of acknowledged batches as sent (gzip)', 'counter', () => perKind((k) => k.bytesSent));
  family('edge_agent_sync_last_success_timestamp_seconds', 'When the target last acknowledged a batch (Unix time)', 'gauge', () => perKind((k) => seconds(k.lastSuccess)));
  family('edge_agent_sync_last_error_timestamp_seconds', 'When a batch to the target last failed (Unix time)', 'gauge', () => perKind((k) => seconds(k.lastErrorAt)));
  const st = (key: string) => Number((view?.store as Record<string, unknown> | undefined)?.[key] ?? 0);
  family('edge_agent_store_used_bytes', 'The store\'s pages in use plus its WAL: what the byte budget counts', 'gauge', () => (view ? one(view.store.usedBytes) : []));
  family('edge_agent_store_budget_bytes', 'The store\'s byte budget (store.retention.maxBytes)', 'gauge', () => (view ? one(view.store.maxBytes) : []));
  family('edge_agent_store_full', '1 while the store is at its byte budget', 'gauge', () => (view ? one(view.store.full ? 1 : 0) : []));
  family('edge_agent_store_wal_behind_pages', 'WAL pages the last checkpoint could not copy into the database file because a reader still needs them (absent while the store checkpoints at commit)', 'gauge', () => (view?.store.wal ? one(view.store.wal.behindPages) : []));
  family('edge_agent_store_disk_free_bytes', 'Free space on the disk holding the store', 'gauge', () => (view?.store.freeDiskBytes != null ? one(view.store.freeDiskBytes) : []));
  family('edge_agent_retention_rows_total', 'Rows retention deleted since the agent started: "expired" (synced, past maxAgeHours), "trimmed" (synced, for the byte budget), "dropped" (NOT synced, for the byte budget: recorded as gaps)', 'counter', () =>
    (view ? ['expired', 'trimmed', 'dropped'].map((action) => ({ labels: { action }, value: st(action) })) : []));
  family('edge_agent_retention_gaps_total', 'Gaps recorded for unsynced rows dropped at the byte budget', 'counter', () => (view ? one(st('gaps')) : []));

  // Drift and ground truth: families named by metrics-quality.ts, registered the first time they have samples.
  let quality = new Map<string, QualityFamily>();
  const registered = new Set<string>();

  return {
    received(subscription, qos) {
      const k = (subscription + 1) * 3 + (qos > 2 ? 2 : qos);
      received[k] = (received[k] as number) + 1;
    },
    committed(b) {
      const model = b.model.manifest.name;
      batchRows.observe({ model }, b.predictions.length + b.deadLetters.length);
      if (b.modelMs > 0) inference.observe({ model }, b.modelMs / 1000);
      if (b.model.manifest.output.kind !== 'classification' && b.predictions.length) {
        const h = score.labels({ model });
        for (const p of b.predictions) if (p.score !== null) h.observe(p.score);
      }
      if (o.perAsset > 0) {
        const m = byAsset.get(model) ?? byAsset.set(model, new Map()).get(model) as Map<string, number>;
        for (const p of b.predictions) {
          if (!named.has(p.asset) && named.size < o.perAsset) named.add(p.asset);
          const asset = named.has(p.asset) ? p.asset : 'other';
          m.set(asset, (m.get(asset) ?? 0) + 1);
        }
      }
    },
    modelEvent(e) {
      const key = `${e.model}\u0000${e.event}`;
      const entry = events.get(key) ?? { model: e.model, event: e.event, n: 0 };
      entry.n++;
      events.set(key, entry);
    },
    async scrape(sources) {
      view = { sources, sync: sources.sync(), store: sources.store(), models: sources.models() };
      quality = qualitySamples(sources.drift?.(), sources.truth?.(), sources.ingest?.());
      for (const [name, f] of quality) {
        if (registered.has(name)) continue;
        registered.add(name);
        family(name, f.help, f.type, () => quality.get(name)?.samples ?? []);
      }
      try {
        return { type: registry.contentType, body: await registry.metrics() };
      } finally {
        view = null;
      }
    },
    close() {
      clearInterval(sampler);
      loop.disable();
    },
  };
}
