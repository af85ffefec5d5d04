// Tags: one value per topic, as many PLC gateways publish them (plant/line3/press7/temperature). Takes a
// message; gives its asset, tag name, value and time, or why it cannot be read. The join (join.ts) makes one
// row per asset out of these; the quality gate (quality.ts) judges the row.
//
// A payload is a bare JSON value (`71.2`), or an object holding it (`{ "value": 71.2, "ts": 1732600000000 }`,
// with the field names configurable). The value is taken as it is: a string or a boolean is the quality
// gate's to judge (REJECT_WRONG_TYPE under the reject policy), as is a missing value.

import { z } from 'zod';
import type { RejectReason } from '../errors.js';
import { compilePath, parseJsonPayload, readPath } from './features.js';
import { topicLevelProblem } from './topic.js';

const fieldPath = z.string().min(1).regex(/^[^.]+(\.[^.]+)*$/, 'a dot path such as "value" or "v.val"');

export const tagsOptionsSchema = z
  .strictObject({
    /** The topic level (0 = first) that names the asset. */
    assetLevel: z.number().int().nonnegative().default(1),
    /** The topic level that names the tag; default: the last one. */
    tagLevel: z.number().int().nonnegative().optional(),
    /** Model feature -> tag name, for tags not named like the feature. A feature not listed is the tag of its own name. */
    features: z.record(z.string(), z.string().min(1)).default({}),
    /** In an object payload, the field holding the value. */
    valueField: fieldPath.default('value'),
    /** In an object payload, the field holding the value's time (ms since epoch, or ISO 8601 text); absent: the time it was received. */
    tsField: fieldPath.default('ts'),
  })
  .prefault({});

export type TagsOptions = z.infer<typeof tagsOptionsSchema>;

export type TagRead =
  | { ok: true; asset: string; tag: string; value: unknown; ts: number }
  | { ok: false; code: RejectReason; detail: string };

const MAX_ASSET_CHARS = 128;

export function createTagReader(options: TagsOptions, maxPayloadBytes: number) {
  const valuePath = compilePath(options.valueField);
  const tsPath = compilePath(options.tsField);
  return function readTag(topic: string, payload: Buffer, bytes: number, receivedAt: number): TagRead {
    if (bytes > maxPayloadBytes) return { ok: false, code: 'REJECT_PAYLOAD_TOO_LARGE', detail: `payload is ${bytes} bytes, the limit is ${maxPayloadBytes}` };
    const levels = topic.split('/');
    const asset = levels[options.assetLevel];
    if (asset === undefined) return { ok: false, code: 'REJECT_NO_ASSET', detail: `topic "${topic}" has no level ${options.assetLevel}` };
    const problem = topicLevelProblem(asset, MAX_ASSET_CHARS);
    if (problem) return { ok: false, code: 'REJECT_BAD_ASSET', detail: `asset id ${JSON.stringify(asset.slice(0, 64))} ${problem}` };
    const tag = levels[options.tagLevel ?? levels.length - 1] as string | undefined;
    if (tag === undefined || tag === '') return { ok: false, code: 'REJECT_NO_ASSET', detail: `topic "${topic}" has no tag level ${options.tagLevel ?? levels.length - 1}` };
    const parsed = parseJsonPayload(payload);
    if (!parsed.ok) return parsed;
    const json = parsed.json;
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return { ok: true, asset, tag, value: json, ts: receivedAt };
    const rawTs = readPath(json, tsPath);
    let ts = receivedAt;
    if (typeof rawTs === 'number' && Number.isFinite(rawTs)) ts = rawTs;
    else if (typeof rawTs === 'string' && Number.isFinite(Date.parse(rawTs))) ts = Date.parse(rawTs);
    else if (rawTs !== undefined) return { ok: false, code: 'REJECT_WRONG_TYPE', detail: `tag ${tag}: field "${options.tsField}" is ${JSON.stringify(rawTs)}, expected ms since epoch or ISO 8601 text` };
    return { ok: true, asset, tag, value: readPath(json, valuePath), ts };
  };
}
