// `edge-agent status`'s table from a given snapshot: the failing check, the model at its version with the
// previous one, the shadow and the last event, sync per target with its last error, and drift over its
// threshold named by model and feature (the drift observer is built elsewhere: its shape is given here).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus } from '../../agent/observe/status-command.js';
import { statusFixture } from '../helpers/status-fixture.js';

test('the terminal table names what an engineer acts on', { timeout: 10_000 }, () => {
  const out = formatStatus(statusFixture());
  assert.match(out, /^agent line3-pc 0\.1\.0, up 2 h 5 min: NOT READY$/m);
  assert.match(out, /^ {2}failing: broker: not connected to mqtt:\/\/10\.0\.3\.5:1883$/m);
  assert.match(out, /^messages 20\/s received, 20\/s predicted; latency p50 4\.2 ms, p99 12\.5 ms$/m);
  assert.match(out, /^predictions 1200: bearing-health healthy 1190, wear 10$/m);
  assert.match(out, /^dead letters 2: REJECT_OUT_OF_RANGE 2$/m);
  assert.match(out, /^bearing-health@1\.1\.0\s+1\.0\.0\s+1\.2\.0 \(agrees 99 %\)\s+committed 1\.1\.0 \d{4}-/m);
  assert.match(out, /^plant-server\s+152\s+1 min\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d predictions: connect ECONNREFUSED 10\.0\.9\.9:443$/m);
  assert.match(out, /^store 100\.0 MiB of 2\.0 GiB \(4\.9 %\), 40\.0 GiB free on disk$/m);
  assert.match(out, /^drift over threshold: bearing-health@1\.1\.0 rms_g \(PSI 0\.31\)$/m);
});

test('drift: off when the agent has none, nothing over threshold when nothing is flagged', { timeout: 10_000 }, () => {
  assert.match(formatStatus({ ...statusFixture(), drift: null }), /^drift: off$/m);
  const calm = statusFixture();
  const m = calm.drift?.models[0];
  if (m) m.features = m.features.map((f) => ({ ...f, over: false }));
  assert.match(formatStatus(calm), /^drift: nothing over its threshold$/m);
  assert.match(formatStatus({ ...statusFixture(), sync: null }), /^sync: not running yet/m);
});
