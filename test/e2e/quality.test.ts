// The data-quality gate end to end: the agent as a child process on a real mosquitto, readings published by
// mqtt.js, a real HTTP receiver as the sync target, /metrics scraped. Under `flag`, a temperature outside the
// training range reaches the model and its prediction row (and the synced line) carries the flag; a missing
// speed is imputed with the asset's last good value; a temperature outside the contract is still rejected; a
// feature stuck for stuckSamples rows is rejected by its own policy. /metrics counts each value by feature,
// reason and action, compared with what was sent.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startReceiver } from '../helpers/receiver.js';
import { agentConfig, mqttClient, query, readingPayload, runCli, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

/** A reading as the demo gateway sends it, with some fields changed or left out. */
function reading(changes: Record<string, unknown>, drop: string[] = []): string {
  const r = JSON.parse(readingPayload(1)) as Record<string, unknown>;
  for (const [k, v] of Object.entries(changes)) r[k] = v;
  for (const k of drop) delete r[k];
  return JSON.stringify(r);
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('flag, impute last, contract kept, stuck rejected: rows, synced lines and /metrics say what the gate did', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const receiver = await startReceiver(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const path = writeConfig(dir, agentConfig({
    url: broker.url, dbPath,
    quality: {
      policy: 'flag',
      trainingRange: true,
      features: { speed_rpm: { impute: 'last' }, kurtosis: { policy: 'reject', stuckSamples: 3 } },
    },
    sync: { schedule: '0 0 1 1 *', runDeadlineMs: 10_000, targets: [{ type: 'http', name: 'ingest', url: receiver.url }] },
  }));
  const agent = spawnAgent(t, path);
  const http = String((await agent.waitForLog('http listening')).url);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  const send = async (p: string) => gateway.publishAsync('plant/press-1/bearing', p, { qos: 1 });
  const vib = (kurtosis: number) => ({ vibration: { rms_g: 0.4, peak_g: 1.4, kurtosis, crest_factor: 3.5 } });
  // 1. clean (speed 1500: the last good speed); 2. temperature 150: outside training [26.2, 113.6], inside the
  // contract [-40, 200]: flagged; 3. no speed: imputed 1500; 4. temperature 250: outside the contract, no
  // impute value: rejected; 5–6. kurtosis 3.0 again (with 1: three rows in a row): stuck, rejected.
  await send(reading({ ...vib(3.1), speed_rpm: 1500 }));
  await send(reading({ ...vib(3.2), temperature_c: 150 }));
  await send(reading(vib(3.3), ['speed_rpm']));
  await send(reading({ ...vib(3.4), temperature_c: 250 }));
  for (let i = 0; i < 3; i++) await send(reading(vib(3.0)));
  await waitFor('seven rows judged', () => query<{ n: number }>(dbPath, 'SELECT (SELECT count(*) FROM predictions) + (SELECT count(*) FROM dead_letters) AS n')[0]?.n === 7, 30_000);

  const rows = query<{ features: string; quality: string | null }>(dbPath, 'SELECT features, quality FROM predictions ORDER BY id');
  assert.equal(rows.length, 5);
  assert.equal(rows[0]?.quality, null);
  assert.deepEqual(JSON.parse(rows[1]?.quality ?? 'null'), [{ feature: 'temperature_c', reason: 'out_of_training_range', action: 'flagged', value: 150 }]);
  assert.equal((JSON.parse(rows[1]?.features ?? '[]') as number[])[4], 150);
  const imputed = JSON.parse(rows[2]?.quality ?? 'null') as { feature: string; reason: string; action: string }[];
  assert.deepEqual(imputed.map((f) => [f.feature, f.reason, f.action]), [['speed_rpm', 'missing', 'imputed']]);
  assert.equal((JSON.parse(rows[2]?.features ?? '[]') as number[])[5], 1500);
  const dead = query<{ reason_code: string; reason: string }>(dbPath, 'SELECT reason_code, reason FROM dead_letters ORDER BY id');
  assert.deepEqual(dead.map((d) => d.reason_code), ['REJECT_OUT_OF_RANGE', 'REJECT_STUCK']);
  assert.match(dead[0]?.reason ?? '', /temperature_c/);
  assert.match(dead[1]?.reason ?? '', /kurtosis/);

  // The flags travel with the prediction upstream.
  const synced = await runCli(['sync', 'now', '--config', path]);
  assert.equal(synced.code, 0, synced.stderr);
  const lines = receiver.rows('prediction');
  assert.equal(lines.length, 5);
  assert.deepEqual(lines.map((l) => (l.quality as { reason: string }[] | null)?.map((f) => f.reason) ?? null), [null, ['out_of_training_range'], ['missing'], null, null]);

  const text = await (await fetch(`${http}/metrics`, { signal: AbortSignal.timeout(15_000) })).text();
  const values = (feature: string, reason: string, action: string) => metricValue(text, 'edge_agent_quality_values_total', { feature, reason, action });
  assert.equal(values('temperature_c', 'out_of_training_range', 'flagged'), 1);
  assert.equal(values('speed_rpm', 'missing', 'imputed'), 1);
  assert.equal(values('temperature_c', 'out_of_range', 'rejected'), 1);
  assert.equal(values('kurtosis', 'stuck', 'rejected'), 1);
  assert.equal(metricValue(text, 'edge_agent_quality_rows_total', { outcome: 'REJECT_STUCK' }), 1);
  assert.equal(await stopChild(agent), 0);
});
