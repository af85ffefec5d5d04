// A flooding publisher, run as its own process (node dist/test/helpers/flood.js URL TOPIC COUNT LIMIT_MS):
// takes a broker, a topic, a message count and a time limit; publishes that many readings at QoS 0 as fast
// as the socket takes them, printing {"sent": n} lines as it goes and {"done": n} at the end (n: handed to
// the socket). Its own process, so the flood competes with the agent like a real gateway, not in the test's loop.

import mqtt from 'mqtt';
import { readingPayload } from './parts.js';

const [url, topic, countArg, limitArg] = process.argv.slice(2);
const count = Number(countArg);
const limitMs = Number(limitArg);
if (!url || !topic || !(count > 0) || !(limitMs > 0)) {
  process.stderr.write('usage: flood.js URL TOPIC COUNT LIMIT_MS\n');
  process.exit(2);
}

const CHUNK = 500;
const client = await mqtt.connectAsync(url, { clientId: `flood-${process.pid}`, reconnectPeriod: 0 });
const payload = readingPayload(1);
const end = Date.now() + limitMs;
let sent = 0;
while (sent < count && Date.now() < end) {
  const n = Math.min(CHUNK, count - sent);
  // QoS 0: the callback fires once the packet is written to the socket; the last of a chunk waits for the chunk.
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => client.publish(topic, payload, { qos: 0 }, () => resolve()))));
  sent += n;
  process.stdout.write(`${JSON.stringify({ sent })}\n`);
}
await client.endAsync();
process.stdout.write(`${JSON.stringify({ done: sent })}\n`);
