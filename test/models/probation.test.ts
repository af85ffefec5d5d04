// Probation verdicts from committed batches: bad readings (failed batches, NaN outputs) fail it early,
// a batch time over the budget fails it, the label check only when configured, and enough good readings
// commit it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CommittedBatch } from '../../agent/infer/predict.js';
import { createProbation, labelPsi, probationOptionsSchema } from '../../models/probation.js';

const batch = (labels: string[], bad: string[] = [], modelMs = 1): CommittedBatch =>
  ({ model: {} as CommittedBatch['model'], modelMs, ids: labels.map((_, i) => i + 1), predictions: labels.map((label) => ({ label })) as unknown as CommittedBatch['predictions'], deadLetters: bad.map((reasonCode) => ({ reasonCode })) as unknown as CommittedBatch['deadLetters'] });

test('good readings commit; NaN outputs fail early; the batch budget and (when set) the label shares are checked', { timeout: 5_000 }, () => {
  const opts = probationOptionsSchema.parse({ predictions: 100 });
  assert.equal(opts.maxLabelPsi, null, 'the label check is off by default');
  const good = createProbation(opts, 20, { healthy: 0.3, wear: 0.4, fault: 0.3 });
  assert.equal(good.observe(batch(Array(60).fill('healthy'))), null);
  const v = good.observe(batch(Array(40).fill('healthy')));
  assert.deepEqual(v && v.ok, true, 'all "healthy" on a healthy line is no reason to roll back');

  const nan = createProbation(opts, 20, undefined);
  const failed = nan.observe(batch(Array(10).fill('healthy'), Array(5).fill('REJECT_NONFINITE_OUTPUT')));
  assert.ok(failed && !failed.ok && /5 of 15 readings failed or gave NaN\/infinite outputs \(REJECT_NONFINITE_OUTPUT 5\)/.test(failed.reason), JSON.stringify(failed));
  const ignored = createProbation(opts, 20, undefined);
  assert.equal(ignored.observe(batch(['a'], Array(3).fill('REJECT_OUT_OF_RANGE'))), null, "bad input is not the model's fault");

  const slow = createProbation(opts, 20, undefined);
  const sv = slow.observe(batch(Array(100).fill('healthy'), [], 35));
  assert.ok(sv && !sv.ok && /batch time p99 35\.00 ms over the manifest's budget of 20 ms/.test(sv.reason));

  const labelled = createProbation(probationOptionsSchema.parse({ predictions: 100, maxLabelPsi: 1 }), 20, { healthy: 0.3, wear: 0.4, fault: 0.3 });
  const lv = labelled.observe(batch(Array(100).fill('fault')));
  assert.ok(lv && !lv.ok && /predicted labels .* are far from the training baseline/.test(lv.reason));
  assert.ok(labelPsi({ a: 50, b: 50 }, { a: 0.5, b: 0.5 }) < 1e-9);
});
