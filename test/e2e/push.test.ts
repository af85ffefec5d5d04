// Releases pushed over the plant's broker: `edge-agent model push` to a group of three agents (one of
// them off when the push is made: the retained announcement reaches it when it comes back), each agent's
// progress shown live by the CLI; a bad release refused by every agent (exit 65, the agents serve on);
// and downloads by URL from a real HTTP server, with a size cap and a deadline.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { agentConfig, demoModelDir, mqttClient, runCli, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';
import { signedRelease as sealed } from '../helpers/releases.js';

function agentOn(t: TestContext, dir: string, brokerUrl: string, name: string, releases: Record<string, unknown> = {}) {
  const config = writeConfig(dir, agentConfig({
    url: brokerUrl, dbPath: join(dir, name, 'agent.db'), mqtt: { url: brokerUrl, clientId: `edge-agent-${name}` },
    model: { dir: demoModelDir, trust: { keyFiles: [join(dir, 'k.pub')] }, probation: { predictions: 0 } },
    releases: { groups: ['line3'], ...releases },
  }), `${name}.yaml`);
  return { config, start: () => spawnAgent(t, config) };
}

test('a push to a group: every agent verifies and commits, one that was off gets it when it comes back', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  await runCli(['model', 'keygen', '--out', dir, '--name', 'k']);
  const defs = ['pc1', 'pc2', 'pc3'].map((n) => agentOn(t, dir, broker.url, n));
  const agents = defs.map((d) => d.start());
  await Promise.all(agents.map((a) => a.waitForLog('agent ready')));
  // pc3 goes off after it has published its status (retained): it is still a member of line3.
  const watcher = await mqttClient(t, broker.url);
  const statuses = new Set<string>();
  watcher.on('message', (_topic, payload) => statuses.add((JSON.parse(payload.toString()) as { agentId: string }).agentId));
  await watcher.subscribeAsync('edge-agent/agents/+/status', { qos: 1 });
  await waitFor('the three statuses', () => statuses.size === 3);
  agents[2]!.proc.kill('SIGTERM');
  await agents[2]!.exited;

  const release = await sealed(dir, '1.1.0', join(dir, 'k.key'));
  const pushing = runCli(['model', 'push', release, '--broker', broker.url, '--target', 'group:line3', '--timeout', '50']);
  await waitFor('pc1 and pc2 on 1.1.0', () => agents.slice(0, 2).every((a) => a.logs.some((l) => l.msg === 'model version activated' && l.version === '1.1.0')), 40_000);
  const back = defs[2]!.start();
  const r = await pushing;
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /pushing bearing-health 1\.1\.0 \(inline\) to group line3: edge-agent-pc1, edge-agent-pc2, edge-agent-pc3/);
  for (const pc of ['pc1', 'pc2', 'pc3']) {
    for (const state of ['downloading', 'downloaded', 'verified', 'activated', 'committed']) {
      assert.match(r.stdout, new RegExp(`edge-agent-${pc}: ${state} 1\\.1\\.0`), `${pc} ${state}`);
    }
  }
  assert.match(r.stdout, /edge-agent-pc1 committed, edge-agent-pc2 committed, edge-agent-pc3 committed/);
  const loaded = back.logs.filter((l) => l.msg === 'model version activated').map((l) => l.version);
  assert.deepEqual(loaded, ['1.1.0'], 'the agent that was off installed the retained push when it came back');

  // A bad release (its golden vectors do not match): every agent refuses it and serves on; exit 65.
  const bad = await sealed(dir, '1.2.0', join(dir, 'k.key'), (m) => ((m.golden as { output: number[] }[])[0]!.output = [0.5, 0.25, 0.25]));
  const refused = await runCli(['model', 'push', bad, '--broker', broker.url, '--target', 'group:line3', '--timeout', '50']);
  assert.equal(refused.code, 65, `${refused.stdout}\n${refused.stderr}`);
  assert.match(refused.stdout, /edge-agent-pc1: refused 1\.2\.0 — .*golden vectors fail/);
  assert.match(refused.stderr, /EDGE_ERR_PUSH_FAILED: 3 of 3 agents did not commit 1\.2\.0/);
  // A restart does not take the refused (still retained) release again.
  agents[0]!.proc.kill('SIGTERM');
  await agents[0]!.exited;
  const again = defs[0]!.start();
  const reloaded = await again.waitForLog('model loaded and verified');
  assert.equal(reloaded.version, '1.1.0');
  await again.waitForLog('agent ready');
  assert.equal(again.logs.some((l) => l.msg === 'pushed release refused'), false, 'the refused push is not tried again');
});

test('a push by URL: fetched from an HTTP server, within the size declared and the deadline', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  await runCli(['model', 'keygen', '--out', dir, '--name', 'k']);
  const release = await sealed(dir, '1.1.0', join(dir, 'k.key'));
  let mode: 'ok' | 'oversize' | 'stall' = 'ok';
  const server = createServer((req, res) => {
    const name = (req.url ?? '/').split('/').pop() ?? '';
    let body: Buffer;
    try {
      body = readFileSync(join(release, name));
    } catch {
      res.writeHead(404).end();
      return;
    }
    // Chunked, without a Content-Length: the size is caught while reading, not from the header.
    if (name === 'model.onnx' && mode === 'oversize') return void (res.write(body), res.end(Buffer.alloc(4096)));
    if (name === 'model.onnx' && mode === 'stall') return void res.write(body.subarray(0, 10)); // never ends
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  teardown(t, () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/1.1.0/`;
  const def = agentOn(t, dir, broker.url, 'pc9', { downloadTimeoutMs: 3000 });
  const agent = def.start();
  await agent.waitForLog('agent ready');

  for (const [m, expect] of [['oversize', /refused 1\.1\.0 — GET .*model\.onnx: more than the \d+ bytes expected/], ['stall', /refused 1\.1\.0 — GET .*model\.onnx: the download deadline passed/]] as const) {
    mode = m;
    const r = await runCli(['model', 'push', release, '--broker', broker.url, '--target', 'agent:edge-agent-pc9', '--url', url, '--timeout', '40']);
    assert.equal(r.code, 65, `${m}: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, expect, m);
  }
  mode = 'ok';
  const ok = await runCli(['model', 'push', release, '--broker', broker.url, '--target', 'agent:edge-agent-pc9', '--url', url, '--timeout', '40']);
  assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  assert.match(ok.stdout, /pushing bearing-health 1\.1\.0 \(from http:\/\/127\.0\.0\.1:\d+\/1\.1\.0\/\) to agent edge-agent-pc9/);
  assert.match(ok.stdout, /edge-agent-pc9: committed 1\.1\.0/);
});
