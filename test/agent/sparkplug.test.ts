// The Sparkplug B host application on its own: real payloads encoded with sparkplug-payload (and with its
// protobuf class where the library's encoder cannot make a spec-conformant DATA message), no broker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import sparkplug from 'sparkplug-payload';
import protoRoot from 'sparkplug-payload/lib/sparkplugPayloadProto.js';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import { createSparkplugHost, type BirthRecord, type SparkplugOptions } from '../../agent/ingest/sparkplug.js';

const codec = sparkplug.get('spBv1.0')!;
const Proto = protoRoot.org.eclipse.tahu.protobuf.Payload;
const enc = (p: UPayload) => Buffer.from(codec.encodePayload(p));
const T = 1_700_000_000_000;
const opts: SparkplugOptions = {
  metrics: [
    { metric: 'temp', feature: 'temp_c' },
    { device: 'press*', metric: 'pressure', feature: 'pressure_bar' },
    { metric: 'count', feature: 'count' },
  ],
};
const nbirth = (bdSeq = 1, extra: UMetric[] = []) => enc({
  timestamp: T, seq: 0,
  metrics: [
    { name: 'bdSeq', type: 'Int64', value: bdSeq },
    { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
    { name: 'temp', alias: 1, type: 'Double', value: 20, timestamp: T },
    { name: 'fan', alias: 2, type: 'Boolean', value: true, timestamp: T },
    ...extra,
  ],
});
const dbirth = (seq: number) => enc({ timestamp: T, seq, metrics: [{ name: 'pressure', alias: 10, type: 'Float', value: 1.5, timestamp: T }] });
const ndata = (seq: number, values: [number, number][], ts = T + seq) =>
  enc({ timestamp: ts, seq, metrics: values.map(([alias, value]) => ({ alias, type: 'Double', value, timestamp: ts })) });
const ndeath = (bdSeq: number) => enc({ timestamp: T, metrics: [{ name: 'bdSeq', type: 'Int64', value: bdSeq }] });

function born(options: Partial<SparkplugOptions> = {}, saved: BirthRecord[] = []) {
  const host = createSparkplugHost({ ...opts, ...options }, { saved });
  const births: BirthRecord[] = [];
  const b = host.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T);
  assert.equal(b.reject, undefined);
  births.push(b.birth!);
  const d = host.take('spBv1.0/plant/DBIRTH/gw1/press1', dbirth(1), T);
  assert.equal(d.reject, undefined);
  births.push(d.birth!);
  return { host, births, b, d };
}

function rebirthOf(cmd: { topic: string; payload: Buffer } | undefined) {
  assert.ok(cmd, 'a rebirth NCMD');
  const p = codec.decodePayload(cmd.payload);
  assert.equal(p.seq, undefined, 'NCMD carries no seq (tck-id-payloads-ncmd-seq)');
  assert.ok(p.timestamp !== undefined, 'NCMD carries a timestamp');
  assert.deepEqual(p.metrics?.map((m) => [m.name, m.alias, m.value]), [['Node Control/Rebirth', undefined, true]]);
  return cmd.topic;
}

test('births and DATA by alias give samples named by feature, on the asset templates; unmapped metrics are left out', { timeout: 10000 }, () => {
  const { host, b, d } = born();
  assert.deepEqual(b.samples, [{ asset: 'gw1', feature: 'temp_c', value: 20, ts: T }]);
  assert.deepEqual(d.samples, [{ asset: 'gw1.press1', feature: 'pressure_bar', value: 1.5, ts: T }]);
  const o = host.take('spBv1.0/plant/NDATA/gw1', ndata(2, [[1, 21.5], [2, 0]]), T + 5);
  assert.deepEqual(o.samples, [{ asset: 'gw1', feature: 'temp_c', value: 21.5, ts: T + 2 }]);
  const dd = host.take('spBv1.0/plant/DDATA/gw1/press1', enc({ timestamp: T + 3, seq: 3, metrics: [{ alias: 10, type: 'Float', value: 2.25 }] }), T + 5);
  assert.deepEqual(dd.samples, [{ asset: 'gw1.press1', feature: 'pressure_bar', value: 2.25, ts: T + 3 }], 'no metric timestamp: the payload timestamp');
  const templated = createSparkplugHost({ ...opts, asset: { node: '{group}:{node}', device: '{device}' } }, { saved: [] });
  assert.equal(templated.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T).samples[0]!.asset, 'plant:gw1');
  assert.equal(templated.take('spBv1.0/plant/DBIRTH/gw1/press1', dbirth(1), T).samples[0]!.asset, 'press1');
  assert.deepEqual(host.status().counters, { messages: 4, samples: 4, historical: 0, rejected: 0, ignored: 0, refusedNodes: 0 });
});

