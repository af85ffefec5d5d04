// Releases pulled from a registry (a real HTTP server) on a node-cron schedule: the agent looks once at
// start and then on the schedule, installs a new release once (it is not taken again at the next look),
// and a registry that fails is logged while the agent serves on.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, demoModelDir, openDb, runCli, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';
import { keygen, signedRelease } from '../helpers/releases.js';

test('a release in the registry is pulled, verified and committed once; a failing registry is logged', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const { key } = await keygen(dir);
  const release = await signedRelease(dir, '1.1.0', key);
  const files = Object.fromEntries(['manifest.json', 'signature.json', 'model.onnx'].map((f) => [f, readFileSync(join(release, f)).toString('base64')]));
  const announcement = JSON.stringify({ releaseId: 'registry-bearing-health-1.1.0', model: 'bearing-health', version: '1.1.0', files });

  let failing = false;
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (failing) return void res.writeHead(503).end();
    if (req.url === '/registry/bearing-health/latest.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(announcement);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  teardown(t, () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const registry = `http://127.0.0.1:${(server.address() as { port: number }).port}/registry`;

  const dbPath = join(dir, 'agent.db');
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({
    url: broker.url, dbPath,
    model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 0 } },
    releases: { registry: { url: registry, schedule: '* * * * * *' } }, // every second (seconds field first)
  })));
  await waitFor('1.1.0 activated', () => agent.logs.some((l) => l.msg === 'model version activated' && l.version === '1.1.0'), 60_000);
  await waitFor('three more looks', () => requests.length >= 4, 30_000);
  failing = true;
  const before = requests.length;
  await waitFor('a failed look', () => agent.logs.some((l) => l.msg === 'registry pull failed' && /HTTP 503/.test(String(l.err))), 30_000);
  assert.ok(requests.length > before);
  const db = openDb(dbPath);
  teardown(t, () => db.close());
  const events = (db.prepare("SELECT event, version FROM model_events WHERE version = '1.1.0' ORDER BY id").all() as { event: string }[]).map((e) => e.event);
  assert.deepEqual(events, ['installed', 'activated', 'committed'], 'installed once, though the registry answered it at every look');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

test('a schedule that is not a cron expression is a config error naming the key', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['config', 'check', writeConfig(dir, agentConfig({ url: 'mqtt://127.0.0.1:9', dbPath: join(dir, 'a.db'), releases: { registry: { url: 'http://127.0.0.1:9/r', schedule: 'every minute' } } }))]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, /releases\.registry\.schedule: got "every minute" — a cron expression/);
});
