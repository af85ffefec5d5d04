// The embedded broker against real clients (mqtt.js, mosquitto_pub, mosquitto_sub): with users
// configured, anonymous and wrong passwords are refused and a good user gets predictions; only the
// agent publishes results; an oversize packet closes its connection before it is buffered; and it
// does not listen beyond loopback without users unless the opt-out says so, loudly.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { agentConfig, countRows, freePort, mqttClient, readingPayload, runCli, spawnAgent, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const GATEWAY = { username: 'gateway-3', password: 'gw-Pw-4e1d0c9a' };

async function agentWithUsers(t: Parameters<typeof tempDir>[0], embedded: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const port = await freePort();
  writeFileSync(join(dir, 'gw-password'), `${GATEWAY.password}\n`);
  const config = agentConfig({ dbPath });
  (config.mqtt as Record<string, unknown>).embedded = {
    host: '127.0.0.1', port, users: [{ username: GATEWAY.username, password: { file: 'gw-password' } }], ...embedded,
  };
  const agent = spawnAgent(t, writeConfig(dir, config));
  await agent.waitForLog('subscribed');
  return { dir, dbPath, port, url: `mqtt://127.0.0.1:${port}`, agent };
}

/** mqtt.js connect without retries: gives the CONNACK return code of a refusal, or 0. */
async function connackCode(url: string, opts: mqtt.IClientOptions): Promise<number> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const code = await new Promise<number>((resolve) => {
    c.once('connect', () => resolve(0));
    c.once('error', (err) => resolve(Number((err as { code?: number }).code ?? -1)));
    c.once('close', () => resolve(-1));
  });
  await c.endAsync(true);
  return code;
}

function exitOf(proc: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

test('users configured: anonymous and wrong passwords are refused; a good user publishes and gets predictions', { timeout: 90000 }, async (t) => {
  const { url, port, dbPath, agent } = await agentWithUsers(t);
  const listening = agent.logs.find((l) => l.msg === 'embedded broker listening');
  assert.equal(listening?.authentication, 'users');

  // Anonymous: mosquitto_sub (which would otherwise read every topic) and mqtt.js.
  const anon = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', '#', '-C', '1', '-W', '10']);
  const anonExit = exitOf(anon);
  let anonErr = '';
  anon.stderr.on('data', (d: Buffer) => (anonErr += d.toString()));
  teardown(t, () => void anon.kill());
  assert.notEqual(await anonExit, 0);
  assert.match(anonErr, /not authori[sz]ed|bad user ?name or password/i);
  assert.equal(await connackCode(url, {}), 4);
  assert.equal(await connackCode(url, { username: GATEWAY.username, password: 'wrong' }), 4);
  assert.equal(await connackCode(url, { username: 'nobody', password: GATEWAY.password }), 4);
  assert.ok(agent.logs.some((l) => l.msg === 'embedded broker refused a client' && l.reason === 'bad username or password'));

  // A good user: mosquitto_sub for the results, mosquitto_pub for three readings.
  const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-u', GATEWAY.username, '-P', GATEWAY.password,
    '-t', 'plant/+/predictions/#', '-C', '3', '-q', '1', '-d', '-W', '60']);
  const subExit = exitOf(sub);
  let out = '';
  sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
  teardown(t, () => void sub.kill());
  await waitFor('mosquitto_sub subscribed', () => out.includes('SUBACK'));
  for (let i = 0; i < 3; i++) {
    const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', GATEWAY.username, '-P', GATEWAY.password,
      '-t', `plant/m${i}/bearing`, '-q', '1', '-m', readingPayload(i)]);
    assert.equal(await exitOf(pub), 0);
  }
  assert.equal(await subExit, 0);
  const results = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { asset: string });
  assert.deepEqual(results.map((r) => r.asset).sort(), ['m0', 'm1', 'm2']);
  assert.equal(countRows(dbPath).predictions, 3);

  // Taking over the agent's client id would disconnect the agent: refused even for a good user.
  const agentClientId = (agent.logs.find((l) => l.msg === 'connected to broker')?.clientId as string) ?? '';
  assert.ok(agentClientId);
  assert.equal(await connackCode(url, { ...GATEWAY, clientId: agentClientId }), 4);
  assert.equal(agent.logs.filter((l) => l.msg === 'connected to broker').length, 1, 'the agent was never disconnected');
  // Nor its results connection's.
  const resultsClientId = (agent.logs.find((l) => l.msg === 'results connection: connected to broker')?.clientId as string) ?? '';
  assert.equal(resultsClientId, `${agentClientId}-results`);
  assert.equal(await connackCode(url, { ...GATEWAY, clientId: resultsClientId }), 4);
  assert.equal(agent.logs.filter((l) => l.msg === 'results connection: connected to broker').length, 1, 'the results connection was never dropped');

  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  const text = agent.logs.map((l) => JSON.stringify(l)).join('\n') + agent.stderr();
  assert.ok(!text.includes(GATEWAY.password), 'no log line holds a user password');
});

