// A config without mqtt.url: the agent starts its embedded broker on loopback, and a third-party
// client (mosquitto_pub) pointed at it gets predictions back. Also `npm run demo`'s command end to end.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { join } from 'node:path';
import { agentConfig, cliPath, countRows, freePort, runCli, spawnAgent, readingPayload, stopProcess, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

test('no broker URL: the embedded broker serves mosquitto_pub and mosquitto_sub', async (t) => {
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const port = await freePort();
  const config = agentConfig({ dbPath });
  (config.mqtt as Record<string, unknown>).embedded = { host: '127.0.0.1', port };
  const agent = spawnAgent(t, writeConfig(dir, config));
  const listening = await agent.waitForLog('embedded broker listening');
  assert.equal(listening.port, port);
  await agent.waitForLog('subscribed');

  const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-t', 'plant/+/predictions/#', '-C', '3', '-q', '1', '-d']);
  let out = '';
  sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
  teardown(t, () => void sub.kill());
  await waitFor('mosquitto_sub subscribed', () => out.includes('SUBACK')); // -d prints the SUBACK (stdbuf: line-buffered through the pipe)
  for (let i = 0; i < 3; i++) {
    const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', `plant/m${i}/bearing`, '-q', '1', '-m', readingPayload(i)]);
    assert.equal(await new Promise((r) => pub.once('exit', r)), 0);
  }
  await waitFor('3 predictions', () => countRows(dbPath).predictions === 3);
  const subCode = await new Promise((r) => sub.once('exit', r));
  assert.equal(subCode, 0);
  const results = out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { asset: string; label: string });
  assert.deepEqual(results.map((r) => r.asset).sort(), ['m0', 'm1', 'm2']);
  for (const r of results) assert.ok(['healthy', 'wear', 'fault'].includes(r.label));
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

test('the demo runs, classifies four presses and stops cleanly', async () => {
  const r = await runCli(['demo', '--duration', '4']);
  assert.equal(r.code, 0, r.stderr);
  const last = r.stdout.trim().split('\n').filter((l) => l.startsWith('msg/s')).pop() ?? '';
  for (const m of ['press-1', 'press-2', 'press-3', 'press-4']) assert.match(last, new RegExp(`${m}: (healthy|wear|fault)`));
  const summary = /stopped: (\d+) readings sent, (\d+) predictions, (\d+) dead letters/.exec(r.stdout);
  assert.ok(summary, r.stdout);
  assert.ok(Number(summary[2]) > 100, 'predictions were made');
  assert.equal(Number(summary[1]), Number(summary[2]) + Number(summary[3]), 'every reading sent is a prediction or a dead letter');
});

test('the demo stops cleanly on Ctrl-C (SIGINT)', async (t) => {
  const demo = spawn(process.execPath, [cliPath, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  teardown(t, () => stopProcess(demo, 'SIGKILL'));
  let out = '';
  demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('a status line with predictions', () => /predictions +[1-9]/.test(out), 20000);
  const exited = new Promise<number | null>((resolve) => demo.once('exit', resolve));
  demo.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.match(out, /stopped: \d+ readings sent, \d+ predictions/);
});

