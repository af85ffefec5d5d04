// Ingest, sliding windows (payload): takes one MQTT message of signal samples and the window's options
// and shape; gives its asset, first timestamp, sample period and the samples (channels first), or the
// reason it is a dead letter. Pure: no state, no clock.
//
// The payload is a JSON object: { "ts": <ms since epoch of the first sample>, "dtMs"?: <ms between
// samples>, "<signal>": [v0, v1, ...] | v, ... } — one field per signal (options.signals, in the model's
// channel order), each an array of numbers of the same length k >= 1, or one number (k = 1). Sample i is
// at ts + i * dt, dt = the payload's dtMs, else options.periodMs; several samples need a dt.

import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import type { RejectReason } from '../errors.js';
import { compilePath, readPath } from './features.js';
import { topicLevelProblem } from './topic.js';

const pathString = z
  .string()
  .min(1)
  .regex(/^[^.]+(\.[^.]+)*$/, 'a dot path such as "acc.x" or "axes.0"');

/** The most signals (channels) a window reads. */
export const MAX_SIGNALS = 64;

export const windowOptionsSchema = z.strictObject({
  /** The payload field (a dot path) of each signal, in the model's channel order (its features' order): e.g. ["x", "y", "z"]. */
  signals: z.array(pathString).min(1).max(MAX_SIGNALS),
  /** New samples between two windows of an asset: 1 to the model's window length (input.window.length). Absent: the length (windows side by side). */
  hop: z.number().int().positive().optional(),
  /** Where the asset (machine) id comes from: a topic level (0 = first) or a payload field path, as in the payload mapping. */
  asset: z.union([z.strictObject({ topicLevel: z.number().int().nonnegative() }), z.strictObject({ field: pathString })]).default({ topicLevel: 1 }),
  /** The payload field with the first sample's timestamp, a number of ms since the epoch. */
  tsField: pathString.default('ts'),
  /** The payload field with the ms between samples; a payload without it uses periodMs. */
  dtField: pathString.default('dtMs'),
  /** The sample period in ms when a payload gives none. Without either, a message must hold one sample, and gaps are not detected. */
  periodMs: z.number().positive().optional(),
  /** A step from one sample to the next larger than gapFactor × dt restarts the asset's window (counted in gaps). */
  gapFactor: z.number().min(1).default(1.5),
  /** Assets with a window buffer; a new asset beyond it is refused (REJECT_LIMIT). Memory: about 4 × channels × length bytes each. */
  maxAssets: z.number().int().positive().max(1_000_000).default(1000),
  /** Samples in one message; more is refused (REJECT_LIMIT): with a small hop, one message could otherwise make very many windows. */
  maxSamplesPerMessage: z.number().int().positive().max(1_000_000).default(4096),
});

export type WindowOptions = z.infer<typeof windowOptionsSchema>;

/** What the model's manifest says a window is: its channels (the features, in order, with their valid ranges) and its length. */
export interface WindowShape {
  length: number;
  channels: readonly { name: string; min: number; max: number }[];
}

export type ReadSamples =
  | { ok: true; asset: string; ts: number; dt: number | null; count: number; values: Float64Array }
  | { ok: false; code: RejectReason; detail: string };

const MAX_ASSET_CHARS = 128;

