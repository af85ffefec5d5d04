// Crash safety: a QoS 1 stream, the agent process killed with SIGKILL in the middle, a restart:
// every reading the broker took has exactly one prediction row (none lost, none twice).
// Deterministic: a first part is published (and acknowledged by the broker), the agent dies while
// storing it, and the rest is published only after the kill.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { join } from 'node:path';
import {
  agentConfig, countRows, mqttClient, publishSequence, runUntilStored, spawnAgent, startMosquitto, tempDir, waitFor, writeConfig,
} from '../helpers/parts.js';

const N = 5000;
/** The first part, published before the kill. */
const FIRST = 2000;
/** EDGE_AGENT_TEST_KILL_AFTER_INBOX: well below FIRST, so the kill after an inbox commit is certain. */
const KILL_AT_INBOX = 700;

async function crashScenario(t: TestContext, killAfterInbox: boolean, dedupWindow = 20000) {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  const config = writeConfig(dir, agentConfig({
    url: broker.url, dbPath, mqtt: { url: broker.url, clientId: 'edge-agent-crash-test', reconnectMinMs: 100 },
    ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }], dedupWindow },
  }));

  const first = spawnAgent(t, config, killAfterInbox ? { EDGE_AGENT_TEST_KILL_AFTER_INBOX: String(KILL_AT_INBOX) } : {});
  await first.waitForLog('subscribed');

  const gateway = await mqttClient(t, broker.url, { clientId: 'gateway-crash-test' });
  const firstPart = publishSequence(gateway, 'plant/press-1/bearing', FIRST);
  if (!killAfterInbox) {
    await waitFor('the agent to store some predictions', () => countRows(dbPath).predictions >= 300);
    first.proc.kill('SIGKILL');
  }
  // With the hook the agent kills itself once its inbox writes reach KILL_AT_INBOX, before that group's PUBACKs leave.
  const killed = await first.exited;
  assert.equal(killed.signal, 'SIGKILL');
  const atKill = countRows(dbPath);
  await firstPart.done; // the broker has acknowledged the first part to the gateway and keeps it for the agent's session
  await publishSequence(gateway, 'plant/press-1/bearing', N, 50, 5, FIRST).done; // the rest, after the kill
  assert.ok(atKill.predictions > 0 && atKill.predictions < N, `the kill landed mid-stream (${atKill.predictions} stored of ${N})`);

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
  const stopped = second.logs.find((l) => l.msg === 'agent stopped');
  assert.ok(stopped, 'logged "agent stopped"');
  const duplicates = Number(stopped.duplicates);
  const duplicateLines = second.logs.filter((l) => l.msg === 'redelivered message already stored; acknowledged again').length;
  t.diagnostic(`at kill: ${atKill.predictions} predictions, ${atKill.inbox} inbox rows; replayed at restart: ${replayed}; redeliveries recognised: ${duplicates} (${duplicateLines} log lines)`);
  return { atKill, duplicates, duplicateLines, replayed };
}

test('kill -9 in the middle of a QoS 1 stream: after restart every reading is stored exactly once', { timeout: 180000 }, async (t) => {
  await crashScenario(t, false);
});

test('killed after the inbox write but before the PUBACK: the redelivery is recognised, stored once', { timeout: 180000 }, async (t) => {
  // The broker never got the PUBACKs of the last group, so it redelivers (DUP) messages the inbox already
  // holds. The dedup window is smaller than the rows stored before the kill: the keys that matter must
  // still be in it.
  const { atKill, duplicates, duplicateLines, replayed } = await crashScenario(t, true, 300);
  // Which messages come back is the broker's business; what the store shows is ours: every one the
  // agent recognised was one it already held at the kill (and none is stored twice, above).
  assert.ok(duplicates >= 1, `the redelivered messages were recognised (${duplicates})`);
  assert.ok(duplicates <= atKill.predictions + atKill.inbox, `no more redeliveries (${duplicates}) than rows held at the kill (${atKill.predictions + atKill.inbox})`);
  assert.ok(atKill.inbox >= 1 && replayed === atKill.inbox, `the unprocessed inbox rows (${atKill.inbox}) were replayed (${replayed})`);
  // Rate-limited: one line per 10 s, however many redeliveries arrive in the burst after the reconnect.
  assert.ok(duplicateLines >= 1 && duplicateLines <= 2, `redelivery log lines: ${duplicateLines} for ${duplicates} redeliveries`);
});
