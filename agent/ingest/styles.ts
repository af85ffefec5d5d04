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
import { createJoin, joinOptionsSchema, joinProblems, type JoinedRow } from './join.js';
import type { Sample } from './samples.js';
import { createTagReader, tagsOptionsSchema } from './tags.js';

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
  ])
  .prefault({ style: 'json' });

export type PayloadOptions = z.infer<typeof payloadOptionsSchema>;

/** What the styles' counters add to the status page and /metrics. */
export interface StyleDeps {
  maxPayloadBytes: number;
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

function rowsOf(joined: readonly JoinedRow<Message>[], manifest: Manifest): AssembledRow[] {
  return joined.map((j) => toRow(j, manifest));
}

/** What keeps a style's options from fitting the model's features, each naming its key (`at`: where `payload` sits). */
export function payloadProblems(payload: PayloadOptions, manifest: Manifest, at: string): string[] {
  if (payload.style === 'json') return [];
  const features = manifest.features.map((f) => f.name);
  const problems = joinProblems(payload.join, features, `${at}.join`);
  for (const k of Object.keys(payload.tags.features)) {
    if (!features.includes(k)) problems.push(`${at}.tags.features.${k}: got a tag for "${k}" — expected one of the model's features: ${features.join(', ')}`);
  }
  return problems;
}

export function createAssembler(payload: PayloadOptions, manifest: Manifest, deps: StyleDeps): Assembler | undefined {
  if (payload.style === 'json') return undefined;
  const features = manifest.features.map((f) => f.name);
  // Tag name -> feature name (a feature not mapped is the tag of its own name).
  const featureOf = new Map<string, string>(features.map((f) => [payload.tags.features[f] ?? f, f]));
  const trigger = payload.join.trigger;
  if (trigger !== undefined && !featureOf.has(trigger)) featureOf.set(trigger, trigger);
  const join = createJoin<Message>(payload.join, features);
  const read = createTagReader(payload.tags, deps.maxPayloadBytes);
  let unmapped = 0;
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
      return { rows: rowsOf(out.rows, man), released: out.released };
    },
    status: () => ({ style: 'tags', assets: join.assets, held: join.held, unmappedTags: unmapped, ...join.counters }),
  };
}
