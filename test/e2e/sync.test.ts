// Upstream sync to a real HTTP receiver (test/helpers/receiver.ts), with the agent as a child process on a
// real mosquitto: an outage over many schedule periods loses nothing; a 429 is retried with the same key
// after its Retry-After; a 400 puts its batch in sync_rejected and the queue goes on; kill -9 before the
// POST, during it and after the answer loses nothing and resends the batch in flight with the same key.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { makePki } from '../helpers/pki.js';
import { startReceiver } from '../helpers/receiver.js';
import { agentConfig, freePort, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, stopChild, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

function syncConfig(dir: string, brokerUrl: string, url: string, sync: Record<string, unknown> = {}, target: Record<string, unknown> = {}) {
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({
    url: brokerUrl, dbPath, releases: { agentId: 'line3-pc1' },
    sync: { schedule: '* * * * * *', runDeadlineMs: 5000, batchRows: 100, retry: { minMs: 50, maxMs: 400 }, targets: [{ type: 'http', name: 'ingest', url, ...target }], ...sync },
  });
  return { dbPath, path: writeConfig(dir, config) };
}

const ids = (dbPath: string, table: string) => {
  const db = openDb(dbPath);
  try {
    return (db.prepare(`SELECT id FROM ${table} ORDER BY id`).all() as { id: number }[]).map((r) => r.id);
  } finally {
    db.close();
  }
};

async function publish(t: TestContext, brokerUrl: string, n: number) {
  const gateway = await mqttClient(t, brokerUrl);
  await publishSequence(gateway, 'plant/press-1/bearing', n, 50, 5).done;
}

test('an outage over many schedule periods, then recovery: every row arrives, resends carry the same key and the same rows', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const port = await freePort(); // the receiver is down: nothing listens here yet
  const { dbPath, path } = syncConfig(dir, broker.url, `http://127.0.0.1:${port}/ingest`, { runDeadlineMs: 1500, progressEveryMs: 1 });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const N = 450;
  await publish(t, broker.url, N);
  await waitFor(`${N} predictions stored`, () => ids(dbPath, 'predictions').length === N);
  // Several schedule periods of refused connections, each recorded.
  await waitFor('failed runs', () => agent.logs.filter((l) => l.msg === 'sync target unavailable; trying again at the next run').length >= 3, 30_000);
  const down = await runCli(['sync', 'status', '--config', path]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, new RegExp(`predictions +backlog ${N} \\(oldest \\d+ s\\), sent 0 rows / 0 bytes, last success never.*last error .*ECONNREFUSED`));

  const receiver = await startReceiver(t, port);
  await waitFor('every prediction at the receiver', () => receiver.rows('prediction').length === N, 30_000);
  await waitFor('the lifecycle event', () => receiver.rows('model_event').length === 1);
  // The drain reported its progress (every progressEveryMs; 1 ms here).
  const progress = agent.logs.find((l) => l.msg === 'sync progress' && l.kind === 'predictions');
  assert.ok(progress && typeof progress.rowsDone === 'number' && typeof progress.rowsPerSec === 'number' && typeof progress.backlog === 'number' && 'secondsLeft' in progress, JSON.stringify(progress));
  assert.deepEqual(receiver.rows('prediction').map((r) => r.id).sort((a, b) => (a as number) - (b as number)), ids(dbPath, 'predictions'), 'each stored prediction once');
  const byKey = new Map<string, string>();
  for (const r of receiver.requests) {
    const rows = JSON.stringify(r.rows);
    assert.equal(byKey.get(r.key) ?? rows, rows, `a resend of ${r.key} carries the same rows`);
    byKey.set(r.key, rows);
  }
  const row = receiver.rows('prediction')[0] as Record<string, unknown>;
  assert.deepEqual(Object.keys(row), ['kind', 'agent', 'store', 'id', 'receivedAt', 'asset', 'topic', 'model', 'version', 'role', 'features', 'outputs', 'label', 'score', 'latencyMs', 'quality', 'storedAt']);
  assert.equal(row.agent, 'line3-pc1');
  assert.equal(receiver.requests[0]?.headers['x-edge-agent'], 'line3-pc1');
  assert.match(String(receiver.requests[0]?.key), new RegExp(`^${String(row.store)}-`));

  const up = await runCli(['sync', 'status', '--config', path]);
  assert.match(up.stdout, /predictions +backlog 0, sent 450 rows/);
  const now = await runCli(['sync', 'now', '--config', path]);
  assert.equal(now.code, 0, now.stderr);
  assert.match(now.stdout, /^ingest: 0 rows, 0 bytes acknowledged/m);
  assert.equal(await stopChild(agent), 0);
  const none = await runCli(['sync', 'status', '--config', path]);
  assert.equal(none.code, 69, 'no agent running');
});

