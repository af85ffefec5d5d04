// Payload styles: which way a model's readings arrive, and the assembler (assemble.ts) each style needs.
// Takes the model's `payload` options and its first version's manifest; gives its assembler, or none for
// `json` (one object per reading: features.ts decodes each message at dispatch).
//   json       one JSON object per reading (the default)
//   tags       one value per topic, joined into one row per asset (tags.ts, join.ts)
//   sparkplug  Sparkplug B, as a host application; metrics joined into one row per asset (sparkplug.ts, join.ts)
//   window     the last N samples of one or more signals (window.ts)

import { z } from 'zod';
import type { Manifest } from '../../models/manifest.js';
import type { Assembler, AssembledRow, Taken } from './assemble.js';
import type { Message } from './ingest.js';
import { createJoin, joinOptionsSchema, joinProblems, type JoinedRow, type JoinOptions } from './join.js';
import type { Sample } from './samples.js';
import { createSparkplugHost, sparkplugOptionsSchema, type BirthRecord, type Command, type SparkplugHost, type SparkplugOptions } from './sparkplug.js';
import { createTagReader, tagsOptionsSchema, type TagsOptions } from './tags.js';
import { createWindows, windowOptionsSchema, windowProblems, windowShapeOf, type WindowOptions } from './window.js';
import type { BirthRow, HistoricalRow } from '../store/store.js';
import type { DeepReadonly } from '../config.js';

export const payloadOptionsSchema = z
  .discriminatedUnion('style', [
    z.strictObject({ style: z.literal('json') }),
    z.strictObject({
      style: z.literal('tags'),
      /** Where the asset and the tag are in the topic, and how a payload holds the value. */
      tags: tagsOptionsSchema,
      /** When a row is made: on a trigger tag, or on a period. */
      join: joinOptionsSchema,
    }),
    z.strictObject({
      style: z.literal('sparkplug'),
      /** The host application: which metrics feed which features, rebirths, reorder timeout, STATE. */
      sparkplug: sparkplugOptionsSchema,
      /** When a row is made: on a trigger metric, or on a period (a DATA message carries only what changed). */
      join: joinOptionsSchema,
    }),
    z.strictObject({
      style: z.literal('window'),
      /** The signals (one per model feature, in order), the hop, the asset, timestamps and gaps. */
      window: windowOptionsSchema,
    }),
  ])
  .prefault({ style: 'json' });

export type PayloadOptions = z.infer<typeof payloadOptionsSchema>;
/** As the frozen config holds them. */
type Payload = DeepReadonly<PayloadOptions>;

/** What the styles need from the agent. */
export interface StyleDeps {
  maxPayloadBytes: number;
  /** The model's name (historical Sparkplug B values name it). */
  model: string;
  /** Sparkplug B births kept in the store (the alias maps at start). */
  savedBirths: readonly BirthRecord[];
  /** Publishes a Sparkplug B command (a rebirth request: QoS 0, not retained). */
  command(c: Command): void;
  /** Publishes the host's STATE again (QoS 1, retained). */
  state(c: Command): void;
  /** Windows: per asset, the time of the newest window committed before this start (table window_marks). */
  windowMarks: ReadonlyMap<string, number>;
  /** Given the Sparkplug B host, whose STATE the host's own connection carries (sparkplug-client.ts). */
  onHost?(host: SparkplugHost): void;
}

/** A joined row as raw values in the captured manifest's feature order, with their ages. */
function toRow(j: JoinedRow<Message>, manifest: Manifest): AssembledRow {
  const n = manifest.features.length;
  const raw = new Array<unknown>(n);
  const ages = new Array<number | undefined>(n);
  for (let i = 0; i < n; i++) {
    const name = (manifest.features[i] as { name: string }).name;
    raw[i] = j.values[name];
    ages[i] = j.ages[name];
  }
  return { asset: j.asset, at: j.at, raw, ages, source: j.source };
}

/**
 * The rows to run. On a period, an asset some feature has never come for yet makes no row (it waits; counted in
 * `incomplete`): only a trigger says "judge it now", and then a missing feature is the quality gate's to judge.
 */
