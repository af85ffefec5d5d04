// Ground truth end to end: the agent as a child process on a real mosquitto, readings for six assets, then
// labels from a "quality station" (mqtt.js, QoS 1): four right, two wrong, one for an asset with no
// prediction, one malformed. The labels table holds exactly the six joined to each asset's newest
// prediction, the dead letters the other two with their codes, the accuracy the agent reports (control
// command truth.status) is 4/6, and the label rows reach a real HTTP receiver after their predictions
// were synced. Then a SIGKILL right after a label was stored and acknowledged: joined once after restart.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { callControl, controlSocketPath } from '../../agent/control.js';
import type { TruthStatus } from '../../agent/observe/truth.js';
import { startReceiver } from '../helpers/receiver.js';
import { agentConfig, mqttClient, query, readingPayload, runCli, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const ASSETS = ['press-1', 'press-2', 'press-3', 'press-4', 'press-5', 'press-6'];
const PER_ASSET = 3;
const LABELS = ['healthy', 'wear', 'fault'];

function setup(dir: string, brokerUrl: string, receiverUrl: string) {
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url: brokerUrl, dbPath, mqtt: { url: brokerUrl, clientId: `edge-agent-truth-${process.pid}`, reconnectMinMs: 100 },
    truth: { enabled: true, topic: 'quality/+/label', key: { field: 'asset' }, outcomeField: 'result', windowMs: 600_000, rollingWindow: 50 },
    // Yearly: only the start run and `sync now` run here.
    sync: { schedule: '0 0 1 1 *', runDeadlineMs: 10_000, targets: [{ type: 'http', name: 'ingest', url: receiverUrl }] },
  }));
  return { dbPath, path };
}