/** Compiles the options once; gives the function that reads one message. */
export function createSampleReader(options: WindowOptions, shape: WindowShape) {
  const signals = options.signals.map((s) => ({ text: s, path: compilePath(s) }));
  const tsPath = compilePath(options.tsField);
  const dtPath = compilePath(options.dtField);
  const assetPath = 'field' in options.asset ? compilePath(options.asset.field) : null;
  const assetLevel = 'topicLevel' in options.asset ? options.asset.topicLevel : -1;
  const bad = (code: RejectReason, detail: string): ReadSamples => ({ ok: false, code, detail });

  function assetOf(topic: string, json: unknown): string | ReadSamples {
    let raw: unknown;
    if (assetPath) {
      raw = readPath(json, assetPath);
      if (typeof raw === 'number' && Number.isFinite(raw)) raw = String(raw);
      if (typeof raw !== 'string') return bad('REJECT_NO_ASSET', `asset field "${(options.asset as { field: string }).field}" is ${raw === undefined ? 'absent' : `not a string (${typeof raw})`}`);
    } else {
      raw = topic.split('/')[assetLevel];
      if (raw === undefined) return bad('REJECT_NO_ASSET', `topic "${topic}" has no level ${assetLevel}`);
    }
    const s = raw as string;
    const problem = topicLevelProblem(s, MAX_ASSET_CHARS);
    return problem ? bad('REJECT_BAD_ASSET', `asset id ${JSON.stringify(s.slice(0, 64))}${s.length > 64 ? '…' : ''} ${problem}`) : s;
  }

  return function read(topic: string, payload: Buffer): ReadSamples {
    if (!isUtf8(payload)) return bad('REJECT_NOT_UTF8', 'payload is not valid UTF-8');
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return bad('REJECT_MALFORMED_JSON', (err as Error).message);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      return bad('REJECT_NOT_OBJECT', `payload is a JSON ${json === null ? 'null' : Array.isArray(json) ? 'array' : typeof json}`);
    }
    const asset = assetOf(topic, json);
    if (typeof asset !== 'string') return asset;
    const ts = readPath(json, tsPath);
    if (typeof ts !== 'number' || !Number.isFinite(ts)) return bad('REJECT_WINDOW_SAMPLES', `timestamp field "${options.tsField}" is ${ts === undefined ? 'absent' : JSON.stringify(ts)}, expected ms since the epoch`);
    const dtRaw = readPath(json, dtPath);
    if (dtRaw !== undefined && !(typeof dtRaw === 'number' && dtRaw > 0 && Number.isFinite(dtRaw))) {
      return bad('REJECT_WINDOW_SAMPLES', `sample period field "${options.dtField}" is ${JSON.stringify(dtRaw)}, expected a number of ms above 0`);
    }
    const dt = (dtRaw as number | undefined) ?? options.periodMs ?? null;
    // Every signal the same number of samples: the first one sets it.
    const columns: unknown[] = [];
    let count = -1;
    for (let c = 0; c < signals.length; c++) {
      const s = signals[c]!;
      const v = readPath(json, s.path);
      if (v === undefined) return bad('REJECT_MISSING_FIELD', `feature ${shape.channels[c]?.name}: field "${s.text}" is absent`);
      const n = Array.isArray(v) ? v.length : 1;
      if (count === -1) count = n;
      if (n !== count) return bad('REJECT_WINDOW_SAMPLES', `field "${s.text}" has ${n} samples, field "${signals[0]!.text}" has ${count}: every signal needs the same number`);
      columns.push(v);
    }
    if (count === 0) return bad('REJECT_WINDOW_SAMPLES', `field "${signals[0]!.text}" is an empty array`);
    if (count > options.maxSamplesPerMessage) return bad('REJECT_LIMIT', `${count} samples in one message — the limit is windows.maxSamplesPerMessage ${options.maxSamplesPerMessage}`);
    if (count > 1 && dt === null) return bad('REJECT_WINDOW_SAMPLES', `${count} samples and no sample period: give "${options.dtField}" in the payload or windows.periodMs`);
    const values = new Float64Array(signals.length * count);
    for (let c = 0; c < signals.length; c++) {
      const col = columns[c];
      const ch = shape.channels[c]!;
      const text = signals[c]!.text;
      for (let i = 0; i < count; i++) {
        const v = Array.isArray(col) ? (col[i] as unknown) : col;
        const where = `feature ${ch.name}: field "${text}"${Array.isArray(col) ? ` sample ${i}` : ''}`;
        if (typeof v !== 'number') return bad('REJECT_WRONG_TYPE', `${where} is ${v === null ? 'null' : typeof v}, expected a number`);
        // 1e999 parses to Infinity; a double beyond float32 would reach the model as ±Infinity.
        if (!Number.isFinite(Math.fround(v))) return bad('REJECT_NOT_FINITE', `${where} is ${v}${Number.isFinite(v) ? ', beyond float32 (±3.4028234663852886e38)' : ''}`);
        if (v < ch.min || v > ch.max) return bad('REJECT_OUT_OF_RANGE', `${where}: ${v} is outside the valid range [${ch.min}, ${ch.max}]`);
        values[c * count + i] = v;
      }
    }
    return { ok: true, asset, ts, dt, count, values };
  };
}