test('429 is retried with the same key after Retry-After; a 400 puts its batch in sync_rejected and the queue goes on', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const receiver = await startReceiver(t);
  // Yearly: only the start run and `sync now` run here.
  const { dbPath, path } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *', batchRows: 50, retry: { minMs: 10, maxMs: 20 } }, { token: { env: 'EDGE_TEST_SYNC_TOKEN' } });
  // The token comes from the environment: the agent's and the one the commands run in (they read the config too).
  const env = { ...process.env, EDGE_TEST_SYNC_TOKEN: 's3cret-token' };
  const agent = spawnAgent(t, path, { EDGE_TEST_SYNC_TOKEN: 's3cret-token' });
  await agent.waitForLog('agent ready');
  await waitFor('the start run', () => receiver.rows('model_event').length === 1);
  assert.equal(receiver.requests[0]?.headers.authorization, 'Bearer s3cret-token', 'the token from the environment');
  assert.ok(!agent.logs.some((l) => JSON.stringify(l).includes('s3cret-token')), 'the token is never logged');
  const N = 200;
  await publish(t, broker.url, N);
  await waitFor(`${N} predictions stored`, () => ids(dbPath, 'predictions').length === N);
  receiver.script.push(() => ({ status: 429, retryAfter: '1' }), () => ({ status: 200 }), () => ({ status: 400, body: 'row 3: unknown asset' }));
  const before = receiver.requests.length;
  const now = await runCli(['sync', 'now', '--config', path], env);
  assert.equal(now.code, 0, now.stderr);
  assert.match(now.stdout, /^ingest: 150 rows, \d+ bytes acknowledged, 1 batches refused for good/m);
  const [tooMany, retried, refused] = receiver.requests.slice(before);
  assert.equal(tooMany?.status, 429);
  assert.equal(retried?.key, tooMany?.key, 'the retry carries the same key');
  assert.ok((retried?.at ?? 0) - (tooMany?.at ?? 0) >= 950, `Retry-After: 1 was respected (${(retried?.at ?? 0) - (tooMany?.at ?? 0)} ms)`);
  assert.equal(refused?.status, 400);
  const refusedIds = (refused?.rows ?? []).map((r) => r.id);
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const rejected = db.prepare('SELECT kind, first_id AS first, last_id AS last, idempotency_key AS key, status, response FROM sync_rejected').all();
  assert.deepEqual(rejected, [{ kind: 'predictions', first: refusedIds[0], last: refusedIds[refusedIds.length - 1], key: refused?.key, status: 400, response: 'row 3: unknown asset' }]);
  const got = receiver.rows('prediction').map((r) => r.id as number);
  assert.deepEqual([...got, ...refusedIds].sort((a, b) => (a as number) - (b as number)), ids(dbPath, 'predictions'), 'every row either taken or recorded as refused');
  const status = await runCli(['sync', 'status', '--config', path], env);
  assert.match(status.stdout, /ingest \(1 batches refused for good, see sync_rejected\)/);
  assert.match(status.stdout, /predictions +backlog 0/);
  assert.equal(await stopChild(agent), 0);
});

