// The results connection on a real mosquitto: results leave on a connection of their own (client id
// `<mqtt.clientId>-results`), so losing it leaves the readings connection alone, and it comes back with every result
// still delivered; publish.batch gives one message per topic and batch, a JSON array, read by mosquitto_sub (a
// third-party client), with every stored row's result in it once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { agentConfig, mqttClient, query, readingPayload, spawnAgent, spawnChild, startMosquitto, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

test('results leave on their own connection: taking it away leaves the readings connection alone, and every result still arrives', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const clientId = `edge-agent-results-${process.pid}`;
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId, reconnectMinMs: 200, reconnectMaxMs: 400 } })));
  await agent.waitForLog('subscribed');
  await agent.waitForLog('results connection: connected to broker');
  assert.equal(agent.logs.find((l) => l.msg === 'results connection: connected to broker')?.clientId, `${clientId}-results`);

  const ids = new Set<number>();
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', (_topic, payload) => void ids.add((JSON.parse(payload.toString()) as { id: number }).id));
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const gateway = await mqttClient(t, broker.url);
  for (let i = 0; i < 50; i++) await gateway.publishAsync(`plant/press-${i % 2}/bearing`, readingPayload(i), { qos: 1 });
  await waitFor('50 results', () => ids.size === 50);

  // Another client takes the results connection's client id: the broker drops the agent's results connection (only it).
  const usurper = await mqtt.connectAsync(broker.url, { clientId: `${clientId}-results`, reconnectPeriod: 0 });
  await waitFor('the agent noticed', () => agent.logs.some((l) => l.msg === 'results connection lost; reconnecting'), 30000).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${agent.logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`);
  });
  await usurper.endAsync(true);
  for (let i = 50; i < 100; i++) await gateway.publishAsync(`plant/press-${i % 2}/bearing`, readingPayload(i), { qos: 1 });
  await waitFor('100 results after the results connection came back', () => ids.size === 100, 60000);
  const tail = () => agent.logs.slice(-15).map((l) => JSON.stringify(l)).join('\n');
  assert.equal(agent.logs.filter((l) => l.msg === 'connected to broker').length, 1, `the readings connection was never dropped:\n${tail()}`);
  assert.ok(agent.logs.filter((l) => l.msg === 'results connection: connected to broker').length >= 2, `the results connection reconnected:\n${tail()}`);

  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null }, `${agent.stderr()}\n${tail()}`);
  const rowIds = query<{ id: number }>(dbPath, 'SELECT id FROM predictions ORDER BY id').map((r) => r.id);
  assert.deepEqual([...ids].sort((a, b) => a - b), rowIds, 'every stored row has its result');
});

test('publish.batch: one JSON array per topic and batch, every row in it once (read by mosquitto_sub)', { timeout: 120000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath, publish: { topic: 'plant/{asset}/predictions/{model}', qos: 1, batch: true } })));
  await agent.waitForLog('subscribed');
  const sub = spawnChild(t, 'stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(broker.port), '-t', 'plant/+/predictions/#', '-q', '1', '-v', '-W', '100']);
  let out = '';
  sub.proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  // mosquitto_sub prints nothing when subscribed: a marker it receives says it is.
  const probe = await mqttClient(t, broker.url);
  await waitFor('mosquitto_sub subscribed', async () => {
    await probe.publishAsync('plant/probe/predictions/x', '[]', { qos: 1 });
    return out.includes('plant/probe/predictions/x');
  }, 30000, 200);

  const N = 300;
  const pub = spawnChild(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 'plant/press-1/bearing', '-q', '1', '-l'], { stdio: ['pipe', 'pipe', 'pipe'] });
  pub.proc.stdin?.end(Array.from({ length: N }, (_, i) => readingPayload(i)).join('\n') + '\n');
  assert.equal((await pub.exited).code, 0, `mosquitto_pub exits 0 (${pub.stderr()})`);
  const lines = () => out.split('\n').filter((l) => l.startsWith('plant/press-1/predictions/bearing-health '));
  const results = () => lines().flatMap((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as { id: number; asset: string; label: string }[]);
  await waitFor(`${N} results in arrays`, () => results().length >= N, 60000, 100);
  agent.proc.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });

  const got = results();
  assert.ok(lines().length <= N, 'never more messages than results');
  for (const r of got) {
    assert.equal(r.asset, 'press-1');
    assert.equal(typeof r.label, 'string');
  }
  const rowIds = query<{ id: number }>(dbPath, 'SELECT id FROM predictions ORDER BY id').map((r) => r.id);
  assert.equal(rowIds.length, N);
  assert.deepEqual(got.map((r) => r.id).sort((a, b) => a - b), rowIds, 'every stored row once, in some array');
});

test('a results client id the broker refuses: /readyz names it, readings are still stored, nothing is published', { timeout: 120000 }, async (t) => {
  // mosquitto lets in only client ids with this prefix: the readings connection's has it, the results connection's not.
  const broker = await startMosquitto(t, ['clientid_prefixes line3-']);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: `line3-agent-${process.pid}`, reconnectMinMs: 200, reconnectMaxMs: 400 },
    publish: { topic: 'plant/{asset}/predictions/{model}', qos: 1, clientId: 'results-of-line3' },
  })));
  const listening = await agent.waitForLog('http listening');
  await agent.waitForLog('subscribed');
  const base = String(listening.url).replace(/\/$/, '');
  let seen = 0;
  const watcher = await mqttClient(t, broker.url, { clientId: `line3-watch-${process.pid}` });
  watcher.on('message', () => void seen++);
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });
  const gateway = await mqttClient(t, broker.url, { clientId: `line3-gw-${process.pid}` });
  for (let i = 0; i < 20; i++) await gateway.publishAsync('plant/press-1/bearing', readingPayload(i), { qos: 1 });
  await waitFor('20 rows', () => query<{ n: number }>(dbPath, 'SELECT count(*) AS n FROM predictions')[0]?.n === 20, 30000);

  const res = await fetch(`${base}/readyz`);
  const body = (await res.json()) as { ok: boolean; checks: { name: string; ok: boolean; problem?: string }[] };
  assert.equal(res.status, 503);
  const check = body.checks.find((c) => c.name === 'results connection');
  assert.equal(check?.ok, false);
  assert.match(check?.problem ?? '', /client id results-of-line3 not connected/);
  assert.ok(body.checks.find((c) => c.name === 'broker')?.ok, 'the readings connection is up');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^edge_agent_results_connected 0$/m);
  assert.ok(agent.logs.some((l) => l.connection === 'results' && /mqtt error/.test(String(l.msg))), 'the refusal is logged as the results connection\'s');
  assert.equal(seen, 0, 'no result was published');
  agent.proc.kill('SIGTERM');
  await agent.exited;
});
