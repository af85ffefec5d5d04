// Crash safety: a QoS 1 stream, the agent process killed with SIGKILL in the middle, a restart:
// every reading the broker took has exactly one prediction row (none lost, none twice).

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { join } from 'node:path';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const N = 5000;


async function crashScenario(t: TestContext, killEnv: NodeJS.ProcessEnv, dedupWindow = 20000): Promise<{ duplicates: number; replayed: number }> {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-crash-test', reconnectMinMs: 100 },
    ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }], dedupWindow },
  }));

  const first = spawnAgent(t, config, killEnv);
  await first.waitForLog('subscribed');

  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-crash-test' });
  const publishing = publishSequence(gateway, 'plant/press-1/bearing', N);

  if (!killEnv.EDGE_AGENT_TEST_KILL_AFTER_INBOX) {
    await waitFor('the agent to store some predictions', () => countRows(dbPath).predictions >= 500);
    first.proc.kill('SIGKILL');
  }
  const killed = await first.exited;
  assert.equal(killed.signal, 'SIGKILL');
  const atKill = countRows(dbPath);
  assert.ok(atKill.predictions < N && publishing.published < N, `the kill landed mid-stream (stored ${atKill.predictions}, published ${publishing.published} of ${N})`);

  await publishing.done; // the broker has acknowledged all N to the gateway and queues them for the agent's session

  const second = await runUntilStored(t, config, dbPath, N);
  assert.deepEqual(second.exit, { code: 0, signal: null });

  const seqs = second.seqs;
  const seen = new Map<number, number>();
  for (const q of seqs) seen.set(q, (seen.get(q) ?? 0) + 1);
  const missing = Array.from({ length: N }, (_, i) => i).filter((q) => !seen.has(q));
  const twice = [...seen].filter(([, n]) => n > 1).map(([q]) => q);
  assert.deepEqual({ missing: missing.slice(0, 10), twice: twice.slice(0, 10) }, { missing: [], twice: [] });
  assert.equal(seqs.length, N);
  assert.deepEqual(countRows(dbPath), { predictions: N, deadLetters: 0, inbox: 0 });
  const replayed = Number(second.logs.find((l) => l.msg === 'replaying inbox rows left by an unclean stop')?.rows ?? 0);
  const duplicates = second.logs.filter((l) => l.msg === 'redelivered message already stored; acknowledged again').length;
  t.diagnostic(`at kill: ${atKill.predictions} predictions, ${atKill.inbox} inbox rows; replayed at restart: ${replayed}; duplicates suppressed: ${duplicates}`);
  return { duplicates, replayed };
}

test('kill -9 in the middle of a QoS 1 stream: after restart every reading is stored exactly once', async (t) => {
  await crashScenario(t, {});
});

test('killed after the inbox write but before the PUBACK: the redelivery is recognised, stored once', async (t) => {
  // The broker never got the PUBACKs, so it redelivers (DUP) messages the inbox already holds. The dedup
  // window is smaller than the rows stored before the kill: the keys that matter must still be in it.
  const { duplicates, replayed } = await crashScenario(t, { EDGE_AGENT_TEST_KILL_AFTER_INBOX: '700' }, 300);
  assert.ok(duplicates >= 1, `the redelivered message was recognised (${duplicates})`);
  assert.ok(replayed >= 1, `the unprocessed inbox rows were replayed (${replayed})`);
});
