// A password never reaches the logs: the agent with credentials on a mosquitto that requires them,
// through a good start, a reading, a refused login and retries, at log level debug.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, countRows, mqttClient, readingPayload, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const GOOD = 'Good-Pw-7f3a9c21';
const WRONG = 'Wrong-Pw-5b1e2d84';

test('the agent logs no password, connected or refused', { timeout: 90000 }, async (t) => {
  const dir = tempDir(t);
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  execFileSync('mosquitto_passwd', ['-b', passwd, 'line3', GOOD]);
  execFileSync('mosquitto_passwd', ['-b', passwd, 'gateway', GOOD]);
  const broker = await startMosquitto(t, ['allow_anonymous false', `password_file ${passwd}`]);
  const dbPath = join(dir, 'agent.db');
  const mqtt = { url: broker.url, username: 'line3', password: { env: 'EDGE_TEST_MQTT_PASSWORD' }, reconnectMinMs: 100 };

  const good = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt, log: { level: 'debug' } }), 'good.yaml'), { EDGE_TEST_MQTT_PASSWORD: GOOD });
  await good.waitForLog('subscribed');
  const gateway = await mqttClient(t, broker.url, { username: 'gateway', password: GOOD });
  await gateway.publishAsync('plant/m1/bearing', readingPayload(1), { qos: 1 });
  await waitFor('a prediction', () => countRows(dbPath).predictions === 1);
  good.proc.kill('SIGTERM');
  assert.equal((await good.exited).code, 0);

  const bad = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'bad.db'), mqtt, log: { level: 'debug' } }), 'bad.yaml'), { EDGE_TEST_MQTT_PASSWORD: WRONG });
  await waitFor('two refused logins', () => bad.logs.filter((l) => l.msg === 'mqtt error').length >= 2);
  bad.proc.kill('SIGTERM');
  assert.equal((await bad.exited).code, 0);

  for (const [name, agent] of [['good', good], ['bad', bad]] as const) {
    const text = `${agent.logs.map((l) => JSON.stringify(l)).join('\n')}\n${agent.stderr()}`;
    assert.ok(agent.logs.length > 5, `${name}: the agent logged`);
    assert.ok(!text.includes(GOOD) && !text.includes(WRONG), `${name}: a log line holds the password:\n${text}`);
  }
});
