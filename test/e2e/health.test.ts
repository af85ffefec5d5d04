// Health over HTTP against a real agent, a real mosquitto and a real model worker: /healthz follows the
// process and its worker (never the broker), /readyz the broker, the subscriptions, the model and the
// store; the status JSON counts what a publisher sent; a token guards every path.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, mqttClient, publishSequence, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig, type AgentProcess } from '../helpers/parts.js';

async function get(url: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const failing = (body: Record<string, unknown>) => (body.checks as { name: string; ok: boolean }[]).filter((c) => !c.ok).map((c) => c.name);

async function baseUrl(agent: AgentProcess): Promise<string> {
  return String((await agent.waitForLog('http listening')).url);
}

test('/healthz and /readyz: a broker outage makes the agent unready, never unhealthy; status counts what was sent', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db') })));
  const url = await baseUrl(agent);
  await agent.waitForLog('agent ready');
  assert.equal((await get(`${url}/healthz`)).status, 200);
  const ready = await get(`${url}/readyz`);
  assert.equal(ready.status, 200, JSON.stringify(ready.body));

  // A steady publisher for a few seconds; meanwhile two readers ask at once, again and again. Each reader sees
  // the rate of the traffic: one reader's question never resets what the other sees.
  const gateway = await mqttClient(t, broker.url);
  const sending = publishSequence(gateway, 'plant/m1/bearing', 600, 20, 100);
  await waitFor('traffic in the history', async () => ((await get(`${url}/api/status?historySec=0`)).body.rates as { receivedPerSec: number }).receivedPerSec > 0);
  for (let i = 0; i < 5; i++) {
    const both = await Promise.all([get(`${url}/api/status?historySec=5`), get(`${url}/api/status?historySec=5`)]);
    for (const r of both) assert.ok((r.body.rates as { receivedPerSec: number }).receivedPerSec > 0, JSON.stringify(r.body.rates));
  }
  await sending.done;
  let status: Record<string, unknown> = {};
  await waitFor('600 predictions in the status', async () => {
    status = (await get(`${url}/api/status`)).body;
    return (status.rates as { predictions: number }).predictions === 600;
  });
  assert.deepEqual((status.models as { name: string; serving: string }[]).map((m) => `${m.name}@${m.serving}`), ['bearing-health@1.0.0']);
  assert.equal((status.agent as { ready: boolean }).ready, true);
  assert.ok((status.history as unknown[]).length >= 2, 'the history of the last seconds');

  await stopChild(broker);
  // Both of the agent's connections go with the broker: the readings' and the results'.
  await waitFor('/readyz to fail on the broker', async () => (await get(`${url}/readyz`)).status === 503 && failing((await get(`${url}/readyz`)).body).length === 2);
  assert.deepEqual(failing((await get(`${url}/readyz`)).body), ['broker', 'results connection']);
  const health = await get(`${url}/healthz`);
  assert.equal(health.status, 200, 'a network outage must not make the agent unhealthy');
});

test('/healthz fails when the model worker is stuck in native code', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  // The worker's first batch after the golden check blocks its thread for ten minutes.
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), shutdown: { deadlineMs: 1000 } })), { EDGE_AGENT_TEST_WORKER_STUCK_AFTER: '1' });
  const url = await baseUrl(agent);
  await agent.waitForLog('agent ready');
  assert.equal((await get(`${url}/healthz`)).status, 200);
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/m1/bearing', 5);
  let last: { status: number; body: Record<string, unknown> } = { status: 0, body: {} };
  await waitFor('/healthz to fail', async () => (last = await get(`${url}/healthz`)).status === 503, 40_000);
  assert.deepEqual(failing(last.body), ['model worker bearing-health']);
});

test('a bearer token guards every path', { timeout: 60_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), http: { port: 0, token: { env: 'EDGE_TEST_HTTP_TOKEN' } } })), { EDGE_TEST_HTTP_TOKEN: 's3cret-token' });
  const url = await baseUrl(agent);
  await agent.waitForLog('agent ready');
  for (const path of ['/healthz', '/readyz', '/api/status']) {
    assert.equal((await get(`${url}${path}`)).status, 401, path);
    assert.equal((await get(`${url}${path}`, 'wrong-token')).status, 401, path);
    assert.equal((await get(`${url}${path}`, 's3cret-token')).status, 200, path);
  }
  assert.equal(JSON.stringify(agent.logs).includes('s3cret-token'), false, 'the token is never logged');
});
