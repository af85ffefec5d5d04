// One batch for two models on one topic (agent/infer/predict.ts) against a real SQLite store and the real demo
// model in its worker: when the other model's worker is gone (the agent stopping), the readings it did not
// run keep their inbox rows and nothing of them is stored for either model, so the replay gives each model
// its one row. A model whose worker is alive but fails makes dead letters, and the inbox rows go.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createDecoder, createRowJudge, mappingOptionsSchema } from '../../agent/ingest/features.js';
import { qualityOptionsSchema } from '../../agent/ingest/quality.js';
import { inferenceOptionsSchema, type Inference } from '../../agent/infer/infer.js';
import type { Message } from '../../agent/ingest/ingest.js';
import { createLogger } from '../../agent/log.js';
import { createModelSlot, createPredictor, type ServingModel } from '../../agent/infer/predict.js';
import type { Publisher, Result } from '../../agent/publish.js';
import { createStats } from '../../agent/observe/stats.js';
import { openStore, storeOptionsSchema } from '../../agent/store/store.js';
import { loadModel } from '../../models/load.js';
import { demoModelDir, readingPayload, teardown, tempDir } from '../helpers/parts.js';

const mapping = mappingOptionsSchema.parse({ features: { rms_g: 'vibration.rms_g', peak_g: 'vibration.peak_g', kurtosis: 'vibration.kurtosis', crest_factor: 'vibration.crest_factor' } });

async function setup(t: Parameters<typeof teardown>[0], other: { alive: boolean }) {
  const store = openStore(storeOptionsSchema.parse({ path: join(tempDir(t), 'a.db') }));
  teardown(t, () => store.close());
  const real = await loadModel(demoModelDir, inferenceOptionsSchema.parse({}));
  teardown(t, () => real.inference.close());
  const a: ServingModel = { ...real, decode: createDecoder(mapping, real.manifest, 65536), judge: createRowJudge(qualityOptionsSchema.parse({}), real.manifest).judge };
  // The second model's worker: the one part that is not real, a worker that is gone (or fails) on cue.
  const gone: Inference = { inputs: [], outputs: [], alive: other.alive, run: () => Promise.reject(new Error('inference worker exited')), ping: async () => other.alive, close: async () => undefined };
  const manifest = { ...real.manifest, name: 'other-model' };
  const b: ServingModel = { manifest, inference: gone, decode: createDecoder(mapping, manifest, 65536), judge: createRowJudge(qualityOptionsSchema.parse({}), manifest).judge };
  const published: Result[] = [];
  const publisher = { publish: (rs: readonly Result[]) => void published.push(...rs) } as unknown as Publisher;
  const fatal: Error[] = [];
  const predictor = createPredictor({
    routes: [a, b].map((m) => ({ slot: createModelSlot(m), filters: ['plant/+/bearing'], resultTopic: 'r/{asset}' })),
    store, publisher, stats: createStats(), log: createLogger({ level: 'silent' }), commitInbox: () => undefined, onFatal: (err) => void fatal.push(err),
  });
  const batch: Message[] = [0, 1, 2].map((i) => {
    const payload = Buffer.from(readingPayload(i));
    const inboxId = store.appendInbox({ receivedAt: i, topic: 'plant/p1/bearing', qos: 1, dedupKey: `k${i}`, payload });
    return { inboxId, dedupKey: `k${i}`, topic: 'plant/p1/bearing', payload, bytes: payload.length, receivedAt: i, t0: 0 };
  });
  predictor.commit(batch, await predictor.run(batch));
  return { store, published, fatal };
}

test('a worker gone while stopping: the readings it did not run keep their inbox rows, nothing of them stored for any model', { timeout: 60000 }, async (t) => {
  const { store, published, fatal } = await setup(t, { alive: false });
  assert.deepEqual(store.counts(), { predictions: 0, deadLetters: 0, inbox: 3 });
  assert.equal(published.length, 0);
  assert.equal(fatal.length, 1, 'the dead worker is fatal');
});

test('a worker alive that fails: dead letters of that model, predictions of the other, the inbox rows go', { timeout: 60000 }, async (t) => {
  const { store, published } = await setup(t, { alive: true });
  assert.deepEqual(store.counts(), { predictions: 3, deadLetters: 3, inbox: 0 });
  assert.deepEqual([...new Set(published.map((r) => r.model))], ['bearing-health']);
});
