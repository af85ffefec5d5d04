// A config without mqtt.url: the agent starts its embedded broker on loopback, and a third-party
// client (mosquitto_pub) pointed at it gets predictions back. Also `npm run demo`'s command end to end.

import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { join } from 'node:path';
import { agentConfig, cliPath, countRows, freePort, runCli, spawnAgent, spawnChild, readingPayload, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

test('no broker URL: the embedded broker serves mosquitto_pub and mosquitto_sub', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const port = await freePort();
  const config = agentConfig({ dbPath });
  (config.mqtt as Record<string, unknown>).embedded = { host: '127.0.0.1', port };
  const agent = spawnAgent(t, writeConfig(dir, config));
  const listening = await agent.waitForLog('embedded broker listening');
  assert.equal(listening.port, port);
  await agent.waitForLog('subscribed');

  // -C 3: mosquitto_sub exits after the third result, possibly before the test looks: spawnChild
  // creates the exit promise at spawn, so that exit is never missed.
  const sub = spawnChild(t, 'stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-t', 'plant/+/predictions/#', '-C', '3', '-q', '1', '-d']);
  await waitFor('mosquitto_sub subscribed', () => sub.stdout().includes('SUBACK')); // -d prints the SUBACK (stdbuf: line-buffered through the pipe)
  for (let i = 0; i < 3; i++) {
    const pub = spawnChild(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', `plant/m${i}/bearing`, '-q', '1', '-m', readingPayload(i)]);
    assert.equal((await pub.exited).code, 0, pub.stderr());
  }
  await waitFor('3 predictions', () => countRows(dbPath).predictions === 3);
  assert.deepEqual(await sub.exited, { code: 0, signal: null }, sub.stderr());
  const results = sub.stdout().trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { asset: string; label: string });
  assert.deepEqual(results.map((r) => r.asset).sort(), ['m0', 'm1', 'm2']);
  for (const r of results) assert.ok(['healthy', 'wear', 'fault'].includes(r.label));
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

test('the embedded broker\'s port is taken: exit 69 with EDGE_ERR_BROKER naming the port', { timeout: 60000 }, async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  teardown(t, () => new Promise((resolve) => taken.close(resolve)));
  const port = (taken.address() as AddressInfo).port;
  const dir = tempDir(t);
  const config = agentConfig({ dbPath: join(dir, 'agent.db') });
  (config.mqtt as Record<string, unknown>).embedded = { host: '127.0.0.1', port };
  const agent = spawnAgent(t, writeConfig(dir, config));
  assert.deepEqual(await agent.exited, { code: 69, signal: null });
  assert.match(agent.stderr(), new RegExp(`EDGE_ERR_BROKER: embedded broker cannot listen on 127\\.0\\.0\\.1:${port}`));
  const line = agent.logs.find((l) => l.msg === 'agent could not start');
  assert.equal(line?.code, 'EDGE_ERR_BROKER');
});

test('the demo runs, classifies four presses and stops cleanly', { timeout: 60000 }, async () => {
  const r = await runCli(['demo', '--duration', '4']);
  assert.equal(r.code, 0, r.stderr);
  const last = r.stdout.trim().split('\n').filter((l) => l.startsWith('msg/s')).pop() ?? '';
  for (const m of ['press-1', 'press-2', 'press-3', 'press-4']) assert.match(last, new RegExp(`${m}: (healthy|wear|fault)`));
  const summary = /stopped: (\d+) readings sent, (\d+) predictions, (\d+) dead letters/.exec(r.stdout);
  assert.ok(summary, r.stdout);
  assert.ok(Number(summary[2]) > 100, 'predictions were made');
  assert.equal(Number(summary[1]), Number(summary[2]) + Number(summary[3]), 'every reading sent is a prediction or a dead letter');
});

test('the demo stops cleanly on Ctrl-C (SIGINT)', { timeout: 60000 }, async (t) => {
  const demo = spawnChild(t, process.execPath, [cliPath, 'demo']);
  await waitFor('a status line with predictions', () => {
    if (demo.proc.exitCode !== null) throw new Error(`demo exited with ${demo.proc.exitCode}: ${demo.stderr()}`);
    return /predictions +[1-9]/.test(demo.stdout());
  }, 20000);
  demo.proc.kill('SIGINT');
  assert.equal((await demo.exited).code, 0);
  assert.match(demo.stdout(), /stopped: \d+ readings sent, \d+ predictions/);
});

