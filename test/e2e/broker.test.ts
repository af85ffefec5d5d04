// The broker connection against a real mosquitto: mqtts with a CA, a client certificate and a
// password read from a file; bad credentials are logged and retried, not fatal; and when the broker
// restarts without the session the agent reconnects and subscribes again.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, freePort, mqttClient, readingPayload, spawnAgent, spawnChild, startMosquitto, stopChild, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';
import { makePki } from '../helpers/pki.js';

test('mqtts with CA, client certificate and a password from a file; wrong password is retried, not fatal', { timeout: 90000 }, async (t) => {
  const dir = tempDir(t);
  const pki = makePki(dir);
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  execFileSync('mosquitto_passwd', ['-b', passwd, 'line3', 'right-password'], { timeout: 30000 });
  const broker = await startMosquitto(t, [
    `cafile ${pki.ca}`, `certfile ${pki.serverCert}`, `keyfile ${pki.serverKey}`, 'require_certificate true',
    'allow_anonymous false', `password_file ${passwd}`,
  ]);
  const url = `mqtts://127.0.0.1:${broker.port}`;
  writeFileSync(join(dir, 'mqtt-password'), 'right-password\n');
  const tls = { caFile: pki.ca, certFile: pki.cert, keyFile: pki.key };

  const dbPath = join(dir, 'agent.db');
  const good = spawnAgent(t, writeConfig(dir, agentConfig({ url, dbPath, mqtt: { url, username: 'line3', password: { file: join(dir, 'mqtt-password') }, tls } }), 'good.yaml'));
  await good.waitForLog('subscribed');
  const pub = spawnChild(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '--cafile', pki.ca, '--cert', pki.cert, '--key', pki.key,
    '-u', 'line3', '-P', 'right-password', '-t', 'plant/tls-1/bearing', '-q', '1', '-m', readingPayload(1)]);
  assert.equal((await pub.exited).code, 0, pub.stderr());
  await waitFor('a prediction over TLS', () => countRows(dbPath).predictions === 1);
  good.proc.kill('SIGTERM');
  assert.equal((await good.exited).code, 0);

  const bad = spawnAgent(t, writeConfig(dir, agentConfig({ url, dbPath: join(dir, 'bad.db'), mqtt: { url, username: 'line3', password: 'wrong', tls, reconnectMinMs: 100 } }), 'bad.yaml'));
  await waitFor('two refused connects', () => bad.logs.filter((l) => l.msg === 'mqtt error').length >= 2);
  const err = bad.logs.find((l) => l.msg === 'mqtt error');
  assert.match(String(err?.err), /Not authorized|Bad username or password/);
  assert.equal(bad.proc.exitCode, null, 'still running and retrying');
  bad.proc.kill('SIGTERM');
  assert.equal((await bad.exited).code, 0);
});

test('broker restarts and loses the session: the agent reconnects and subscribes again', { timeout: 90000 }, async (t) => {
  const port = await freePort();
  const first = await startMosquitto(t, [], port);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: first.url, dbPath, mqtt: { url: first.url, reconnectMinMs: 100, reconnectMaxMs: 400 } })));
  await agent.waitForLog('subscribed');
  await stopChild(first, 'SIGKILL');
  await waitFor('the agent to notice', () => agent.logs.some((l) => l.msg === 'broker connection lost; reconnecting'));

  const second = await startMosquitto(t, [], port); // persistence false: the session is gone
  await waitFor('a second subscribe', () => agent.logs.filter((l) => l.msg === 'subscribed').length >= 2, 20000);
  const reconnect = agent.logs.filter((l) => l.msg === 'connected to broker').pop();
  assert.equal(reconnect?.sessionPresent, false);
  const gateway = await mqttClient(t, second.url);
  await gateway.publishAsync('plant/after-restart/bearing', readingPayload(1), { qos: 1 });
  await waitFor('a prediction after the restart', () => countRows(dbPath).predictions === 1);
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});
