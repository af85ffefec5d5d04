// Two agents where one belongs: a second `edge-agent run` on the same store is refused (exit 74,
// naming the holder) while readers can still read; the lock dies with its holder, kill -9 included.
// Two agents with one MQTT client id, which kick each other off the broker, say so in the log (on either connection).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

test('a second agent on the same store is refused, readers still read, and nothing is stored twice', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-lock-a' } }));
  const first = spawnAgent(t, config);
  await first.waitForLog('subscribed');

  // A copy-pasted config with its own client id: were it let in, both would store every reading.
  const copy = writeConfig(dir, agentConfig({ url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-lock-b' } }), 'copy.yaml');
  const second = spawnAgent(t, copy);
  const refused = await second.exited;
  assert.equal(refused.code, 74, second.stderr());
  assert.match(second.stderr(), /EDGE_ERR_STORE_LOCKED: .*agent\.db is in use by another edge-agent: pid (\d+)/);
  assert.match(second.stderr(), new RegExp(`pid ${first.proc.pid} on `));

  const N = 300;
  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-lock-test' });
  await publishSequence(gateway, 'plant/press-1/bearing', N).done;
  await waitFor(`${N} predictions, read while the agent runs`, () => countRows(dbPath).predictions >= N);

  // The lock dies with its holder: after kill -9 the next agent starts and every reading stays stored once.
  first.proc.kill('SIGKILL');
  await first.exited;
  const { exit, seqs } = await runUntilStored(t, config, dbPath, N);
  assert.equal(exit.code, 0);
  assert.equal(seqs.length, N);
  assert.equal(new Set(seqs).size, N, 'no reading stored twice');
});

for (const protocolVersion of [4, 5] as const) {
  test(`two agents with one client id (MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}) log that they take the session from each other`, { timeout: 90_000 }, async (t) => {
    const broker = await startMosquitto(t);
    const dir = tempDir(t);
    // mosquitto 2.0 mostly closes the older connection without a word, for MQTT 5 clients too; when an
    // MQTT 5 client does get DISCONNECT 0x8E (session taken over), the agent says so directly.
    const messages = [
      'the broker keeps closing the connection: another client is probably using the same client id (mqtt.clientId)',
      'the broker gave this session to another client with the same client id',
    ];
    const want = messages.join('" or "');
    const agents = ['a', 'b'].map((n) =>
      spawnAgent(t, writeConfig(dir, agentConfig({
        url: broker.url, dbPath: join(dir, `${n}.db`),
        mqtt: { url: broker.url, clientId: 'edge-agent-twin', protocolVersion, reconnectMinMs: 100, reconnectMaxMs: 300 },
      }), `${n}.yaml`)),
    );
    await waitFor(`either agent to log "${want}"`, () => agents.some((a) => a.logs.some((l) => messages.includes(String(l.msg)))), 60_000);
    const line = agents.flatMap((a) => a.logs).find((l) => messages.includes(String(l.msg)));
    // Either connection may notice first: the readings' (the client id) or the results' (its own, -results).
    if (line?.connection === 'results') assert.equal(line.clientId, 'edge-agent-twin-results');
    else assert.equal(line?.clientId, 'edge-agent-twin');
    assert.equal(line?.level, 50, 'logged as an error');
  });
}