test('DATA without a datatype is read by its birth; 64-bit values stay exact; is_null is null', { timeout: 10000 }, () => {
  const host = createSparkplugHost({ metrics: ['i8', 'i32', 'u32', 'i64', 'u64', 'big', 'f', 'n', 'ds'].map((m) => ({ metric: m, feature: m })) }, { saved: [] });
  const types = { i8: 'Int8', i32: 'Int32', u32: 'UInt32', i64: 'Int64', u64: 'UInt64', big: 'UInt64', f: 'Float', n: 'Double', ds: 'DataSet' } as const;
  const birthMetrics = Object.entries(types).map(([name, type], i) => ({
    name, alias: i + 1, type, value: type === 'DataSet' ? { numOfColumns: 1, columns: ['a'], types: ['Int32'], rows: [[1]] } : type === 'Float' ? 0.5 : 0,
  }) as UMetric);
  assert.equal(host.take('spBv1.0/g/NBIRTH/n', enc({ timestamp: T, seq: 0, metrics: birthMetrics }), T).reject, undefined);
  // As a spec-conformant node sends it: aliases only, no datatype (tck-id-payloads-metric-datatype-not-req).
  const M = Proto.Metric;
  const raw = Proto.encode(Proto.create({
    timestamp: T + 1, seq: 1,
    metrics: [
      M.create({ alias: 1, intValue: 0xfb }), // Int8 -5 (uint32 on the wire)
      M.create({ alias: 2, intValue: 0xffffff9c }), // Int32 -100
      M.create({ alias: 3, intValue: 3_000_000_000 }), // UInt32 past 2^31
      M.create({ alias: 4, longValue: '18446744073709551611' as unknown as number }), // Int64 -5 as uint64
      M.create({ alias: 5, longValue: 42 }),
      M.create({ alias: 6, longValue: '18446744073709551615' as unknown as number }), // UInt64 past 2^53
      M.create({ alias: 7, floatValue: 0.25 }),
      M.create({ alias: 8, isNull: true }),
      M.create({ alias: 9, datasetValue: { numOfColumns: 1, columns: ['a'], types: [3], rows: [] } }),
    ],
  })).finish();
  assert.equal(codec.decodePayload(raw).metrics![0]!.value, null, "sparkplug-payload's own decoder loses such values");
  const o = host.take('spBv1.0/g/NDATA/n', Buffer.from(raw), T + 1);
  assert.equal(o.reject, undefined);
  assert.deepEqual(Object.fromEntries(o.samples.map((s) => [s.feature, s.value])), {
    i8: -5, i32: -100, u32: 3_000_000_000, i64: -5, u64: 42, big: '18446744073709551615', f: 0.25, n: null, ds: '<DataSet>',
  });
  assert.ok(o.samples.every((s) => s.ts === T + 1));
});

