// systemd's notify protocol, end to end: the real agent as a child with NOTIFY_SOCKET pointing at a real
// Unix datagram socket (a python3 receiver standing in for systemd: Node cannot bind one) and WATCHDOG_USEC
// set. Checks EXTEND_TIMEOUT_USEC while starting, READY=1 only once the broker acknowledged the
// subscriptions, STATUS= lines, WATCHDOG=1 that goes on through a broker outage and stops when the model
// worker is stuck, and STOPPING=1 on SIGTERM.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, countRows, freePort, mqttClient, publishSequence, readingPayload, spawnAgent, spawnChild, startMosquitto, stopChild, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

/** One datagram as systemd would read it: its fields, and when it arrived (this process's clock). */
interface Datagram { at: number; fields: Record<string, string> }

// Binds the socket, then prints each datagram as one JSON string per line. systemd-notify (>= 246) follows
// its message with BARRIER=1 carrying a pipe fd: recv() without room for ancillary data closes the fd,
// which is what releases systemd-notify's wait, as systemd's own close would.
const RECEIVER = `
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps('BOUND'), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode('utf-8', 'replace')), flush=True)
`;

async function notifySocket(t: Teardown, dir: string): Promise<{ path: string; messages: Datagram[] }> {
  const path = join(dir, 'notify.sock');
  const messages: Datagram[] = [];
  let bound = false;
  let buf = '';
  const child = spawnChild(t, 'python3', ['-c', RECEIVER, path], { stopSignal: 'SIGKILL' });
  child.proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const text = JSON.parse(buf.slice(0, i)) as string;
      buf = buf.slice(i + 1);
      if (text === 'BOUND') bound = true;
      else if (text !== 'BARRIER=1') messages.push({ at: Date.now(), fields: Object.fromEntries(text.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) });
    }
  });
  await waitFor(`the notify socket to be bound (stderr: ${child.stderr()})`, () => {
    if (child.proc.exitCode !== null) throw new Error(`python3 exited: ${child.stderr()}`);
    return bound;
  }, 15_000);
  return { path, messages };
}

const having = (messages: Datagram[], key: string, from = 0) => messages.slice(from).filter((m) => key in m.fields);
const logTime = (l: Record<string, unknown> | undefined) => Date.parse(String(l?.time));

test('READY=1 only after the broker acknowledged the subscriptions; EXTEND while starting, STATUS, WATCHDOG through a broker outage, STOPPING on SIGTERM', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const sock = await notifySocket(t, dir);
  const port = await freePort();
  // The broker is down when the agent starts.
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: `mqtt://127.0.0.1:${port}`, dbPath: join(dir, 'a.db') })), { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '1000000' });
  await waitFor('EXTEND_TIMEOUT_USEC', () => having(sock.messages, 'EXTEND_TIMEOUT_USEC').length > 0, 30_000);
  assert.ok(Number(having(sock.messages, 'EXTEND_TIMEOUT_USEC')[0]?.fields.EXTEND_TIMEOUT_USEC) >= 10_000_000);
  await agent.waitForLog('agent started');
  // Started, waiting for the broker: it says so, keeps extending the start, pings the watchdog, and is not READY.
  await waitFor('a STATUS naming the broker it waits for', () => sock.messages.some((m) => m.fields.STATUS?.startsWith('starting: waiting for the broker')), 30_000);
  const started = sock.messages.length;
  await waitFor('three watchdog pings while the broker is down', () => having(sock.messages, 'WATCHDOG', started).length >= 3, 30_000);
  assert.equal(having(sock.messages, 'READY').length, 0, 'no READY while the broker is down');
  assert.equal(agent.logs.some((l) => l.msg === 'subscribed'), false);

  const broker = await startMosquitto(t, [], port);
  await waitFor('READY=1', () => having(sock.messages, 'READY').length > 0, 30_000);
  const ready = having(sock.messages, 'READY')[0] as Datagram;
  await agent.waitForLog('subscribed');
  const subscribed = agent.logs.find((l) => l.msg === 'subscribed');
  assert.ok(logTime(subscribed) <= ready.at, `READY (${ready.at}) came before the 'subscribed' log line (${String(subscribed?.time)})`);
  assert.equal(ready.fields.READY, '1');
  assert.match(ready.fields.STATUS ?? '', /^bearing-health@1\.0\.0 · [\d.]+ msg\/s/);
  assert.equal(having(sock.messages, 'READY').length, 1, 'READY once');

  // Serving: the STATUS line counts the readings and says ok.
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/m1/bearing', 200, 50, 20).done;
  await waitFor('a STATUS with a rate and no problem', () => sock.messages.some((m) => m.at > ready.at && /[1-9][\d.]* msg\/s.* · ok$/.test(m.fields.STATUS ?? '')), 30_000);
  const readyAt = sock.messages.indexOf(ready);
  assert.equal(having(sock.messages, 'EXTEND_TIMEOUT_USEC', readyAt + 1).length, 0, 'no EXTEND once ready');

  // A broker outage: the watchdog goes on (no restart loop), the STATUS names the problem.
  await gateway.endAsync(true);
  await stopChild(broker);
  await agent.waitForLog('broker connection lost; reconnecting');
  await waitFor('a STATUS naming the broker problem', () => sock.messages.some((m) => /problems: broker: not connected/.test(m.fields.STATUS ?? '')), 30_000);
  const outage = sock.messages.length;
  await waitFor('three watchdog pings during the outage', () => having(sock.messages, 'WATCHDOG', outage).length >= 3, 30_000);

  agent.proc.kill('SIGTERM');
  const exit = await agent.exited;
  assert.equal(exit.code, 0);
  const stopping = having(sock.messages, 'STOPPING');
  assert.equal(stopping.length, 1, 'STOPPING=1 on SIGTERM');
  assert.equal(stopping[0]?.fields.STOPPING, '1');
});