test('only the agent publishes on result topics: a fake result from a user never reaches a subscriber', { timeout: 90000 }, async (t) => {
  const { url, dbPath, agent } = await agentWithUsers(t);
  const watcher = await mqttClient(t, url, GATEWAY);
  const seen: { topic: string; payload: string }[] = [];
  watcher.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });

  const rogue = mqtt.connect(url, { ...GATEWAY, reconnectPeriod: 0 });
  teardown(t, () => rogue.endAsync(true));
  await new Promise((resolve) => rogue.once('connect', resolve));
  // The broker drops a client whose publish it refuses (MQTT 3.1.1 has no negative PUBACK).
  const closed = new Promise<string>((resolve) => rogue.once('close', () => resolve('closed')));
  const fake = rogue.publishAsync('plant/m1/predictions/bearing-health', '{"asset":"m1","label":"healthy","fake":true}', { qos: 1 }).then(() => 'acked', () => 'failed');
  t.diagnostic(`the fake result's publish: ${await Promise.race([closed, fake])}`);

  const gateway = await mqttClient(t, url, GATEWAY);
  await gateway.publishAsync('plant/m1/bearing', readingPayload(1), { qos: 1 });
  await waitFor('the prediction row', () => countRows(dbPath).predictions === 1);
  await waitFor('the real result', () => seen.some((m) => !m.payload.includes('fake')));
  // The fake went to the broker first: had it been accepted, the watcher would have it by now.
  assert.deepEqual(seen.map((m) => m.topic), ['plant/m1/predictions/bearing-health'], JSON.stringify(seen));
  assert.ok(!seen.some((m) => m.payload.includes('fake')), JSON.stringify(seen));
  await agent.waitForLog('embedded broker refused a publish on a result topic');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

test('an oversize packet closes its connection before it is buffered; the agent keeps serving', { timeout: 120000 }, async (t) => {
  const { dir, port, url, dbPath, agent } = await agentWithUsers(t, { maxPacketBytes: 1024 * 1024 });
  const pid = agent.proc.pid as number;
  const before = peakRssMb(pid);
  const big = join(dir, 'big.bin');
  writeFileSync(big, '');
  truncateSync(big, 200 * 1024 * 1024); // sparse: 200 MB of zeros without using the disk
  const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', GATEWAY.username, '-P', GATEWAY.password,
    '-t', 'plant/big/bearing', '-q', '0', '-f', big]);
  const pubExit = exitOf(pub);
  teardown(t, () => void pub.kill('SIGKILL'));
  const closed = await agent.waitForLog('embedded broker closed a connection: packet over mqtt.embedded.maxPacketBytes', 60000);
  assert.equal(closed.reason, 'packet too large');
  await pubExit;
  const after = peakRssMb(pid);
  t.diagnostic(`agent peak RSS ${before.toFixed(0)} MB before, ${after.toFixed(0)} MB after a 200 MB publish (limit 1 MiB)`);
  assert.ok(after - before < 100, `peak RSS grew by ${(after - before).toFixed(0)} MB`);

  const gateway = await mqttClient(t, url, GATEWAY);
  await gateway.publishAsync('plant/small/bearing', readingPayload(1), { qos: 1 });
  await waitFor('a prediction after the oversize packet', () => countRows(dbPath).predictions === 1);
  assert.equal(countRows(dbPath).deadLetters, 0, 'the oversize packet never reached the agent');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

test('beyond loopback without users: config error (78); with the opt-out it starts and warns', { timeout: 90000 }, async (t) => {
  const dir = tempDir(t);
  const config = agentConfig({ dbPath: join(dir, 'a.db') });
  (config.mqtt as Record<string, unknown>).embedded = { host: '0.0.0.0', port: 1883 };
  const refused = await runCli(['config', 'check', writeConfig(dir, config, 'open.yaml')]);
  assert.equal(refused.code, 78, refused.stderr);
  assert.match(refused.stderr, /mqtt\.embedded\.host: got "0\.0\.0\.0" — a loopback address .*mqtt\.embedded\.users.*mqtt\.embedded\.allowAnonymousOnNetwork/);
  const run = spawnAgent(t, join(dir, 'open.yaml'));
  assert.equal((await run.exited).code, 78);

  // The opt-out is started on a name that resolves to loopback (the rule judges the configured
  // host, not its address), so this test opens nothing to the network.
  const host = hostname();
  const address = await lookup(host, { family: 4 }).catch(() => null);
  if (!address || !address.address.startsWith('127.')) return t.skip(`${host} does not resolve to loopback here`);
  const port = await freePort();
  (config.mqtt as Record<string, unknown>).embedded = { host, port, allowAnonymousOnNetwork: true };
  const agent = spawnAgent(t, writeConfig(dir, config, 'optout.yaml'));
  const warn = await agent.waitForLog('embedded broker accepts anonymous clients from the network');
  assert.equal(warn.level, 40);
  assert.equal(warn.key, 'mqtt.embedded.allowAnonymousOnNetwork');
  await agent.waitForLog('subscribed');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});