test('an undeclared alias rejects the DATA and asks one rebirth; inside the interval the next waits for tick', { timeout: 10000 }, () => {
  const { host } = born({ rebirthMinIntervalMs: 30000 });
  const o = host.take('spBv1.0/plant/NDATA/gw1', ndata(2, [[1, 22], [99, 1]]), T + 10);
  assert.equal(o.reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  assert.match(o.reject!.detail, /alias 99 was not declared/);
  assert.deepEqual(o.samples, [], 'nothing from a message the birth does not explain');
  assert.equal(rebirthOf(o.rebirth), 'spBv1.0/plant/NCMD/gw1');
  const again = host.take('spBv1.0/plant/DDATA/gw1/nodevice', ndata(3, [[1, 1]]), T + 20);
  assert.equal(again.reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  assert.equal(again.rebirth, undefined, 'rate-limited');
  assert.deepEqual(host.tick(T + 29_000).rebirths, []);
  const later = host.tick(T + 30_010).rebirths;
  assert.equal(later.length, 1);
  rebirthOf(later[0]);
  assert.deepEqual(host.tick(T + 90_000).rebirths, [], 'once');
  const s = host.status().nodes[0]!;
  assert.deepEqual([s.rebirths, s.rebirthsSuppressed, s.rebirthPending], [2, 1, false]);
});

test('DATA or DBIRTH before any NBIRTH is rejected and asks a rebirth', { timeout: 10000 }, () => {
  const host = createSparkplugHost(opts, { saved: [] });
  const o = host.take('spBv1.0/plant/NDATA/gw9', ndata(5, [[1, 1]]), T);
  assert.equal(o.reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  assert.equal(rebirthOf(o.rebirth), 'spBv1.0/plant/NCMD/gw9');
  assert.equal(host.take('spBv1.0/plant/DBIRTH/gw9/press1', dbirth(6), T + 1).reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
});

test('seq: a gap filled within the reorder timeout costs nothing; one that is not counts lost and asks a rebirth', { timeout: 10000 }, () => {
  const { host } = born({ reorderTimeoutMs: 2000, rebirthMinIntervalMs: 0 });
  for (const s of [2, 4]) assert.equal(host.take('spBv1.0/plant/NDATA/gw1', ndata(s, [[1, s]]), T + s).rebirth, undefined);
  const filled = host.take('spBv1.0/plant/NDATA/gw1', ndata(3, [[1, 3]]), T + 100);
  assert.deepEqual(filled.samples.map((x) => x.value), [3], 'a late message inside the window is used');
  assert.deepEqual(host.tick(T + 5000).rebirths, []);
  host.take('spBv1.0/plant/NDATA/gw1', ndata(7, [[1, 7]]), T + 6000); // 5 and 6 skipped
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', ndata(3, [[1, 3]]), T + 6001).ignored?.includes('seq 3'), true, 'a duplicate is dropped');
  assert.deepEqual(host.tick(T + 7999).rebirths, []);
  const r = host.tick(T + 8000).rebirths;
  assert.equal(r.length, 1);
  rebirthOf(r[0]);
  let s = host.status().nodes[0]!;
  assert.deepEqual([s.gaps, s.reordered, s.late, s.lost, s.lastSeq], [2, 1, 1, 2, 7]);
  // A birth restarts the count; wrapping 255 -> 0 is in order.
  host.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T + 9000);
  for (let i = 1, q = 1; i <= 260; i++, q = (q + 1) & 255) host.take('spBv1.0/plant/NDATA/gw1', ndata(q, [[1, i]]), T + 9000 + i);
  host.tick(T + 20000);
  s = host.status().nodes[0]!;
  assert.deepEqual([s.gaps, s.lost, s.births, s.rebirths], [2, 2, 2, 1]);
});

test('NDEATH of an older bdSeq is ignored; the matching one takes node and devices offline; DDEATH one device', { timeout: 10000 }, () => {
  const { host } = born();
  assert.equal(host.take('spBv1.0/plant/DDEATH/gw1/press1', enc({ timestamp: T, seq: 2 }), T).offline?.join(), 'gw1.press1');
  assert.equal(host.take('spBv1.0/plant/DDATA/gw1/press1', ndata(3, [[10, 1]]), T).reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  host.take('spBv1.0/plant/DBIRTH/gw1/press1', dbirth(4), T);
  const stale = host.take('spBv1.0/plant/NDEATH/gw1', ndeath(0), T);
  assert.match(stale.ignored ?? '', /bdSeq 0/);
  assert.equal(stale.offline, undefined);
  const death = host.take('spBv1.0/plant/NDEATH/gw1', ndeath(1), T);
  assert.deepEqual(death.offline, ['gw1', 'gw1.press1']);
  assert.equal(host.take('spBv1.0/plant/NDEATH/gw1', ndeath(1), T).ignored?.includes('not online'), true, 'the Will after a sent NDEATH');
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', ndata(5, [[1, 1]]), T).reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  assert.equal(host.status().nodes[0]!.online, false);
});

test('historical metrics go apart; restore rebuilds state without births, rebirths or counts', { timeout: 10000 }, () => {
  const { host } = born();
  const h = host.take('spBv1.0/plant/NDATA/gw1', enc({ timestamp: T, seq: 2, metrics: [{ alias: 1, type: 'Double', value: 5, timestamp: T - 60000, isHistorical: true }] }), T);
  assert.deepEqual([h.samples, h.historical], [[], [{ asset: 'gw1', feature: 'temp_c', value: 5, ts: T - 60000 }]]);

  const replay = createSparkplugHost(opts, { saved: [] });
  const rb = replay.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T, true);
  assert.equal(rb.birth, undefined);
  assert.equal(rb.samples.length, 1, 'samples rebuild the join');
  const bad = replay.take('spBv1.0/plant/NDATA/gw1', ndata(9, [[77, 1]]), T, true);
  assert.equal(bad.rebirth, undefined);
  assert.deepEqual(replay.status().counters, { messages: 0, samples: 0, historical: 0, rejected: 0, ignored: 0, refusedNodes: 0 });
});

test('saved births give the alias maps back after a restart; the first DATA asks one rebirth; an older device session is not loaded', { timeout: 10000 }, () => {
  const { births } = born();
  const json: BirthRecord[] = JSON.parse(JSON.stringify(births));
  const oldDevice: BirthRecord = { ...json[1]!, key: 'plant/gw1/old', device: 'old', nodeBirthAt: T - 1 };
  const host = createSparkplugHost(opts, { saved: [...json, oldDevice] });
  const first = host.take('spBv1.0/plant/DDATA/gw1/press1', ndata(40, [[10, 3]]), T + 100);
  assert.deepEqual(first.samples.map((s) => [s.asset, s.feature, s.value]), [['gw1.press1', 'pressure_bar', 3]]);
  rebirthOf(first.rebirth);
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', ndata(41, [[1, 3]]), T + 200).rebirth, undefined);
  assert.equal(host.take('spBv1.0/plant/DDATA/gw1/old', ndata(42, [[10, 3]]), T + 300).reject?.code, 'REJECT_SPARKPLUG_NO_BIRTH');
  assert.equal(host.take('spBv1.0/plant/NDEATH/gw1', ndeath(1), T + 400).offline?.length, 2, 'bdSeq kept across the restart');
});

test('a malformed DATA (not protobuf, or a seq beyond 255) is rejected and asks one rebirth, rate-limited like the others', { timeout: 10000 }, () => {
  const { host } = born({ rebirthMinIntervalMs: 30000 });
  const bad = host.take('spBv1.0/plant/NDATA/gw1', Buffer.from('not protobuf at all'), T + 10);
  assert.equal(bad.reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  assert.equal(rebirthOf(bad.rebirth), 'spBv1.0/plant/NCMD/gw1');
  const seq = host.take('spBv1.0/plant/DDATA/gw1/press1', enc({ timestamp: T, seq: 300, metrics: [] }), T + 20);
  assert.equal(seq.reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  assert.equal(seq.rebirth, undefined, 'inside the interval: remembered, not sent');
  assert.equal(host.tick(T + 30_020).rebirths.length, 1);
  // A malformed death asks nothing; neither does a replay.
  assert.equal(host.take('spBv1.0/plant/NDEATH/gw1', Buffer.from('junk'), T + 90_000).rebirth, undefined);
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', Buffer.from('junk'), T + 90_000, true).rebirth, undefined);
  assert.equal(host.status().nodes[0]?.rebirths, 2);
});

test('limits, bad topics, bad payloads and bad assets are rejected with a reason, never thrown', { timeout: 10000 }, () => {
  const host = createSparkplugHost({ ...opts, maxNodes: 1, maxMetricsPerNode: 4 }, { saved: [] });
  assert.equal(host.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T).reject, undefined);
  assert.equal(host.take('spBv1.0/plant/NBIRTH/gw2', nbirth(), T).reject?.code, 'REJECT_LIMIT');
  const big = host.take('spBv1.0/plant/NBIRTH/gw1', nbirth(1, [{ name: 'x', alias: 3, type: 'Int32', value: 1 }, { name: 'y', alias: 4, type: 'Int32', value: 1 }]), T);
  assert.equal(big.reject?.code, 'REJECT_LIMIT');
  assert.match(big.reject!.detail, /maxMetricsPerNode is 4/);
  assert.equal(host.take('spBv1.0/plant/DBIRTH/gw1/press1', dbirth(1), T).reject?.code, 'REJECT_LIMIT', 'the node has 4 metrics: a device makes 5');
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', Buffer.from('not protobuf at all'), T).reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1/extra', ndata(1, []), T).reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  assert.equal(host.take('other/plant/NDATA/gw1', ndata(1, []), T).reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  assert.equal(host.take('spBv1.0/plant/NDATA/gw1', enc({ timestamp: T, seq: 300, metrics: [] }), T).reject?.code, 'REJECT_SPARKPLUG_PAYLOAD');
  const dup = createSparkplugHost(opts, { saved: [] }).take('spBv1.0/plant/NBIRTH/gw1', nbirth(1, [{ name: 'dup', alias: 1, type: 'Int32', value: 1 }]), T);
  assert.match(dup.reject?.detail ?? '', /alias 1 is declared twice/);
  assert.equal(host.take('spBv1.0/plant/NCMD/gw1', enc({ timestamp: T, metrics: [] }), T).ignored?.includes('command'), true);
  const asset = createSparkplugHost({ ...opts, asset: { node: '{node}\u0001', device: '{device}' } }, { saved: [] });
  assert.equal(asset.take('spBv1.0/plant/NBIRTH/gw1', nbirth(), T).reject?.code, 'REJECT_BAD_ASSET');
  assert.throws(() => createSparkplugHost({ metrics: [] } as SparkplugOptions, { saved: [] }), /metrics/);
});

test('STATE: birth and Will share one timestamp; our own offline STATE is answered with the birth, until stateDeath', { timeout: 10000 }, () => {
  assert.equal(createSparkplugHost(opts, { saved: [] }).stateBirth(T), null, 'no hostId: no STATE');
  const host = createSparkplugHost({ ...opts, hostId: 'edge-agent-line3' }, { saved: [] });
  const s = host.stateBirth(T)!;
  assert.equal(s.topic, 'spBv1.0/STATE/edge-agent-line3');
  assert.deepEqual(JSON.parse(s.payload.toString()), { online: true, timestamp: T });
  assert.deepEqual(s.will, { topic: s.topic, payload: Buffer.from(JSON.stringify({ online: false, timestamp: T })) });
  const o = host.take(s.topic, s.will.payload, T + 5000);
  assert.deepEqual([o.state?.topic, JSON.parse(o.state!.payload.toString())], [s.topic, { online: true, timestamp: T }]);
  assert.ok(host.take(s.topic, s.payload, T).ignored);
  assert.ok(host.take('spBv1.0/STATE/scada', s.will.payload, T).ignored);
  const death = host.stateDeath(T + 9000)!;
  assert.deepEqual(JSON.parse(death.payload.toString()), { online: false, timestamp: T + 9000 });
  assert.equal(host.take(s.topic, death.payload, T + 9001).state, undefined);
});
