// Readiness: the agent says "agent ready" only once the broker has acknowledged its subscriptions; before
// anything else, it limits V8's heap growth.
// (mosquitto 2.0 grants subscriptions its ACL denies and filters delivery instead, so a refused SUBACK
// cannot be produced with it here.)

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfig, spawnAgent, startMosquitto, tempDir, writeConfig } from '../helpers/parts.js';

test('"agent ready" comes after the broker granted the subscriptions', { timeout: 60_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db') })));
  const ready = await agent.waitForLog('agent ready');
  assert.deepEqual(ready.models, ['bearing-health@1.0.0']);
  const order = agent.logs.map((l) => l.msg);
  assert.ok(order.indexOf('subscribed') >= 0 && order.indexOf('subscribed') < order.indexOf('agent ready'), order.join(' | '));
  assert.ok(order.indexOf('agent started') < order.indexOf('agent ready'));
  // Set before the worker threads start (agent/heap.ts; its effect: test/agent/heap.test.ts).
  assert.equal(agent.logs.find((l) => l.msg === 'heap growth limited')?.heapGrowingPercent, 50);
  assert.ok(order.indexOf('heap growth limited') < order.indexOf('agent started'));
});
