// Routing a message to the models that take it: MQTT's own filter matching (section 4.7), and the router
// that gives, per topic, every model whose subscriptions match (cached per topic, bounded).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRouter, type Route } from '../../agent/infer/predict.js';
import { topicMatches } from '../../agent/ingest/topic.js';

test('topic filters match as MQTT says: + one whole level, # the rest including none, $ topics not by a leading wildcard', { timeout: 10000 }, () => {
  const cases: [string, string, boolean][] = [
    ['plant/+/bearing', 'plant/press-1/bearing', true],
    ['plant/+/bearing', 'plant/press-1/spindle', false],
    ['plant/+/bearing', 'plant/press-1/bearing/x', false],
    ['plant/+/bearing', 'plant//bearing', true],
    ['plant/#', 'plant', true],
    ['plant/#', 'plant/a/b/c', true],
    ['plant/#', 'plants/a', false],
    ['#', 'anything/at/all', true],
    ['+/+', 'a/b', true],
    ['+/+', 'a', false],
    ['+', '/a', false],
    ['+/a', '/a', true],
    ['#', '$SYS/broker/uptime', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['plant/press-1/bearing', 'plant/press-1/bearing', true],
    ['plant/press-1/bearing', 'Plant/press-1/bearing', false],
  ];
  for (const [filter, topic, expected] of cases) assert.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`);
});

test('the router gives every model whose filters match (shared subscriptions by their filter), none for a topic no model takes; its cache stays bounded', { timeout: 10000 }, () => {
  const route = (filters: string[]) => ({ filters, resultTopic: 'r', slot: null }) as unknown as Route;
  const routeOf = createRouter([route(['plant/+/bearing']), route(['plant/+/bearing', 'line/+/spindle']), route(['line/#'])], 4);
  assert.deepEqual(routeOf('plant/p1/bearing'), [0, 1]);
  assert.deepEqual(routeOf('line/l2/spindle'), [1, 2]);
  assert.deepEqual(routeOf('line/l2/coolant'), [2]);
  assert.deepEqual(routeOf('legacy/p1/bearing'), []);
  for (let i = 0; i < 20; i++) assert.deepEqual(routeOf(`plant/p${i}/bearing`), [0, 1], 'the same answer past the cache size');
  // A shared subscription delivers messages on the topics of its filter.
  const shared = createRouter([route(['$share/line3/plant/+/bearing']), route(['$queue/line/#'])]);
  assert.deepEqual(shared('plant/p1/bearing'), [0]);
  assert.deepEqual(shared('line/l2/spindle'), [1]);
  assert.deepEqual(shared('$share/line3/plant/p1/bearing'), []);
});
