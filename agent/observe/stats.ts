// Stats: counters every stage updates, read by the status line (and later /metrics).
// Takes events; gives a snapshot with rates and in-agent latency percentiles.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RejectReason } from '../errors.js';

const WINDOW = 4096;

export function createStats() {
  const latencies = new Float64Array(WINDOW);
  let latencyCount = 0;
  const counters = {
    received: 0,
    predictions: 0,
    deadLetters: 0,
    duplicates: 0,
    refusedWhileStopping: 0,
    replayed: 0,
    batches: 0,
    modelMs: 0,
  };
  const rejects: Partial<Record<RejectReason, number>> = {};
  /** Values other stages own, read at snapshot time (set by the pipeline). */
  const gauges = { resultsPending: () => 0, resultsSent: () => 0, resultsSkipped: () => 0, resultsInvalid: () => 0 };
  // Event-loop delay of the main thread (MQTT, SQLite): inference runs in a worker so this stays low.
  // Its figures include the 10 ms sampling interval itself: the delay is what lies beyond it.
  const RESOLUTION_MS = 10;
  const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  const beyond = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  loop.enable();
  let lastAt = performance.now();
  let lastReceived = 0;
  let lastPredictions = 0;

  return {
    counters,
    rejects,
    gauges,
    /** Starts the event-loop delay figures afresh (the agent calls it once startup is done). */
    resetEventLoop: () => loop.reset(),
    reject(code: RejectReason) {
      counters.deadLetters++;
      rejects[code] = (rejects[code] ?? 0) + 1;
    },
    latency(ms: number) {
      latencies[latencyCount % WINDOW] = ms;
      latencyCount++;
    },
    /** Rates since the previous snapshot; percentiles over the last 4096 messages. */
    snapshot() {
      const now = performance.now();
      const dt = (now - lastAt) / 1000;
      const n = Math.min(latencyCount, WINDOW);
      const sorted = Array.from(latencies.subarray(0, n)).sort((a, b) => a - b);
      const pct = (p: number) => (n ? (sorted[Math.min(n - 1, Math.floor(p * n))] ?? 0) : 0);
      const snap = {
        ...counters,
        resultsSent: gauges.resultsSent(),
        resultsPending: gauges.resultsPending(),
        resultsSkipped: gauges.resultsSkipped(),
        resultsInvalid: gauges.resultsInvalid(),
        rejects: { ...rejects },
        receivedPerSec: dt > 0 ? (counters.received - lastReceived) / dt : 0,
        predictionsPerSec: dt > 0 ? (counters.predictions - lastPredictions) / dt : 0,
        latencyP50Ms: pct(0.5),
        latencyP99Ms: pct(0.99),
        eventLoopDelayP99Ms: beyond(loop.percentile(99)),
        eventLoopDelayMaxMs: beyond(loop.max),
      };
      lastAt = now;
      lastReceived = counters.received;
      lastPredictions = counters.predictions;
      return snap;
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
export type StatsSnapshot = ReturnType<Stats['snapshot']>;
