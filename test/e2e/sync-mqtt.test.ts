// Upstream sync to a second real mosquitto (the plant's central broker), with the agent as a child process
// on its own mosquitto and a subscriber on the upstream that keeps each idempotency key once: an outage of
// the upstream broker loses nothing, a broker's Maximum Packet Size makes smaller batches; wrong credentials
// stop the target (shown in `sync status`) and lose nothing once the password is fixed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { agentConfig, freePort, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, stopChild, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

interface Message { topic: string; key: string; props: Record<string, unknown>; bytes: number; rows: Record<string, unknown>[] }

/** A subscriber on the upstream broker that keeps every message and the rows of each key once (a receiver discarding resends). */
async function upstreamSubscriber(t: TestContext, url: string, auth: { username?: string; password?: string } = {}) {
  const client = await mqttClient(t, url, { protocolVersion: 5, ...auth });
  const messages: Message[] = [];
  const byKey = new Map<string, Record<string, unknown>[]>();
  client.on('message', (topic, payload, packet) => {
    const props = (packet.properties?.userProperties ?? {}) as Record<string, unknown>;
    const key = String(props['idempotency-key']);
    const rows = gunzipSync(payload).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    messages.push({ topic, key, props: { ...props, contentType: packet.properties?.contentType }, bytes: payload.length, rows });
    if (!byKey.has(key)) byKey.set(key, rows);
  });
  await client.subscribeAsync('plant-data/#', { qos: 1 });
  return { client, messages, rows: (kind: string) => [...byKey.values()].flat().filter((r) => r.kind === kind) };
}

function syncConfig(dir: string, brokerUrl: string, target: Record<string, unknown>) {
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({
    url: brokerUrl, dbPath, releases: { agentId: 'line3-pc1' },
    sync: { schedule: '* * * * * *', runDeadlineMs: 5000, batchRows: 100, retry: { minMs: 50, maxMs: 400 }, targets: [{ type: 'mqtt', name: 'central', topic: 'plant-data/{agent}/{kind}', timeoutMs: 2000, ...target }] },
  });
  return { dbPath, path: writeConfig(dir, config) };
}

const ids = (dbPath: string) => {
  const db = openDb(dbPath);
  try {
    return (db.prepare('SELECT id FROM predictions ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  } finally {
    db.close();
  }
};
const sorted = (rows: Record<string, unknown>[]) => rows.map((r) => r.id as number).sort((a, b) => a - b);

test('an outage of the upstream broker, then recovery: every row arrives once by key, in messages within the broker\'s maximum packet size', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const port = await freePort();
  // The upstream announces a Maximum Packet Size (CONNACK) small enough that 100-row batches are over it.
  const upstreamConf = ['max_packet_size 3000'];
  let upstream = await startMosquitto(t, upstreamConf, port);
  const sub = await upstreamSubscriber(t, upstream.url);
  const dir = tempDir(t);
  const { dbPath, path } = syncConfig(dir, broker.url, { url: upstream.url });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/press-1/bearing', 150, 50, 5).done;
  await waitFor('the first 150 predictions upstream', () => sub.rows('prediction').length === 150, 30_000);
  await waitFor('the lifecycle event upstream', () => sub.rows('model_event').length === 1);

  await stopChild(upstream);
  await publishSequence(gateway, 'plant/press-1/bearing', 450, 50, 5, 150).done;
  await waitFor('450 predictions stored', () => ids(dbPath).length === 450);
  const failedBefore = agent.logs.filter((l) => l.msg === 'sync target unavailable; trying again at the next run').length;
  await waitFor('failed runs while the upstream is down', () => agent.logs.filter((l) => l.msg === 'sync target unavailable; trying again at the next run').length >= failedBefore + 2, 30_000);
  const down = await runCli(['sync', 'status', '--config', path]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /predictions +backlog 300 [^\n]*last error [^\n]*(ECONNREFUSED|connection closed)/);

  upstream = await startMosquitto(t, upstreamConf, port);
  await waitFor('every prediction upstream', () => sub.rows('prediction').length === 450, 40_000);
  assert.deepEqual(sorted(sub.rows('prediction')), ids(dbPath), 'each stored prediction once, after resends are discarded by key');
  for (const m of sub.messages) assert.ok(m.bytes < 3000, `a ${m.bytes}-byte message passed the broker's maximum packet size`);
  assert.ok(agent.logs.some((l) => l.msg === 'sync batch too large for the target; sending smaller batches'), 'batches were split');
  const byKey = new Map<string, string>();
  for (const m of sub.messages) {
    const rows = JSON.stringify(m.rows);
    assert.equal(byKey.get(m.key) ?? rows, rows, `a resend of ${m.key} carries the same rows`);
    byKey.set(m.key, rows);
  }
  const first = sub.messages.find((m) => m.props.kind === 'predictions');
  assert.equal(first?.topic, 'plant-data/line3-pc1/predictions');
  assert.equal(first?.props.agent, 'line3-pc1');
  assert.equal(first?.props.contentType, 'application/x-ndjson');
  assert.equal(first?.props['content-encoding'], 'gzip');
  assert.equal(first?.props.ids, `${first?.rows[0]?.id as number}-${first?.rows[first.rows.length - 1]?.id as number}`);
  assert.match(first?.key ?? '', new RegExp(`^${String(first?.rows[0]?.store)}-predictions-\\d+-\\d+$`));
  const up = await runCli(['sync', 'status', '--config', path]);
  assert.match(up.stdout, /predictions +backlog 0, sent 450 rows/);
  assert.equal(await stopChild(agent), 0);
});

test('wrong credentials stop the target, shown in sync status; with the password fixed every row arrives', { timeout: 90_000 }, async (t) => {
  const dir = tempDir(t);
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  execFileSync('mosquitto_passwd', ['-b', passwd, 'line3', 'right-one']);
  execFileSync('mosquitto_passwd', ['-b', passwd, 'platform', 'platform-pw']);
  const upstream = await startMosquitto(t, ['allow_anonymous false', `password_file ${passwd}`]);
  const sub = await upstreamSubscriber(t, upstream.url, { username: 'platform', password: 'platform-pw' });
  const broker = await startMosquitto(t);
  const secret = join(dir, 'sync-password');
  writeFileSync(secret, 'wrong-one\n');
  const { dbPath, path } = syncConfig(dir, broker.url, { url: upstream.url, username: 'line3', password: { file: 'sync-password' } });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/press-1/bearing', 120, 40, 5).done;
  await waitFor('120 predictions stored', () => ids(dbPath).length === 120);
  // The start run already stopped at the lifecycle event: wait for a run that tried the predictions.
  await waitFor('the target stopped at the predictions', () => agent.logs.some((l) => l.msg === 'sync target cannot take rows from this agent; stopped until the next run' && l.kind === 'predictions'), 20_000);
  const status = await runCli(['sync', 'status', '--config', path]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /predictions +backlog 120 .*last error [^\n]*CONNACK 135: Connection refused: Not authorized/); // mosquitto 2.0 answers a wrong password so
  assert.ok(!status.stdout.includes('wrong-one') && !agent.logs.some((l) => JSON.stringify(l).includes('wrong-one')), 'the password is never shown');
  assert.equal(sub.messages.length, 0);
  assert.equal(await stopChild(agent), 0);

  writeFileSync(secret, 'right-one\n');
  const again = spawnAgent(t, path);
  await waitFor('every prediction upstream', () => sub.rows('prediction').length === 120, 30_000);
  assert.deepEqual(sorted(sub.rows('prediction')), ids(dbPath), 'no row lost while the target was refused');
  assert.equal(await stopChild(again), 0);
});
