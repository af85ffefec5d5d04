// Ingest, Sparkplug B wire level: takes a spBv1.0 topic and its protobuf payload; gives the topic's parts,
// the payload's seq/timestamp/metrics with every protobuf Long made a plain number (or an exact decimal
// string past 2^53), and the NCMD rebirth request. No state: sparkplug.ts keeps the sessions.
//
// Decoding uses sparkplug-payload's generated protobuf class directly, not its decodePayload(): that one
// reads a metric's value through the metric's own datatype, and a DATA metric normally has none (the spec
// says DATA SHOULD NOT repeat it, tck-id-payloads-metric-datatype-not-req), so every such value came out
// null. It also reads UInt32 as a signed int and decodes every DataSet/Template of a message even when
// nothing maps them. Here the value is read by the datatype its birth declared.

import sparkplugPayload from 'sparkplug-payload';
import protoRoot from 'sparkplug-payload/lib/sparkplugPayloadProto.js';

const PayloadProto = protoRoot.org.eclipse.tahu.protobuf.Payload;
// Each uint64 field's prototype default is its own Long object: identity with it means the message did not set the field.
const NO_ALIAS: unknown = PayloadProto.Metric.prototype.alias;
const NO_METRIC_TS: unknown = PayloadProto.Metric.prototype.timestamp;
const NO_SEQ: unknown = PayloadProto.prototype.seq;
const NO_TS: unknown = PayloadProto.prototype.timestamp;
const own = (o: object, key: string) => Object.prototype.hasOwnProperty.call(o, key);

export const NAMESPACE = 'spBv1.0';
/** The metric a rebirth request writes (never aliased: tck-id-operational-behavior-data-commands-rebirth-name-aliases). */
export const REBIRTH_METRIC = 'Node Control/Rebirth';

export type MessageType = 'NBIRTH' | 'NDEATH' | 'NDATA' | 'NCMD' | 'DBIRTH' | 'DDEATH' | 'DDATA' | 'DCMD';
export type SparkplugTopic =
  | { kind: 'node' | 'device'; type: MessageType; group: string; node: string; device: string }
  | { kind: 'state'; hostId: string };

const NODE_TYPES = new Set(['NBIRTH', 'NDEATH', 'NDATA', 'NCMD']);
const DEVICE_TYPES = new Set(['DBIRTH', 'DDEATH', 'DDATA', 'DCMD']);

/**
 * spBv1.0/<group>/<type>/<node>[/<device>] (tck-id-topic-structure, tck-id-topic-structure-namespace-device-id-associated-message-types,
 * ...-non-associated-message-types) or spBv1.0/STATE/<host_id> (tck-id-host-topic-phid-birth-topic); else a problem.
 */
export function parseTopic(topic: string): SparkplugTopic | string {
  const parts = topic.split('/');
  if (parts[0] !== NAMESPACE) return `topic ${JSON.stringify(topic)} does not start with ${NAMESPACE}/`;
  if (parts.length === 3 && parts[1] === 'STATE' && parts[2]) return { kind: 'state', hostId: parts[2] };
  const [, group, type, node, device] = parts;
  if (!group || !type || !node) return `topic ${JSON.stringify(topic)} is not spBv1.0/<group>/<type>/<node>[/<device>]`;
  if (parts.length === 4 && NODE_TYPES.has(type)) return { kind: 'node', type: type as MessageType, group, node, device: '' };
  if (parts.length === 5 && device && DEVICE_TYPES.has(type)) return { kind: 'device', type: type as MessageType, group, node, device };
  return `topic ${JSON.stringify(topic)}: ${type} with ${parts.length - 3} id level(s) is not a Sparkplug B message type`;
}

interface LongBits { low: number; high: number }

/** The fields of a decoded Metric read here. protobufjs leaves a field the message did not set at its prototype's default. */
export interface WireMetric {
  name: string; alias: number | LongBits; timestamp: number | LongBits; datatype: number; isHistorical: boolean; isNull: boolean;
  intValue: number; longValue: number | LongBits; floatValue: number; doubleValue: number; booleanValue: boolean; stringValue: string;
}

/** A protobuf 64-bit value: a number when exact (|v| <= 2^53 - 1), else its exact decimal string (JSON-safe, unlike bigint). */
export function longValue(v: number | LongBits, signed: boolean): number | string {
  if (typeof v === 'number') return v;
  const n = (signed ? v.high : v.high >>> 0) * 4294967296 + (v.low >>> 0);
  if (Number.isSafeInteger(n)) return n;
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return (signed ? BigInt.asIntN(64, bits) : bits).toString();
}

/** A timestamp, alias or seq (uint64 on the wire): a number, or the decimal string past 2^53. */
const ulong = (v: number | LongBits) => longValue(v, false);

/** Sparkplug B datatype numbers (Sparkplug 3.0 section 6.4.16). */
export const DataType = { Int8: 1, Int16: 2, Int32: 3, Int64: 4, UInt8: 5, UInt16: 6, UInt32: 7, UInt64: 8, Float: 9, Double: 10, Boolean: 11, String: 12, DateTime: 13, Text: 14, UUID: 15, DataSet: 16, Bytes: 17, File: 18, Template: 19 } as const;

/** The value fields of a Metric, by name, for the rare path (a value in another field than its datatype's). */
const VALUE_FIELDS = ['intValue', 'longValue', 'floatValue', 'doubleValue', 'booleanValue', 'stringValue', 'bytesValue', 'datasetValue', 'templateValue', 'extensionValue'] as const;

