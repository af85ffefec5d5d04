// V8's heap growing factor (agent/heap.ts): node processes that keep 40 MB of strings alive and churn through
// 600 MB more that live long enough to reach the old generation; the heap's largest size with the agent's
// factor against V8's own (which may reach 4 with a heap limit of 4 GB, set here so that the machine's RAM does
// not decide it). The young generation at the systemd unit's 2 x 8 MB: Node 24's own grows far larger and would
// hide the old generation's growth in so short a run. Sizes, not times.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const heapModule = new URL('../../agent/heap.js', import.meta.url).href;

// argv[1]: 'limit' calls limitHeapGrowth(); argv[2]: how many 1 kB strings to churn through.
const CHURN = `
const v8 = await import('node:v8');
const { limitHeapGrowth } = await import(${JSON.stringify(heapModule)});
const set = process.argv[1] === 'limit' ? limitHeapGrowth() : 'not called';
const live = [];
for (let i = 0; i < 40000; i++) live.push(String(i).padStart(1000, 'x'));
const ring = new Array(40000);
let max = 0;
for (let i = 0; i < Number(process.argv[2]); i++) {
  ring[i % ring.length] = String(i).padStart(1000, 'y');
  if (i % 1000 === 0) max = Math.max(max, v8.getHeapStatistics().total_heap_size);
}
console.log(JSON.stringify({ set, maxMb: max / 2 ** 20, live: live.length }));
`;

function churn(nodeFlags: string[], call: 'limit' | 'leave', strings: number): { set: number | null | string; maxMb: number } {
  const { NODE_OPTIONS: _ignored, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--max-old-space-size=4096', '--max-semi-space-size=8', ...nodeFlags, '--input-type=module', '-e', CHURN, call, String(strings)], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { set: number | null | string; maxMb: number };
}

test('the agent\'s heap growing factor keeps the heap nearer its live objects than V8\'s own; a factor given to node wins', { timeout: 120_000 }, () => {
  const own = churn([], 'leave', 600_000);
  const limited = churn([], 'limit', 600_000);
  assert.equal(own.set, 'not called');
  assert.equal(limited.set, 50);
  assert.ok(limited.maxMb < 0.8 * own.maxMb, `heap at most ${limited.maxMb.toFixed(0)} MB with the agent's factor, ${own.maxMb.toFixed(0)} MB with V8's own`);
  // Given on node's command line (0: V8's own sizing), the agent leaves it alone.
  assert.equal(churn(['--heap-growing-percent=0'], 'limit', 0).set, null);
  assert.equal(churn(['--heap_growing_percent=300'], 'limit', 0).set, null);
});
