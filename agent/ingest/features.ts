// Features: takes one MQTT message (topic + raw payload) and the model's feature list; gives the
// asset id and the ordered feature row the model expects, or the reason the message is rejected.
// Nothing here throws on bad input: a rejection is data and becomes a dead letter.

import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import type { RejectReason } from '../errors.js';
import { createQualityGate, qualityOptionsSchema, type QualityOptions } from './quality.js';
import { topicLevelProblem } from './topic.js';
import type { Manifest } from '../../models/manifest.js';

const pathString = z
  .string()
  .min(1)
  .regex(/^[^.]+(\.[^.]+)*$/, 'a dot path such as "vibration.rms" or "axes.0.rms"');

export const mappingOptionsSchema = z
  .strictObject({
    /** Where the asset (machine) id comes from: a topic level (0 = first) or a payload field path. */
    asset: z
      .union([
        z.strictObject({ topicLevel: z.number().int().nonnegative() }),
        z.strictObject({ field: pathString }),
      ])
      .default({ topicLevel: 1 }),
    /** Model feature name -> path into the JSON payload. A feature not listed is read from the top-level field of its own name. */
    features: z.record(z.string(), pathString).default({}),
  })
  .prefault({});

export type MappingOptions = z.infer<typeof mappingOptionsSchema>;

export type Decoded =
  /** `quality`: the data-quality gate's flags as JSON (features imputed or passed flagged), absent when clean. */
  | { ok: true; asset: string; values: number[]; quality?: string | null }
  | { ok: false; code: RejectReason; detail: string };

/** An asset id fills {asset} in the result topic: one topic level a broker accepts (see topic.ts). */
const MAX_ASSET_CHARS = 128;

/** A payload as JSON (any JSON value), or why it is not: not UTF-8, not JSON. */
export function parseJsonPayload(payload: Buffer): { ok: true; json: unknown } | { ok: false; code: RejectReason; detail: string } {
  if (!isUtf8(payload)) return { ok: false, code: 'REJECT_NOT_UTF8', detail: 'payload is not valid UTF-8' };
  try {
    return { ok: true, json: JSON.parse(payload.toString('utf8')) as unknown };
  } catch (err) {
    return { ok: false, code: 'REJECT_MALFORMED_JSON', detail: (err as Error).message };
  }
}

export function compilePath(path: string): (string | number)[] {
  return path.split('.').map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

export function readPath(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    if (typeof key === 'number' && Array.isArray(v)) v = v[key];
    else if (Object.hasOwn(v, key)) v = (v as Record<string, unknown>)[String(key)];
    else return undefined;
  }
  return v;
}

/** Checks the mapping against the model: every mapped name must be a model feature. Gives the problems found. */
export function mappingProblems(mapping: MappingOptions, manifest: Manifest, at = 'mapping'): string[] {
  const names = new Set(manifest.features.map((f) => f.name));
  return Object.keys(mapping.features)
    .filter((k) => !names.has(k))
    .map(
      (k) =>
        `${at}.features.${k}: got a mapping for "${k}" — expected one of the model's features: ${[...names].join(', ')}`,
    );
}

/** Judges a row of raw values in the manifest's feature order (the data-quality gate, quality.ts). */
export type RowJudge = (asset: string, raw: readonly unknown[], ages: readonly (number | undefined)[] | null) => Decoded;

/** The payload path a feature is read from: its mapping, else the top-level field of its own name. */
function featurePath(mapping: MappingOptions, name: string): string {
  return Object.hasOwn(mapping.features, name) ? (mapping.features[name] as string) : name;
}

/** Where each feature is read from in a JSON payload, as the gate names it in a dead letter's reason. */
export function featureSources(mapping: MappingOptions, manifest: Manifest): string[] {
  return manifest.features.map((f) => `field "${featurePath(mapping, f.name)}"`);
}

/** `judge`: the model's data-quality gate; default: the gate's default options (the contract alone: type, finite, range). */
export function createDecoder(
  mapping: MappingOptions, manifest: Manifest, maxPayloadBytes: number,
  judge: RowJudge = createRowJudge(qualityOptionsSchema.parse({}), manifest, featureSources(mapping, manifest)).judge,
) {
  // Where each feature is read from; the gate judges what is there (its reasons name the field: featureSources).
  const paths = manifest.features.map((f) => compilePath(featurePath(mapping, f.name)));
  const assetPath = 'field' in mapping.asset ? compilePath(mapping.asset.field) : null;
  const assetLevel = 'topicLevel' in mapping.asset ? mapping.asset.topicLevel : -1;

  function assetOf(topic: string, json: unknown): Decoded | string {
    let raw: unknown;
    if (assetPath) {
      raw = readPath(json, assetPath);
      if (typeof raw === 'number' && Number.isFinite(raw)) raw = String(raw);
      if (typeof raw !== 'string') {
        return { ok: false, code: 'REJECT_NO_ASSET', detail: `asset field "${(mapping.asset as { field: string }).field}" is ${raw === undefined ? 'absent' : `not a string (${typeof raw})`}` };
      }
    } else {
      raw = topic.split('/')[assetLevel];
      if (raw === undefined) {
        return { ok: false, code: 'REJECT_NO_ASSET', detail: `topic "${topic}" has no level ${assetLevel}` };
      }
    }
    const problem = topicLevelProblem(raw as string, MAX_ASSET_CHARS);
    if (problem) return { ok: false, code: 'REJECT_BAD_ASSET', detail: `asset id ${JSON.stringify((raw as string).slice(0, 64))}${(raw as string).length > 64 ? '…' : ''} ${problem}` };
    return raw as string;
  }

  /** `bytes`: the payload's size as received, when `payload` holds only its first bytes. */
  return function decode(topic: string, payload: Buffer, bytes = payload.length): Decoded {
    if (bytes > maxPayloadBytes) {
      return { ok: false, code: 'REJECT_PAYLOAD_TOO_LARGE', detail: `payload is ${bytes} bytes, the limit is ${maxPayloadBytes}` };
    }
    const parsed = parseJsonPayload(payload);
    if (!parsed.ok) return parsed;
    const json = parsed.json;
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      return { ok: false, code: 'REJECT_NOT_OBJECT', detail: `payload is a JSON ${json === null ? 'null' : Array.isArray(json) ? 'array' : typeof json}` };
    }
    const asset = assetOf(topic, json);
    if (typeof asset !== 'string') return asset;
    const raw = new Array<unknown>(paths.length);
    for (let i = 0; i < paths.length; i++) raw[i] = readPath(json, paths[i]!);
    return judge(asset, raw, null);
  };
}

/**
 * A model version's data-quality gate (quality.ts) as the judge of its rows: the values to run with the gate's
 * flags as JSON, or the reason the row is a dead letter. `sources` names where each feature came from in reasons.
 */
export function createRowJudge(options: QualityOptions, manifest: Manifest, sources?: readonly string[]): { judge: RowJudge; counters: () => unknown } {
  const gate = createQualityGate(options, manifest, sources);
  return {
    judge: (asset, raw, ages) => {
      const j = gate.judge(asset, raw, ages);
      if (!j.ok) return j;
      return j.flags.length ? { ok: true, asset, values: j.values, quality: JSON.stringify(j.flags) } : { ok: true, asset, values: j.values };
    },
    counters: () => gate.counters,
  };
}

export type Decoder = ReturnType<typeof createDecoder>;