/**
 * A metric's value read by `datatype` (its own, else its birth's): integers and floats as numbers, 64-bit
 * integers as numbers when exact else decimal strings, Boolean/String as such, is_null as null. Values a
 * model cannot take (DataSet, Template, Bytes, File) become the text "<DataSet>" etc.: the quality gate
 * rejects them as not a number, and they stay JSON-serialisable.
 */
export function metricValue(m: WireMetric, datatype: number): unknown {
  if (m.isNull) return null;
  switch (datatype) {
    case DataType.Int8: if (own(m, 'intValue')) return (m.intValue << 24) >> 24; break;
    case DataType.Int16: if (own(m, 'intValue')) return (m.intValue << 16) >> 16; break;
    case DataType.Int32: if (own(m, 'intValue')) return m.intValue | 0; break;
    case DataType.UInt8: case DataType.UInt16: if (own(m, 'intValue')) return m.intValue >>> 0; break;
    case DataType.UInt32: // the spec puts it in int_value; sparkplug-payload's encoder in long_value
      if (own(m, 'intValue')) return m.intValue >>> 0;
      if (own(m, 'longValue')) return longValue(m.longValue, false);
      break;
    case DataType.Int64: if (own(m, 'longValue')) return longValue(m.longValue, true); break;
    case DataType.UInt64: case DataType.DateTime: if (own(m, 'longValue')) return ulong(m.longValue); break;
    case DataType.Float: if (own(m, 'floatValue')) return m.floatValue; break;
    case DataType.Double: if (own(m, 'doubleValue')) return m.doubleValue; break;
    case DataType.Boolean: if (own(m, 'booleanValue')) return m.booleanValue; break;
    case DataType.String: case DataType.Text: case DataType.UUID: if (own(m, 'stringValue')) return m.stringValue; break;
  }
  return otherValue(m);
}

/** Off the hot path: a value in a field its datatype does not name, or a kind a model cannot take. */
function otherValue(m: WireMetric): unknown {
  for (const f of VALUE_FIELDS) {
    if (!own(m, f)) continue;
    switch (f) {
      case 'intValue': return m.intValue;
      case 'longValue': return longValue(m.longValue, false);
      case 'floatValue': return m.floatValue;
      case 'doubleValue': return m.doubleValue;
      case 'booleanValue': return m.booleanValue;
      case 'stringValue': return m.stringValue;
      case 'bytesValue': return '<Bytes>';
      case 'datasetValue': return '<DataSet>';
      case 'templateValue': return '<Template>';
      default: return '<Extension>';
    }
  }
  return null; // no value and no is_null: read as null, the quality gate calls it missing
}

export interface DecodedPayload {
  /** Payload timestamp (ms since epoch), null when absent. */
  timestamp: number | null;
  /** 0-255, null when absent (NDEATH, NCMD); -1 when present but out of range. */
  seq: number | null;
  metrics: WireMetric[];
}

/** Decodes a payload; a string names the problem (never throws). */
export function decodePayload(payload: Uint8Array): DecodedPayload | string {
  let p: InstanceType<typeof PayloadProto>;
  try {
    p = PayloadProto.decode(payload);
  } catch (err) {
    return `not a Sparkplug B protobuf payload: ${(err as Error).message}`;
  }
  let seq: number | null = null;
  if (p.seq !== NO_SEQ) {
    const s = ulong(p.seq);
    seq = typeof s === 'number' && s <= 255 ? s : -1;
  }
  const ts = p.timestamp === NO_TS ? null : ulong(p.timestamp);
  return { timestamp: typeof ts === 'number' ? ts : null, seq, metrics: p.metrics as unknown as WireMetric[] };
}

/** A metric's alias as a map key (uint64: a number, or a decimal string past 2^53); null when it has none. */
export function aliasKey(m: WireMetric): number | string | null {
  return m.alias === NO_ALIAS ? null : ulong(m.alias);
}

/** A metric's own timestamp in ms, null when absent. */
export function metricTimestamp(m: WireMetric): number | null {
  if (m.timestamp === NO_METRIC_TS) return null;
  const t = ulong(m.timestamp);
  return typeof t === 'number' ? t : null;
}

/** The metric's name, null when it has none (DATA by alias). */
export const metricName = (m: WireMetric): string | null => (m.name === '' ? null : m.name);

/** The bdSeq metric of a birth or death (tck-id-payloads-nbirth-bdseq, tck-id-payloads-ndeath-bdseq); null when absent. */
export function bdSeqOf(metrics: readonly WireMetric[]): number | null {
  for (const m of metrics) {
    if (m.name !== 'bdSeq') continue;
    const v = own(m, 'longValue') ? longValue(m.longValue, false) : own(m, 'intValue') ? m.intValue : null;
    return typeof v === 'number' ? v : null;
  }
  return null;
}

/**
 * The rebirth request: NCMD with 'Node Control/Rebirth' = true, a timestamp, no seq and no alias
 * (tck-id-operational-behavior-data-commands-ncmd-rebirth-verb, -ncmd-rebirth-name, -ncmd-rebirth-value,
 * tck-id-payloads-ncmd-timestamp, tck-id-payloads-ncmd-seq). Published QoS 0, not retained (tck-id-payloads-ncmd-qos, -retain).
 */
export function rebirthCommand(group: string, node: string, now: number): { topic: string; payload: Buffer } {
  const encoded = sparkplugPayload.get(NAMESPACE)!.encodePayload({
    timestamp: now,
    metrics: [{ name: REBIRTH_METRIC, type: 'Boolean', value: true, timestamp: now }],
  });
  return { topic: `${NAMESPACE}/${group}/NCMD/${node}`, payload: Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength) };
}

/** A glob (* any run, ? one character) as an anchored RegExp. */
export function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}
