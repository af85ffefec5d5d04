// Test helper, a Sparkplug B edge node in its own process: takes a broker URL and JSON commands on stdin
// (one per line); publishes real Sparkplug B payloads (sparkplug-payload) and prints every NCMD/DCMD it
// receives, and a "done" line per command, as JSON lines on stdout.
//
//   node dist/test/helpers/edge-node.js <url> <group> <node> [--auto-rebirth] [--bdseq N]
//
// Commands: {"cmd":"birth","metrics":[{"name","alias","type","value"}],"devices":{"<id>":[...]}}
//   {"cmd":"data","device"?,"values":[[alias,value],...],"skip"?:n (seq numbers left out before it),
//    "byName"?:true (values keyed by name),"historical"?:true,"ts"?:ms}
//   {"cmd":"ddeath","device"} {"cmd":"ndeath","bdSeq"?:n (a stale one)} {"cmd":"restart"} (drops the
//   connection without DISCONNECT, so the broker sends the Will; reconnects with bdSeq + 1 and births again)
//   {"cmd":"quit"}. Every command may carry "id", echoed in its "done" line with the seq it used.

import { createInterface } from 'node:readline';
import mqtt, { type MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';
import type { UMetric } from 'sparkplug-payload/lib/sparkplugbpayload.js';

type BirthMetric = { name: string; alias?: number; type: UMetric['type']; value: unknown };
interface Command {
  cmd: string; id?: unknown; metrics?: BirthMetric[]; devices?: Record<string, BirthMetric[]>; device?: string;
  values?: [number | string, unknown][]; skip?: number; byName?: boolean; historical?: boolean; ts?: number; bdSeq?: number;
}

const [url, group, node] = process.argv.slice(2);
if (!url || !group || !node) {
  process.stderr.write('usage: edge-node <url> <group> <node> [--auto-rebirth] [--bdseq N]\n');
  process.exit(64);
}
const autoRebirth = process.argv.includes('--auto-rebirth');
const bdSeqArg = process.argv.indexOf('--bdseq');
let bdSeq = bdSeqArg > 0 ? Number(process.argv[bdSeqArg + 1]) : 0;
let seq = 0;
let birth: { metrics: BirthMetric[]; devices: Record<string, BirthMetric[]> } = { metrics: [], devices: {} };
const codec = sparkplug.get('spBv1.0')!;
const topic = (type: string, device?: string) => `spBv1.0/${group}/${type}/${node}${device ? `/${device}` : ''}`;
const print = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const nextSeq = () => {
  const s = seq;
  seq = (seq + 1) & 255;
  return s;
};

function deathPayload(n: number): Buffer {
  return Buffer.from(codec.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'Int64', value: n }] }));
}

async function connect(): Promise<MqttClient> {
  // Will = NDEATH with this connection's bdSeq, QoS 1, not retained (tck-id-payloads-ndeath-will-message-qos, -retain)
  const client = await mqtt.connectAsync(url!, {
    clean: true, reconnectPeriod: 0, will: { topic: topic('NDEATH'), payload: deathPayload(bdSeq), qos: 1, retain: false },
  });
  client.on('message', (t, payload, packet) => {
    const p = codec.decodePayload(payload);
    const metrics = (p.metrics ?? []).map((m) => ({ name: m.name, value: typeof m.value === 'object' && m.value !== null ? String(m.value) : m.value }));
    print({ event: t.includes('/DCMD/') ? 'dcmd' : 'ncmd', topic: t, qos: packet.qos, retain: packet.retain, hasSeq: p.seq !== undefined, metrics });
    if (autoRebirth && metrics.some((m) => m.name === 'Node Control/Rebirth' && m.value === true)) {
      void publishBirth(client).then(() => print({ event: 'rebirthed', bdSeq }));
    }
  });
  await client.subscribeAsync([topic('NCMD'), `${topic('DCMD')}/+`], { qos: 1 });
  return client;
}

async function publish(client: MqttClient, t: string, payload: object): Promise<void> {
  await client.publishAsync(t, Buffer.from(codec.encodePayload(payload)), { qos: 0, retain: false });
}

/** NBIRTH (seq 0, bdSeq, 'Node Control/Rebirth' false) and then every DBIRTH (tck-id-payloads-dbirth-order). */
async function publishBirth(client: MqttClient): Promise<number> {
  const now = Date.now();
  seq = 0;
  const s = nextSeq();
  await publish(client, topic('NBIRTH'), {
    timestamp: now, seq: s,
    metrics: [
      { name: 'bdSeq', type: 'Int64', value: bdSeq, timestamp: now },
      { name: 'Node Control/Rebirth', type: 'Boolean', value: false, timestamp: now },
      ...birth.metrics.map((m) => ({ ...m, timestamp: now }) as UMetric),
    ],
  });
  for (const [device, metrics] of Object.entries(birth.devices)) {
    await publish(client, topic('DBIRTH', device), { timestamp: now, seq: nextSeq(), metrics: metrics.map((m) => ({ ...m, timestamp: now }) as UMetric) });
  }
  return s;
}

function typeOf(device: string | undefined, key: number | string): UMetric['type'] {
  const defs = device ? birth.devices[device] ?? [] : birth.metrics;
  return defs.find((m) => m.alias === key || m.name === key)?.type ?? 'Double';
}

async function run(client: MqttClient, c: Command): Promise<MqttClient> {
  const now = c.ts ?? Date.now();
  let used: number | null = null;
  switch (c.cmd) {
    case 'birth':
      birth = { metrics: c.metrics ?? [], devices: c.devices ?? {} };
      used = await publishBirth(client);
      break;
    case 'data': {
      seq = (seq + (c.skip ?? 0)) & 255;
      used = nextSeq();
      const metrics = (c.values ?? []).map(([key, value]) => ({
        ...(c.byName ? { name: String(key) } : { alias: Number(key) }),
        type: typeOf(c.device, key), value, timestamp: now, ...(c.historical ? { isHistorical: true } : {}),
      }) as UMetric);
      await publish(client, topic(c.device ? 'DDATA' : 'NDATA', c.device), { timestamp: now, seq: used, metrics });
      break;
    }
    case 'ddeath':
      used = nextSeq();
      await publish(client, topic('DDEATH', c.device), { timestamp: now, seq: used });
      break;
    case 'ndeath':
      await client.publishAsync(topic('NDEATH'), deathPayload(c.bdSeq ?? bdSeq), { qos: 1, retain: false });
      break;
    case 'restart':
      await client.endAsync(true); // no DISCONNECT: the broker publishes the Will (NDEATH with the old bdSeq)
      bdSeq = (bdSeq + 1) & 255; // tck-id-topics-nbirth-bdseq-increment
      client = await connect();
      used = await publishBirth(client);
      break;
    case 'quit':
      await client.endAsync();
      print({ event: 'done', id: c.id, cmd: c.cmd });
      process.exit(0);
      break;
    default:
      print({ event: 'error', id: c.id, message: `unknown command ${c.cmd}` });
      return client;
  }
  print({ event: 'done', id: c.id, cmd: c.cmd, seq: used, bdSeq });
  return client;
}

let client = await connect();
print({ event: 'ready', bdSeq });
let chain = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    try {
      client = await run(client, JSON.parse(line) as Command);
    } catch (err) {
      print({ event: 'error', message: (err as Error).message });
    }
  });
});
process.stdin.on('end', () => void chain.then(() => client.endAsync()).then(() => process.exit(0)));
