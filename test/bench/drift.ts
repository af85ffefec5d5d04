// Drift figures for `npm run bench` (BENCH_SECTIONS=drift): the drift monitor's own cost on the main thread,
// in process: committed batches of the demo model (6 features, 3 labels) at 1, 16 and 256 rows, fed to
// observe() over and over; CPU time per prediction row, median of 5 rounds. The spine bench run with
// BENCH_DRIFT=off against the default gives the same cost end to end.

import { createDriftMonitor, driftOptionsSchema } from '../../agent/observe/drift.js';
import type { CommittedBatch, ServingModel } from '../../agent/infer/predict.js';
import type { PredictionRow } from '../../agent/store/store.js';
import { createLogger } from '../../agent/log.js';
import { FEATURES, LABELS, mulberry32, sampleReading } from '../../models/demo/bearing.js';
import { readManifest } from '../../models/manifest.js';
import { demoModelDir } from '../helpers/parts.js';

export function driftBench(): void {
  const manifest = readManifest(demoModelDir);
  const rand = mulberry32(1);
  const rows: PredictionRow[] = Array.from({ length: 4096 }, () => {
    const r = sampleReading(rand(), rand);
    return {
      receivedAt: 0, asset: 'p1', topic: 'plant/p1/bearing', modelName: manifest.name, modelVersion: manifest.version, features: FEATURES.map((f) => r[f.name]),
      outputs: [0.2, 0.3, 0.5], label: LABELS[Math.floor(rand() * 3)] as string, score: 0.5, latencyMs: 1, inboxId: null, dedupKey: null,
    };
  });
  console.log('\nDrift monitor, in process: CPU time per prediction row in observe() (demo model, default drift options), median of 5 rounds\n');
  console.log('| rows per batch | ns per row |\n|---|---|');
  for (const size of [1, 16, 256]) {
    const batches: CommittedBatch[] = [];
    for (let i = 0; i + size <= rows.length; i += size) batches.push({ model: { manifest } as ServingModel, predictions: rows.slice(i, i + size), deadLetters: [], modelMs: 1, ids: rows.slice(i, i + size).map((_, k) => i + k + 1) });
    const rounds: number[] = [];
    for (let round = 0; round < 5; round++) {
      const drift = createDriftMonitor(driftOptionsSchema.parse({}), { log: createLogger({ level: 'silent' }) });
      let n = 0;
      // CPU time of this thread, not wall time: on a busy machine the wall clock also counts other processes' turns.
      const t0 = process.cpuUsage();
      for (let rep = 0; rep < 50; rep++) {
        for (const b of batches) {
          drift.observe(b);
          n += b.predictions.length;
        }
      }
      const used = process.cpuUsage(t0);
      rounds.push(((used.user + used.system) * 1e3) / n);
    }
    rounds.sort((a, b) => a - b);
    console.log(`| ${size} | ${Math.round(rounds[2] as number)} |`);
  }
}