test('labels join the newest prediction of their asset; unmatched and malformed are dead letters; accuracy as sent; label rows synced after their predictions', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const receiver = await startReceiver(t);
  const dir = tempDir(t);
  const { dbPath, path } = setup(dir, broker.url, receiver.url);
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  // Three readings per asset, one after another, so that each asset's newest prediction is its last reading.
  for (let k = 0; k < PER_ASSET; k++) {
    await Promise.all(ASSETS.map((a, i) => gateway.publishAsync(`plant/${a}/bearing`, readingPayload(k * 10 + i), { qos: 1 })));
    await waitFor(`round ${k} stored`, () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n === (k + 1) * ASSETS.length);
  }
  // The predictions go upstream before any label exists.
  const first = await runCli(['sync', 'now', '--config', path]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(receiver.rows('prediction').length, ASSETS.length * PER_ASSET);
  const beforeLabels = receiver.requests.length;

  const newest = new Map(query<{ asset: string; id: number; label: string }>(dbPath, 'SELECT asset, id, label FROM predictions WHERE id IN (SELECT max(id) FROM predictions GROUP BY asset)').map((r) => [r.asset, r]));
  assert.equal(newest.size, ASSETS.length);
  // Four right, two wrong (another label than the one predicted), counted here from what is sent.
  const sent = ASSETS.map((asset, i) => {
    const predicted = (newest.get(asset) as { label: string }).label;
    const result = i < 4 ? predicted : (LABELS.find((l) => l !== predicted) as string);
    return { asset, result, right: result === predicted };
  });
  const station = await mqttClient(t, broker.url);
  for (const l of sent) await station.publishAsync(`quality/${l.asset}/label`, JSON.stringify({ asset: l.asset, result: l.result }), { qos: 1 });
  await station.publishAsync('quality/press-99/label', JSON.stringify({ asset: 'press-99', result: 'healthy' }), { qos: 1 });
  await station.publishAsync('quality/press-1/label', '{"asset": "press-1", "result": ', { qos: 1 });

  await waitFor('six labels joined and two dead letters', () =>
    query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM labels')[0]?.n === 6 && query<{ n: number }>(dbPath, "SELECT count(*) AS n FROM dead_letters WHERE reason_code LIKE '%LABEL'")[0]?.n === 2, 30_000);
  const rows = query<{ prediction_id: number; join_key: string; outcome: string; correct: number }>(dbPath, 'SELECT prediction_id, join_key, outcome, correct FROM labels ORDER BY join_key');
  assert.deepEqual(rows, sent.map((l) => ({ prediction_id: (newest.get(l.asset) as { id: number }).id, join_key: l.asset, outcome: l.result, correct: l.right ? 1 : 0 })));
  assert.deepEqual(query(dbPath, 'SELECT reason_code, topic FROM dead_letters ORDER BY id'), [
    { reason_code: 'REJECT_UNMATCHED_LABEL', topic: 'quality/press-99/label' },
    { reason_code: 'REJECT_BAD_LABEL', topic: 'quality/press-1/label' },
  ]);
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM label_inbox')[0]?.n, 0);

  const answer = await callControl(controlSocketPath(dbPath), 'truth.status', {}, 10_000);
  const status = answer?.result as TruthStatus;
  const right = sent.filter((l) => l.right).length;
  assert.deepEqual(status.counters, { received: 8, joined: 6, unmatched: 1, bad: 1, duplicates: 0, pending: 0 });
  assert.equal(status.models.length, 1);
  assert.deepEqual(status.models[0], { model: 'bearing-health', version: '1.0.0', kind: 'classification', joined: 6, window: 6, accuracy: right / sent.length });

  // The labels go upstream on their own cursor although their predictions went before.
  const second = await runCli(['sync', 'now', '--config', path]);
  assert.equal(second.code, 0, second.stderr);
  const labelRequests = receiver.requests.slice(beforeLabels).filter((r) => r.kind === 'labels');
  assert.equal(labelRequests.length, 1);
  const lines = receiver.rows('label');
  assert.deepEqual(lines.map((l) => [l.key, l.predictionId, l.outcome, l.correct]).sort(), sent.map((l) => [l.asset, (newest.get(l.asset) as { id: number }).id, l.result, l.right]).sort());
  assert.deepEqual(Object.keys(lines[0] as object), ['kind', 'agent', 'store', 'id', 'predictionId', 'model', 'version', 'key', 'outcome', 'predicted', 'correct', 'labelAt', 'receivedAt', 'topic', 'storedAt']);
  const predictionLine = receiver.rows('prediction').find((p) => p.id === lines[0]?.predictionId);
  assert.ok(predictionLine, 'the prediction a label names went upstream (in the first run)');
  assert.equal(predictionLine.store, lines[0]?.store);
  assert.equal(receiver.rows('prediction').length, ASSETS.length * PER_ASSET, 'no prediction sent again');
  assert.equal(await stopChild(agent), 0);
});

test('SIGKILL right after a label was stored and acknowledged: after the restart it is joined once', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const receiver = await startReceiver(t);
  const dir = tempDir(t);
  const { dbPath, path } = setup(dir, broker.url, receiver.url);
  const first = spawnAgent(t, path, { EDGE_AGENT_TEST_KILL_AFTER_LABEL: '1' });
  await first.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  await gateway.publishAsync('plant/press-1/bearing', readingPayload(1), { qos: 1 });
  await waitFor('the prediction stored', () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n === 1);
  const [prediction] = query<{ id: number; label: string }>(dbPath, 'SELECT id, label FROM predictions');
  const station = await mqttClient(t, broker.url);
  await station.publishAsync('quality/press-1/label', JSON.stringify({ asset: 'press-1', result: prediction?.label }), { qos: 1 });
  const killed = await first.exited;
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM label_inbox')[0]?.n, 1, 'stored before the kill, not joined');
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM labels')[0]?.n, 0);

  const second = spawnAgent(t, path);
  await second.waitForLog('agent ready');
  await waitFor('the label joined after the restart', () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM labels')[0]?.n === 1, 30_000);
  assert.deepEqual(query(dbPath, 'SELECT prediction_id, correct FROM labels'), [{ prediction_id: prediction?.id, correct: 1 }]);
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM label_inbox')[0]?.n, 0);
  const status = (await callControl(controlSocketPath(dbPath), 'truth.status', {}, 10_000))?.result as TruthStatus;
  assert.equal(status.models[0]?.accuracy, 1);
  assert.equal(status.models[0]?.joined, 1);
  assert.equal(await stopChild(second), 0);
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM labels')[0]?.n, 1, 'a redelivery of the label was not stored twice');
  assert.equal(query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM dead_letters')[0]?.n, 0);
});
