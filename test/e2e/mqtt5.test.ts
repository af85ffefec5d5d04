// MQTT 5 end to end on mosquitto (mqtt.protocolVersion 5): readings in, rows and results out, and the
// session kept across a restart (mqtt.sessionExpirySec): QoS 1 readings published while the agent is
// stopped are stored after it comes back.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

test('MQTT 5: readings in, results out, and the session survives a restart of the agent', { timeout: 90000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-mqtt5-test', protocolVersion: 5, sessionExpirySec: 300 },
  }));
  const results: number[] = [];
  let marker = false;
  const watcher = await mqttClient(t, broker.url, { protocolVersion: 5 });
  watcher.on('message', (topic, payload) => {
    if (topic === 'test/marker') marker = true;
    else results.push((JSON.parse(payload.toString()) as { id: number }).id);
  });
  await watcher.subscribeAsync(['plant/+/predictions/#', 'test/marker'], { qos: 1 });
  const gateway = await mqttClient(t, broker.url, { protocolVersion: 5, clientId: 'gateway-mqtt5-test' });

  const first = spawnAgent(t, config);
  await first.waitForLog('subscribed');
  const A = 200;
  await publishSequence(gateway, 'plant/press-6/bearing', A).done;
  await waitFor(`${A} rows`, () => countRows(dbPath).predictions === A);
  first.proc.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  // The broker delivers the watcher's queue in order: its own marker arrives after every result.
  await watcher.publishAsync('test/marker', 'end', { qos: 1 });
  await waitFor('the marker', () => marker);
  assert.equal(results.length, A, 'one result per reading');
  assert.equal(new Set(results).size, A);

  // While the agent is away the broker keeps its session and queues these for it.
  const B = 300;
  await publishSequence(gateway, 'plant/press-6/bearing', A + B, 50, 0, A).done;
  const second = await runUntilStored(t, config, dbPath, A + B);
  assert.deepEqual(second.exit, { code: 0, signal: null });
  assert.equal(second.logs.find((l) => l.msg === 'connected to broker')?.sessionPresent, true, 'the broker kept the session');
  assert.deepEqual([...second.seqs].sort((a, b) => a - b), Array.from({ length: A + B }, (_, i) => i), 'every reading stored once');
});
