// Stats: counters every stage updates, read by the status line, the status page, `edge-agent status`
// and /metrics. Takes events; gives cumulative counters, and rates and latency percentiles from a
// history sampled once a second, so that any number of readers see the same figures.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RejectReason } from '../errors.js';

const WINDOW = 4096;
/** Seconds of history kept (one point a second): the status page's charts. */
export const HISTORY_SEC = 600;
/** Rates are taken over this many seconds of history. */
const RATE_SEC = 5;
/** Upper bounds (ms) of the in-agent latency histogram that /metrics shows. */
const LATENCY_BOUNDS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

/** One point of the history: cumulative counters at `t` (ms since the epoch), latency over the last second's messages. */
export interface HistoryPoint {
  t: number;
  received: number;
  predictions: number;
  deadLetters: number;
  /** Predictions per model and label (cumulative); a regression model's predictions count under "". */
  labels: Record<string, Record<string, number>>;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export function createStats() {
  const latencies = new Float64Array(WINDOW);
  let latencyCount = 0;
  // Every latency also lands in a bucket (cumulative since start): /metrics reads them, a histogram with no window.
  const latencyBuckets = new Float64Array(LATENCY_BOUNDS_MS.length + 1);
  let latencySumMs = 0;
  const counters = {
    received: 0,
    predictions: 0,
    deadLetters: 0,
    duplicates: 0,
    refusedWhileStopping: 0,
    /** QoS 0 messages shed by fairness (ingest/fairness.ts), all subscriptions. */
    shed: 0,
    replayed: 0,
    batches: 0,
    modelMs: 0,
  };
  const rejects: Partial<Record<RejectReason, number>> = {};
  /** QoS 0 messages shed by fairness, per subscription (its topic filter). */
  const shedBySubscription: Record<string, number> = {};
  /** Predictions per model and label, counted on committed batches. */
  const labels: Record<string, Record<string, number>> = {};
  /** Values other stages own, read at snapshot time (set by the pipeline). */
  const gauges = { resultsPending: () => 0, resultsSent: () => 0, resultsSkipped: () => 0, resultsInvalid: () => 0 };
  // Event-loop delay of the main thread (MQTT, SQLite): inference runs in a worker so this stays low.
  // Its figures include the 10 ms sampling interval itself: the delay is what lies beyond it.
  const RESOLUTION_MS = 10;
  const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  const beyond = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  loop.enable();

  function percentiles(): { p50: number; p99: number } {
    const n = Math.min(latencyCount, WINDOW);
    if (!n) return { p50: 0, p99: 0 };
    const sorted = latencies.slice(0, n).sort();
    const pct = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))] ?? 0;
    return { p50: pct(0.5), p99: pct(0.99) };
  }

  // The history: one point a second. Readers only read it, so one reader never changes another's rates.
  const history: HistoryPoint[] = [];
  const sample = (): HistoryPoint => {
    const { p50, p99 } = percentiles();
    const point: HistoryPoint = {
      t: Date.now(),
      received: counters.received,
      predictions: counters.predictions,
      deadLetters: counters.deadLetters,
      labels: Object.fromEntries(Object.entries(labels).map(([m, l]) => [m, { ...l }])),
      latencyP50Ms: p50,
      latencyP99Ms: p99,
    };
    history.push(point);
    if (history.length > HISTORY_SEC) history.shift();
    return point;
  };
  sample();
  const sampler = setInterval(sample, 1000);
  sampler.unref();

  return {
    counters,
    rejects,
    labels,
    gauges,
    /** Starts the event-loop delay figures afresh (the agent calls it once startup is done). */
    resetEventLoop: () => loop.reset(),
    shedBySubscription,
    shed(subscription: string) {
      counters.shed++;
      shedBySubscription[subscription] = (shedBySubscription[subscription] ?? 0) + 1;
    },
    reject(code: RejectReason) {
      counters.deadLetters++;
      rejects[code] = (rejects[code] ?? 0) + 1;
    },
    latency(ms: number) {
      latencies[latencyCount % WINDOW] = ms;
      latencyCount++;
      let b = 0;
      while (b < LATENCY_BOUNDS_MS.length && ms > (LATENCY_BOUNDS_MS[b] as number)) b++;
      latencyBuckets[b] = (latencyBuckets[b] as number) + 1;
      latencySumMs += ms;
    },
    /** Every latency since start: counts per bucket (not cumulative; the last is above the highest bound), their sum and count. */
    latencyHistogram: () => ({ boundsMs: LATENCY_BOUNDS_MS, counts: latencyBuckets, sumMs: latencySumMs, count: latencyCount }),
    /** Counts a committed batch's predictions by label (off the per-message path: once per batch and model). */
    countLabels(model: string, rows: readonly { label: string | null }[]) {
      const byLabel = (labels[model] ??= {});
      for (const r of rows) {
        const l = r.label ?? '';
        byLabel[l] = (byLabel[l] ?? 0) + 1;
      }
    },
    /** The last `seconds` of history, oldest first (one point a second). */
    history(seconds = HISTORY_SEC): HistoryPoint[] {
      return history.slice(-seconds);
    },
    /** Counters now; rates over the last five seconds of history (up to its last point); percentiles over the last 4096 messages. */
    snapshot() {
      // Rates between two points of the history (the same for every reader within a second); percentiles now.
      const last = history[history.length - 1] as HistoryPoint;
      const from = history[Math.max(0, history.length - 1 - RATE_SEC)] as HistoryPoint;
      const dt = (last.t - from.t) / 1000;
      const rate = (k: 'received' | 'predictions') => (dt > 0 ? (last[k] - from[k]) / dt : 0);
      const now = percentiles();
      return {
        ...counters,
        resultsSent: gauges.resultsSent(),
        resultsPending: gauges.resultsPending(),
        resultsSkipped: gauges.resultsSkipped(),
        resultsInvalid: gauges.resultsInvalid(),
        rejects: { ...rejects },
        shedBySubscription: { ...shedBySubscription },
        receivedPerSec: rate('received'),
        predictionsPerSec: rate('predictions'),
        latencyP50Ms: now.p50,
        latencyP99Ms: now.p99,
        eventLoopDelayP99Ms: beyond(loop.percentile(99)),
        eventLoopDelayMaxMs: beyond(loop.max),
      };
    },
    close() {
      clearInterval(sampler);
      loop.disable();
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
export type StatsSnapshot = ReturnType<Stats['snapshot']>;
