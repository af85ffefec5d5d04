// Benchmark helper, a Sparkplug B edge node in its own process that only publishes: takes a broker URL and a
// mode; gives an NBIRTH, then NDATA by alias (six bearing features and a `cycle` trigger), all encoded before
// the first publish so encoding costs nothing while it sends. QoS 0, as Sparkplug B sends DATA.
//
//   node dist/test/bench/spb-publisher.js <url> <node> backlog <n>     birth + n NDATA as fast as the socket takes them
//   node dist/test/bench/spb-publisher.js <url> <node> live <rate> <sec>   birth, then on a "go" line on stdin
//       rate × sec NDATA paced; prints {"sentAt":[...]} (ms since epoch, sub-ms) for matching results by order

import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import sparkplug from 'sparkplug-payload';
import type { UMetric } from 'sparkplug-payload/lib/sparkplugbpayload.js';

const SPB_GROUP = 'bench';
const SPB_FEATURES = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;
const VALUES = [0.4, 1.4, 3.0, 3.5, 45, 1500];

const codec = sparkplug.get('spBv1.0')!;
const encode = (p: object) => Buffer.from(codec.encodePayload(p));
const epochNow = () => performance.timeOrigin + performance.now();

function birth(now: number): Buffer {
  const metrics: UMetric[] = [
    { name: 'bdSeq', type: 'Int64', value: 0, timestamp: now },
    { name: 'Node Control/Rebirth', type: 'Boolean', value: false, timestamp: now },
    ...SPB_FEATURES.map((f, k) => ({ name: f, alias: k + 1, type: 'Double', value: VALUES[k], timestamp: now }) as UMetric),
    { name: 'cycle', alias: 7, type: 'Int32', value: 0, timestamp: now },
  ];
  return encode({ timestamp: now, seq: 0, metrics });
}

/** NDATA number i (seq i+1 mod 256): every feature and the trigger by alias, each message 1 ms newer than the last. */
function data(i: number, t0: number): Buffer {
  const ts = t0 + 1 + i;
  const metrics = SPB_FEATURES.map((_, k) => ({ alias: k + 1, type: 'Double', value: VALUES[k]! + (k === 5 ? i % 100 : 0), timestamp: ts }) as UMetric);
  metrics.push({ alias: 7, type: 'Int32', value: i + 1, timestamp: ts } as UMetric);
  return encode({ timestamp: ts, seq: (i + 1) & 255, metrics });
}

async function main(): Promise<void> {
  const [url, node, mode, a, b] = process.argv.slice(2);
  if (!url || !node || (mode !== 'backlog' && mode !== 'live')) throw new Error('usage: spb-publisher <url> <node> backlog <n> | live <rate> <sec>');
  const n = mode === 'backlog' ? Number(a) : Number(a) * Number(b);
  const t0 = Date.now();
  const payloads = Array.from({ length: n }, (_, i) => data(i, t0));
  const topic = `spBv1.0/${SPB_GROUP}/NDATA/${node}`;
  const client = await mqtt.connectAsync(url, { clean: true, reconnectPeriod: 0 });
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  await client.publishAsync(`spBv1.0/${SPB_GROUP}/NBIRTH/${node}`, birth(t0), { qos: 0 });
  if (mode === 'backlog') {
    for (let i = 0; i < n; i += 1000) await Promise.all(payloads.slice(i, i + 1000).map((p) => client.publishAsync(topic, p, { qos: 0 })));
  } else {
    process.stdout.write('{"event":"born"}\n');
    await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
    const rate = Number(a);
    const sentAt: number[] = [];
    const perTick = Math.max(1, Math.round(rate / 100));
    const start = performance.now();
    while (sentAt.length < n) {
      const due = Math.min(n, Math.floor(((performance.now() - start) / 1000) * rate) + perTick);
      while (sentAt.length < due) {
        sentAt.push(epochNow());
        client.publish(topic, payloads[sentAt.length - 1]!, { qos: 0 });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    process.stdout.write(`${JSON.stringify({ sentAt })}\n`);
  }
  await client.endAsync(); // DISCONNECT after the last PUBLISH: the broker has them all
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
