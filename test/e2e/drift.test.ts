// Drift end to end: the agent as a child process on a real mosquitto with the demo model (whose manifest has
// a training baseline). Readings drawn from the demo's own generator raise no drift line; the same readings
// with the housing temperature 40 °C higher make the agent log 'input drift over threshold' for
// temperature_c and for no other feature; readings like the training data again make it log
// 'input drift back under threshold'. The agent's JSON log lines on stdout are what is read.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FEATURES, mulberry32, sampleReading } from '../../models/demo/bearing.js';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

test('a shifted feature warns by name, the others stay quiet, and the warning clears when the readings come back', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  // A window of 400 predictions: PSI's noise on 10 bins is then ~0.02, far under the 0.1 at which a warning clears.
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath, drift: { windowRows: 400, minRows: 200 } })));
  await agent.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url);
  const rand = mulberry32(99); // the demo model was trained on other draws of the same generator
  let sent = 0;
  const publish = async (n: number, shiftC: number) => {
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => {
        const r = sampleReading(rand(), rand);
        const v = FEATURES.map((f) => r[f.name] + (f.name === 'temperature_c' ? shiftC : 0));
        return gateway.publishAsync('plant/press-1/bearing', readingPayload(sent++, v), { qos: 1 });
      }));
    }
  };
  const drifted = () => agent.logs.filter((l) => l.msg === 'input drift over threshold');

  await publish(400, 0);
  // A malformed reading after them: its 'message rejected' line is logged after every line of the batches before it.
  await gateway.publishAsync('plant/press-1/bearing', 'not json', { qos: 1 });
  await agent.waitForLog('message rejected');
  assert.equal(countRows(dbPath).predictions, 400);
  assert.deepEqual(drifted(), [], 'no drift on readings like the training data');

  await publish(400, 40);
  const warned = await agent.waitForLog('input drift over threshold');
  assert.equal(warned.level, 40);
  assert.equal(warned.feature, 'temperature_c');
  assert.equal(warned.model, 'bearing-health');
  assert.equal(warned.version, '1.0.0');
  assert.equal(warned.threshold, 0.2);
  assert.ok((warned.psi as number) > 0.2, JSON.stringify(warned));

  await publish(400, 0);
  const cleared = await agent.waitForLog('input drift back under threshold');
  assert.equal(cleared.feature, 'temperature_c');
  assert.ok((cleared.psi as number) < 0.1, JSON.stringify(cleared));
  await waitFor('every reading stored', () => countRows(dbPath).predictions >= 1200);
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  assert.deepEqual(drifted().map((l) => l.feature), ['temperature_c'], 'one warning, for the shifted feature alone');
});