test('WATCHDOG=1 stops when the model worker is stuck, while the process runs on', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const sock = await notifySocket(t, dir);
  const broker = await startMosquitto(t);
  // The worker's first batch after the golden check blocks its thread for ten minutes.
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), shutdown: { deadlineMs: 1000 } })), {
    NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '1000000', EDGE_AGENT_TEST_WORKER_STUCK_AFTER: '1',
  });
  await waitFor('READY=1', () => having(sock.messages, 'READY').length > 0, 60_000);
  const ready = sock.messages.length;
  await waitFor('watchdog pings while the worker answers', () => having(sock.messages, 'WATCHDOG', ready).length >= 2, 30_000);

  const gateway = await mqttClient(t, broker.url);
  await gateway.publishAsync('plant/m1/bearing', readingPayload(1), { qos: 1 });
  await agent.waitForLog('a model worker does not answer; watchdog pings withheld (systemd restarts the agent after WatchdogSec)', 30_000);
  // The STATUS refresh after that says why; from then on, across a whole STATUS period (ten watchdog
  // intervals), not one WATCHDOG=1.
  await waitFor('a STATUS naming the stuck worker', () => sock.messages.some((m) => m.fields.STATUS?.includes('a model worker does not answer')), 30_000);
  const from = sock.messages.findIndex((m) => m.fields.STATUS?.includes('a model worker does not answer'));
  await waitFor('the next STATUS refresh', () => having(sock.messages, 'STATUS', from + 1).length >= 1, 30_000);
  assert.equal(having(sock.messages, 'WATCHDOG', from).length, 0, 'no watchdog ping while the worker is stuck');
  assert.equal(agent.proc.exitCode, null, 'the process itself runs on (systemd decides)');
});

test('a failing systemd-notify never stops the agent: logged once, and the agent serves', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const broker = await startMosquitto(t);
  // A socket path nobody listens on: every systemd-notify run fails.
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db') })), { NOTIFY_SOCKET: join(dir, 'nobody.sock'), WATCHDOG_USEC: '400000' });
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  await publishSequence(gateway, 'plant/m1/bearing', 20).done;
  await waitFor('the readings stored', () => countRows(join(dir, 'a.db')).predictions === 20, 30_000);
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  assert.equal(agent.logs.filter((l) => l.msg === 'systemd-notify failed; the agent goes on without it').length, 1, 'logged once');
});
