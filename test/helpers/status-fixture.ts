// A status snapshot as the agent gives it (agent/observe/status.ts), drift and ground truth included: for the
// tests of what the page and `edge-agent status` make of them.

import type { StatusSnapshot } from '../../agent/observe/status.js';

export function statusFixture(now = Date.now()): StatusSnapshot {
  // The agent gives more per kind than ObserveSources names (sync/upstream.ts status()).
  const kinds = [
    { kind: 'predictions', backlog: 150, oldestUnsyncedSec: 75, lastError: 'connect ECONNREFUSED 10.0.9.9:443', lastErrorAt: new Date(now - 5000).toISOString(), lastSuccess: new Date(now - 80_000).toISOString() },
    { kind: 'dead_letters', backlog: 2, oldestUnsyncedSec: 60, lastError: null, lastErrorAt: null, lastSuccess: null },
  ];
  const point = (t: number, n: number) => ({ t, received: n + 2, predictions: n, deadLetters: 2, labels: { 'bearing-health': { healthy: n - 10, wear: 10 } }, latencyP50Ms: 4.2, latencyP99Ms: 12.5 });
  return {
    agent: { id: 'line3-pc', version: '0.1.0', startedAt: new Date(now - 7_500_000).toISOString(), uptimeSec: 7500, ready: false,
      checks: [{ name: 'broker', ok: false, problem: 'not connected to mqtt://10.0.3.5:1883' }, { name: 'subscriptions', ok: true }, { name: 'model bearing-health', ok: true }, { name: 'store', ok: true }] },
    rates: { received: 1202, predictions: 1200, deadLetters: 2, duplicates: 0, refusedWhileStopping: 0, shed: 0, shedBySubscription: {}, replayed: 0, batches: 40, modelMs: 30, resultsSent: 1200, resultsPending: 0, resultsSkipped: 0, resultsInvalid: 0,
      rejects: { REJECT_OUT_OF_RANGE: 2 }, receivedPerSec: 20, predictionsPerSec: 20, latencyP50Ms: 4.2, latencyP99Ms: 12.5, eventLoopDelayP99Ms: 1.1, eventLoopDelayMaxMs: 9 },
    history: [point(now - 2000, 1160), point(now - 1000, 1180), point(now, 1200)],
    models: [{ name: 'bearing-health', serving: '1.1.0', state: { active: '1.1.0', previous: '1.0.0' }, versions: ['1.0.0', '1.1.0', '1.2.0'], shadow: { version: '1.2.0', compared: 400, agreed: 396, dropped: 0 }, workerAlive: true }],
    events: [{ at: now - 60_000, model: 'bearing-health', version: '1.1.0', event: 'committed', reason: 'probation passed' }, { at: now - 600_000, model: 'bearing-health', version: '1.1.0', event: 'activated', reason: 'pushed' }],
    sync: { running: false, targets: [{ target: 'plant-server', kinds }] },
    store: { usedBytes: 100 * 1024 * 1024, maxBytes: 2 * 1024 ** 3, full: false, onFull: 'drop-oldest', freeDiskBytes: 40 * 1024 ** 3, expired: 0, trimmed: 0, dropped: 0, gaps: 0 },
    drift: {
      enabled: true,
      thresholds: { psiWarn: 0.2, psiClear: 0.1, predictionPsiWarn: 0.2, predictionPsiClear: 0.1, minRows: 500, windowRows: 1000 },
      models: [{
        name: 'bearing-health', version: '1.1.0', available: true, rows: 1000, windowRows: 1000,
        features: [
          { name: 'rms_g', psi: 0.31, rows: 1000, outOfRangeShare: 0.02, mean: 2.4, baselineMean: 1.1, over: true },
          { name: 'kurtosis', psi: 0.04, rows: 1000, outOfRangeShare: 0, mean: 3.1, baselineMean: 3.0, over: false },
        ],
        predictions: { psi: 0.08, shares: { healthy: 0.7, wear: 0.2, fault: 0.1 }, baseline: { healthy: 0.4, wear: 0.3, fault: 0.3 }, over: false },
        deadLetters: { messages: 1002, share: 0.002, byReason: { REJECT_OUT_OF_RANGE: 0.002 } },
        over: { features: ['rms_g'], predictions: false },
      }],
    },
    truth: {
      enabled: true,
      topic: 'plant/+/quality',
      counters: { received: 260, joined: 250, unmatched: 6, bad: 4, duplicates: 0, pending: 0 },
      models: [{ model: 'bearing-health', version: '1.1.0', kind: 'classification', joined: 250, accuracy: 0.964, window: 500 }],
    },
    ingest: [{
      model: 'bearing-health', style: 'sparkplug', assets: 4, held: 0, rows: 900, late: 2, duplicates: 1, supersededUnused: { temperature_c: 5, speed_rpm: 0 },
      quality: {
        rows: 910, passed: 880, rowsWithImputed: 12, rowsWithFlagged: 8, rejected: { REJECT_STALE: 10 },
        features: { temperature_c: { stale: { rejected: 10, imputed: 0, flagged: 0 } }, speed_rpm: { missing: { rejected: 0, imputed: 12, flagged: 0 } } },
      },
      sparkplug: { nodes: [{ group: 'Plant1', node: 'press-gw', online: false, bdSeq: 3, lastSeq: 17, lost: 4, gaps: 2, rebirths: 1, devices: [{ device: 'press7', online: false }] }] },
    }],
  };
}
