// Labels (ground truth), ingest side: the `truth` options, and one label message (topic + raw payload)
// read into its join key, measured outcome, time and (optionally) the model it names, or the reason it
// cannot be read (a REJECT_BAD_LABEL dead letter). Nothing here throws on bad input.

import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { compilePath, readPath } from './features.js';

const pathString = z.string().min(1).regex(/^[^.]+(\.[^.]+)*$/, 'a dot path such as "part.id" or "result"');

export const truthOptionsSchema = z
  .strictObject({
    /** Off by default: a line without a quality station has no labels to join. */
    enabled: z.boolean().default(false),
    /** The labels' topic filter, subscribed at QoS 1 (a label the agent acknowledged is stored first). Keep it apart from the readings' filters. */
    topic: z
      .string()
      .min(1)
      .refine((t) => /^(?:[^+#]*|\+)(?:\/(?:[^+#]*|\+))*(?:\/#)?$|^#$/.test(t), 'a topic filter: + for one whole level, # only as the last level')
      .default('edge-agent/labels/#'),
    /**
     * Where the join key is in a label message: a payload field path or a topic level (0 = first). On the
     * prediction side the key is the asset id the readings' mapping gives (mapping.asset), so the station
     * names the machine (asset) the part was made on.
     */
    key: z
      .union([z.strictObject({ field: pathString }), z.strictObject({ topicLevel: z.number().int().nonnegative() })])
      .default({ field: 'asset' }),
    /** The measured outcome: a string (classification: compared with the predicted label) or a number (regression: with the score or value). */
    outcomeField: pathString.default('outcome'),
    /** When the outcome was measured: ISO 8601 or ms since the epoch. Absent (or no such field): when the agent received the label. */
    timeField: pathString.optional(),
    /** A field naming the model the label is for. Absent, or the field missing: the label joins every model that served the key. */
    modelField: pathString.optional(),
    /** A label joins the newest prediction for its key received within this long before the label's time. */
    windowMs: z.number().int().min(1).max(7 * 86_400_000).default(600_000),
    /** A label whose time is more than this before its arrival is not joined (REJECT_UNMATCHED_LABEL); the agent keeps predictions in memory this much longer than windowMs. */
    maxDelayMs: z.number().int().min(0).max(7 * 86_400_000).default(3_600_000),
    /** Accuracy and MAE per model version over the last this many joined labels. */
    rollingWindow: z.number().int().min(1).max(100_000).default(100),
    /** The most recent predictions kept in memory per key and model (the join looks there, not in the table: no index slows the prediction path). */
    perKey: z.number().int().min(1).max(100_000).default(1000),
  })
  .prefault({});

export type TruthOptions = z.infer<typeof truthOptionsSchema>;

export type ParsedLabel =
  | { ok: true; key: string; outcome: string | number; at: number; model: string | null }
  | { ok: false; detail: string };

/** Reads label messages as `o` says. */
export function createLabelReader(o: Readonly<Pick<TruthOptions, 'key' | 'outcomeField' | 'timeField' | 'modelField'>>) {
  const keyPath = 'field' in o.key ? compilePath(o.key.field) : null;
  const keyLevel = 'topicLevel' in o.key ? o.key.topicLevel : -1;
  const outcomePath = compilePath(o.outcomeField);
  const timePath = o.timeField ? compilePath(o.timeField) : null;
  const modelPath = o.modelField ? compilePath(o.modelField) : null;
  return function read(topic: string, payload: Buffer, receivedAt: number): ParsedLabel {
    if (!isUtf8(payload)) return { ok: false, detail: 'payload is not valid UTF-8' };
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      return { ok: false, detail: 'payload is not valid JSON' };
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return { ok: false, detail: 'payload is JSON but not an object' };
    const rawKey = keyPath ? readPath(json, keyPath) : topic.split('/')[keyLevel];
    const where = 'field' in o.key ? `key field "${o.key.field}"` : `topic level ${keyLevel}`;
    if ((typeof rawKey !== 'string' || rawKey === '') && !(typeof rawKey === 'number' && Number.isFinite(rawKey))) {
      return { ok: false, detail: `${where} is ${rawKey === undefined ? 'absent' : `not a non-empty string or number (${JSON.stringify(rawKey)})`}` };
    }
    const outcome = readPath(json, outcomePath);
    if (!(typeof outcome === 'string' && outcome !== '') && !(typeof outcome === 'number' && Number.isFinite(outcome))) {
      return { ok: false, detail: `outcome field "${o.outcomeField}" is ${outcome === undefined ? 'absent' : `not a label (non-empty string) or a finite number (${JSON.stringify(outcome)?.slice(0, 64)})`}` };
    }
    let at = receivedAt;
    const rawTime = timePath ? readPath(json, timePath) : undefined;
    if (rawTime !== undefined) {
      at = typeof rawTime === 'number' ? rawTime : typeof rawTime === 'string' ? Date.parse(rawTime) : NaN;
      if (!Number.isFinite(at)) return { ok: false, detail: `time field "${o.timeField}" is not ISO 8601 or ms since the epoch (${JSON.stringify(rawTime)?.slice(0, 64)})` };
    }
    const rawModel = modelPath ? readPath(json, modelPath) : undefined;
    if (rawModel !== undefined && typeof rawModel !== 'string') return { ok: false, detail: `model field "${o.modelField}" is not a string (${JSON.stringify(rawModel)?.slice(0, 64)})` };
    return { ok: true, key: String(rawKey), outcome, at, model: rawModel ?? null };
  };
}