function rowsOf(joined: readonly JoinedRow<Message>[], manifest: Manifest, onPeriod = false, skipped?: { incomplete: number }): AssembledRow[] {
  const out: AssembledRow[] = [];
  for (const j of joined) {
    if (onPeriod && j.missing.length) {
      if (skipped) skipped.incomplete++;
      continue;
    }
    out.push(toRow(j, manifest));
  }
  return out;
}

/** What keeps a style's options from fitting the model's features, each naming its key (`at`: where `payload` sits). */
export function payloadProblems(payload: Payload, manifest: Manifest, at: string): string[] {
  const windowed = manifest.input.window !== undefined;
  if (payload.style === 'window') return windowed ? windowProblems(payload.window as WindowOptions, manifest, `${at}.window`) : [`${at}.style: got "window" — model ${manifest.name}@${manifest.version} takes one value per feature (its manifest has no input.window): use json, tags or sparkplug`];
  if (windowed) return [`${at}.style: got "${payload.style}" — model ${manifest.name}@${manifest.version} takes a window of ${manifest.input.window?.length} samples per feature (input.window): use style window`];
  if (payload.style === 'json') return [];
  const features = manifest.features.map((f) => f.name);
  const problems = joinProblems(payload.join as JoinOptions, features, `${at}.join`);
  if (payload.style === 'sparkplug') {
    payload.sparkplug.metrics.forEach((r, i) => {
      if (!features.includes(r.feature) && r.feature !== payload.join.trigger) {
        problems.push(`${at}.sparkplug.metrics[${i}].feature: got "${r.feature}" — expected one of the model's features (${features.join(', ')}) or join.trigger`);
      }
    });
    return problems;
  }
  for (const k of Object.keys(payload.tags.features)) {
    if (!features.includes(k)) problems.push(`${at}.tags.features.${k}: got a tag for "${k}" — expected one of the model's features: ${features.join(', ')}`);
  }
  return problems;
}

export function createAssembler(payload: Payload, manifest: Manifest, deps: StyleDeps): Assembler | undefined {
  if (payload.style === 'json') return undefined;
  if (payload.style === 'sparkplug') return createSparkplugAssembler(payload, manifest, deps);
  if (payload.style === 'window') return createWindowAssembler(payload, manifest, deps);
  const features = manifest.features.map((f) => f.name);
  // Tag name -> feature name (a feature not mapped is the tag of its own name).
  const featureOf = new Map<string, string>(features.map((f) => [payload.tags.features[f] ?? f, f]));
  const trigger = payload.join.trigger;
  if (trigger !== undefined && !featureOf.has(trigger)) featureOf.set(trigger, trigger);
  const join = createJoin<Message>(payload.join as JoinOptions, features);
  const read = createTagReader(payload.tags as TagsOptions, deps.maxPayloadBytes);
  let unmapped = 0;
  const waiting = { incomplete: 0 };
  return {
    tickMs: payload.join.periodMs ?? null,
    take(m, man, now, restore): Taken {
      const t = read(m.topic, m.payload, m.bytes, m.receivedAt);
      if (!t.ok) return { rows: [], released: [m], reject: restore ? undefined : { code: t.code, detail: t.detail } };
      const feature = featureOf.get(t.tag);
      if (feature === undefined) {
        if (!restore) unmapped++;
        return { rows: [], released: [m] };
      }
      const samples: Sample[] = [{ asset: t.asset, feature, value: t.value, ts: t.ts }];
      const out = join.take(m, samples, now, restore);
      const reject = out.refused.length && !restore ? { code: 'REJECT_LIMIT' as const, detail: `asset ${out.refused[0]?.asset}: ${out.refused[0]?.reason}` } : undefined;
      return { rows: rowsOf(out.rows, man), released: out.released, reject };
    },
    tick(man, now) {
      const out = join.tick(now);
      return { rows: rowsOf(out.rows, man, true, waiting), released: out.released };
    },
    status: () => ({ style: 'tags', assets: join.assets, held: join.held, unmappedTags: unmapped, ...waiting, ...join.counters }),
  };
}

type SparkplugPayload = Extract<Payload, { style: 'sparkplug' }>;

/**
 * Sparkplug B: the host (sparkplug.ts) reads births, deaths and data by alias; the mapped metrics' values go to
 * the join. A message's time is its receipt (a replay passes the original one, so a device's birth still pairs
 * with its node's). Rebirth requests and STATE go out at dispatch; births and historical values are written
 * with the batch.
 */
