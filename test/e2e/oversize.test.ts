// What one oversize packet costs. With MQTT 5 the agent tells the broker its Maximum Packet Size
// (mqtt.maxPacketBytes), so a huge payload never reaches it; a payload above ingest.maxPayloadBytes but
// within the packet limit becomes a dead letter holding its first bytes. With MQTT 3.1.1 the packet is
// read whole first: the figures (peak RSS) are reported for both, not asserted.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, countRows, mqttClient, openDb, publishSequence, spawnAgent, startMosquitto, teardown, tempDir, waitFor, writeConfig } from '../helpers/parts.js';

const HUGE = 40 * 1024 * 1024;

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

for (const protocolVersion of [5, 4] as const) {
  const name = protocolVersion === 5 ? 'MQTT 5: packets over mqtt.maxPacketBytes never reach the agent' : 'MQTT 3.1.1: a huge payload is read whole, then kept cut as a dead letter';
  test(`${name}; a payload over maxPayloadBytes is a dead letter; readings around them are served`, { timeout: 120_000 }, async (t) => {
    const broker = await startMosquitto(t);
    const dir = tempDir(t);
    const dbPath = join(dir, 'agent.db');
    const agent = spawnAgent(t, writeConfig(dir, agentConfig({
      url: broker.url, dbPath,
      mqtt: { url: broker.url, clientId: `edge-agent-oversize-${protocolVersion}`, protocolVersion, maxPacketBytes: 1024 * 1024 },
      ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }], maxPayloadBytes: 64 * 1024 },
    })));
    await agent.waitForLog('subscribed');
    const gateway = await mqttClient(t, broker.url, { clientId: `gateway-oversize-${protocolVersion}` });
    const big = Buffer.alloc(200 * 1024, 0x20); // over maxPayloadBytes, under maxPacketBytes
    await gateway.publishAsync('plant/press-1/bearing', big, { qos: 1 });
    for (let i = 0; i < 3; i++) await gateway.publishAsync('plant/press-1/bearing', Buffer.alloc(HUGE, 0x20), { qos: 1 });
    const N = 100;
    await publishSequence(gateway, 'plant/press-1/bearing', N).done;

    const expectDead = protocolVersion === 5 ? 1 : 4;
    await waitFor(`${N} predictions and ${expectDead} dead letters`, () => {
      const c = countRows(dbPath);
      return c.predictions === N && c.deadLetters === expectDead;
    }, 60_000);
    const peak = peakRssMb(agent.proc.pid as number);
    agent.proc.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0);
    const db = openDb(dbPath);
    teardown(t, () => db.close());
    const dead = db.prepare('SELECT reason_code, reason, length(payload) AS kept FROM dead_letters ORDER BY id').all() as { reason_code: string; reason: string; kept: number }[];
    assert.deepEqual(dead[0], { reason_code: 'REJECT_PAYLOAD_TOO_LARGE', reason: `payload is ${big.length} bytes, the limit is 65536`, kept: 65536 });
    if (protocolVersion === 4) {
      for (const d of dead.slice(1)) assert.deepEqual([d.reason_code, d.kept], ['REJECT_PAYLOAD_TOO_LARGE', 65536]);
    }
    assert.deepEqual(countRows(dbPath), { predictions: N, deadLetters: expectDead, inbox: 0 }, 'nothing more, nothing twice');
    t.diagnostic(`peak RSS of the agent with three ${HUGE / 1024 / 1024} MB publishes, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}: ${peak} MB`);
  });
}