test('413 sends smaller batches; 401 stops the target until the next run, losing nothing (sync now exits 69)', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const receiver = await startReceiver(t);
  const { dbPath, path } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *', batchRows: 40 });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  await waitFor('the start run', () => receiver.rows('model_event').length === 1);
  const N = 100;
  await publish(t, broker.url, N);
  await waitFor(`${N} predictions stored`, () => ids(dbPath, 'predictions').length === N);
  receiver.script.push(() => ({ status: 413 }), () => ({ status: 200 }), () => ({ status: 401, body: 'token expired' }));
  const before = receiver.requests.length;
  const stopped = await runCli(['sync', 'now', '--config', path]);
  assert.equal(stopped.code, 69, stopped.stdout + stopped.stderr);
  assert.match(stopped.stderr, /EDGE_ERR_SYNC: .*ingest \(HTTP 401: token expired/);
  const [large, smaller, refused] = receiver.requests.slice(before);
  assert.deepEqual([large?.rows.length, large?.status, smaller?.rows.length, smaller?.status, refused?.status], [40, 413, 20, 200, 401]);
  assert.match((await runCli(['sync', 'status', '--config', path])).stdout, /predictions +backlog 80 \(oldest \d+ s\), .*last error .*HTTP 401: token expired/);
  const again = await runCli(['sync', 'now', '--config', path]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(receiver.rows('prediction').map((r) => r.id).sort((a, b) => (a as number) - (b as number)), ids(dbPath, 'predictions'), 'nothing lost to the 413 or the 401');
  assert.equal(await stopChild(agent), 0);
});

for (const step of ['before-post', 'during-post', 'after-response'] as const) {
  test(`kill -9 ${step.replace('-', ' the ')}: nothing lost, the batch in flight goes again with the same key`, { timeout: 120_000 }, async (t) => {
    const broker = await startMosquitto(t);
    const dir = tempDir(t);
    const receiver = await startReceiver(t);
    const { dbPath, path } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *', batchRows: 40 });
    const first = spawnAgent(t, path);
    await first.waitForLog('agent ready');
    await waitFor('the start run', () => receiver.rows('model_event').length === 1);
    const N = 120;
    await publish(t, broker.url, N);
    await waitFor(`${N} predictions stored`, () => ids(dbPath, 'predictions').length === N);
    assert.equal(await stopChild(first), 0);

    // The next start syncs the predictions at once: it dies at the first batch.
    const sent = receiver.requests.length;
    if (step === 'during-post') receiver.script.push(() => ({ status: 200, holdMs: 10_000 }));
    const dying = spawnAgent(t, path, step === 'during-post' ? {} : { EDGE_AGENT_TEST_KILL_AT_SYNC_STEP: step });
    if (step === 'during-post') {
      await waitFor('the POST under way', () => receiver.requests.length > sent);
      dying.proc.kill('SIGKILL');
    }
    const exit = await dying.exited;
    assert.equal(exit.signal, 'SIGKILL');
    const seen = receiver.requests.slice(sent);
    assert.equal(seen.length, step === 'before-post' ? 0 : 1);

    // Restarted with smaller batches: the batch in flight still goes as it was, with its key (from the store).
    const { path: smaller } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *', batchRows: 25 });
    const again = spawnAgent(t, smaller);
    await waitFor('every prediction at the receiver', () => receiver.rows('prediction').length === N, 30_000);
    assert.deepEqual(receiver.rows('prediction').map((r) => r.id).sort((a, b) => (a as number) - (b as number)), ids(dbPath, 'predictions'), 'each row once, after resends are discarded by key');
    const resent = receiver.requests.slice(sent + seen.length)[0];
    if (seen[0]) assert.equal(resent?.key, seen[0].key, 'the batch in flight went again with the same key');
    assert.equal(resent?.rows.length, 40, 'the batch in flight went again whole, with its rows and key');
    assert.equal(await stopChild(again), 0);
  });
}

test('a backlog past earlyAtRows starts a run before the schedule; the sync reader thread runs at nice +5', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const receiver = await startReceiver(t);
  // Yearly: without the early run nothing after the start run would be sent.
  const { dbPath, path } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *', earlyAtRows: 100 });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  await waitFor('the start run', () => receiver.rows('model_event').length === 1);
  // The thread that reads, formats and gzips batches runs below the agent's own (sync.readerNice, default 5).
  const nices = () => readdirSync(`/proc/${agent.proc.pid}/task`).map((tid) => Number(readFileSync(`/proc/${agent.proc.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]?.split(' ')[16]));
  assert.equal(nices()[0], 0, 'the main thread at its own priority');
  assert.ok(nices().includes(5), `a thread at nice 5: ${nices().join(',')}`);
  await publish(t, broker.url, 250);
  await waitFor('the rows past the threshold sent without sync now', () => receiver.rows('prediction').length >= 100, 30_000);
  await waitFor('250 predictions stored', () => ids(dbPath, 'predictions').length === 250);
  await waitFor('the early run logged', () => agent.logs.some((l) => l.msg === 'sync run finished' && (l as { reason?: string }).reason === 'backlog'));
  assert.equal(await stopChild(agent), 0);
});

test('sync and each of its commands answer --help; bad usage exits 64', { timeout: 60_000 }, async () => {
  const top = await runCli(['sync', '--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /now --config FILE/);
  assert.match(top.stdout, /status --config FILE/);
  for (const cmd of ['now', 'status']) {
    const r = await runCli(['sync', cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: edge-agent sync ${cmd} --config FILE`));
  }
  const unknown = await runCli(['sync', 'later']);
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /unknown sync command "later"/);
  const noConfig = await runCli(['sync', 'now']);
  assert.equal(noConfig.code, 64);
  assert.match(noConfig.stderr, /--config FILE is required/);
});

test('HTTPS with a client certificate: the receiver that demands one gets every row; without it the target only fails, nothing is lost', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const pki = makePki(dir);
  const receiver = await startReceiver(t, 0, { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca });
  const { dbPath, path } = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *' }, { tls: { caFile: pki.ca } });
  const noCert = spawnAgent(t, path);
  await noCert.waitForLog('agent ready');
  await publish(t, broker.url, 60);
  await waitFor('60 predictions stored', () => ids(dbPath, 'predictions').length === 60);
  const refused = await runCli(['sync', 'now', '--config', path]);
  assert.equal(refused.code, 69, refused.stdout);
  assert.equal(receiver.requests.length, 0, 'no request without a client certificate');
  assert.equal(await stopChild(noCert), 0);

  const withCert = syncConfig(dir, broker.url, receiver.url, { schedule: '0 0 1 1 *' }, { tls: { caFile: pki.ca, certFile: pki.cert, keyFile: pki.key } });
  const agent = spawnAgent(t, withCert.path);
  await waitFor('every prediction over mutual TLS', () => receiver.rows('prediction').length === 60, 30_000);
  assert.deepEqual([...new Set(receiver.requests.map((r) => r.clientCn))], ['line3']);
  assert.equal(await stopChild(agent), 0);
});