function createSparkplugAssembler(payload: SparkplugPayload, manifest: Manifest, deps: StyleDeps): Assembler {
  const features = manifest.features.map((f) => f.name);
  const host = createSparkplugHost(payload.sparkplug as SparkplugOptions, { saved: deps.savedBirths });
  deps.onHost?.(host);
  const join = createJoin<Message>(payload.join as JoinOptions, features);
  const waiting = { incomplete: 0 };
  const reorderTickMs = Math.max(100, Math.min(500, Math.round(payload.sparkplug.reorderTimeoutMs / 4) || 100));
  return {
    tickMs: Math.min(payload.join.periodMs ?? Infinity, reorderTickMs),
    take(m, man, _now, restore): Taken {
      const o = host.take(m.topic, m.payload, m.receivedAt, restore);
      if (o.rebirth) deps.command(o.rebirth);
      if (o.state) deps.state(o.state);
      const released: Message[] = [];
      for (const asset of o.offline ?? []) for (const h of join.forget(asset)) released.push(h);
      const births: BirthRow[] = o.birth ? [{ key: o.birth.key, record: o.birth }] : [];
      const historical: HistoricalRow[] = o.historical.map((h) => ({ receivedAt: m.receivedAt, model: deps.model, asset: h.asset, feature: h.feature, ts: h.ts, value: h.value, topic: m.topic }));
      const extra = births.length || historical.length ? { births, historical } : undefined;
      if (o.reject) return { rows: [], released: [...released, m], reject: restore ? undefined : o.reject, extra };
      const out = join.take(m, o.samples as Sample[], m.receivedAt, restore);
      for (const h of out.released) released.push(h);
      const reject = out.refused.length && !restore ? { code: 'REJECT_LIMIT' as const, detail: `asset ${out.refused[0]?.asset}: ${out.refused[0]?.reason}` } : undefined;
      return { rows: rowsOf(out.rows, man), released, reject, extra };
    },
    tick(man, now) {
      for (const c of host.tick(now).rebirths) deps.command(c);
      if (payload.join.periodMs === undefined) return { rows: [], released: [] };
      const out = join.tick(now);
      return { rows: rowsOf(out.rows, man, true, waiting), released: out.released };
    },
    status: () => ({ style: 'sparkplug', ...waiting, assets: join.assets, held: join.held, nodes: host.nodes, ...join.counters, sparkplug: host.status() }),
  };
}

type WindowPayload = Extract<Payload, { style: 'window' }>;

/**
 * Windows: the last N samples of each signal per asset (window.ts). A message too large is refused before its
 * samples are read (its payload may be cut). After a restart the restored buffers are put back on their
 * cadence from the newest window committed before it (window_marks), at the first message that is not a
 * replay of one already consumed.
 */
function createWindowAssembler(payload: WindowPayload, manifest: Manifest, deps: StyleDeps): Assembler {
  const shape = windowShapeOf(manifest);
  if (!shape) throw new Error(`model ${manifest.name} takes no window`);
  const windows = createWindows<Message>(payload.window as WindowOptions, shape);
  let toAlign: ReadonlyMap<string, number> | null = deps.windowMarks.size ? deps.windowMarks : null;
  return {
    tickMs: null,
    take(m, _man, now, restore): Taken {
      if (m.bytes > deps.maxPayloadBytes) return { rows: [], released: [m], reject: restore ? undefined : { code: 'REJECT_PAYLOAD_TOO_LARGE', detail: `payload is ${m.bytes} bytes, the limit is ${deps.maxPayloadBytes}` } };
      if (!restore && toAlign) {
        for (const [asset, at] of toAlign) windows.align(asset, at);
        toAlign = null;
      }
      const out = windows.take(m, m.topic, m.payload, now, restore);
      const rows: AssembledRow[] = out.rows.map((w) => ({ asset: w.asset, at: w.at, raw: null, ages: null, window: w.data, source: w.source }));
      return { rows, released: [...out.released], reject: out.reject };
    },
    tick: () => ({ rows: [], released: [] }),
    status: () => ({ style: 'window', assets: windows.assets, held: windows.held, ...windows.counters }),
  };
}
