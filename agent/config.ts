// Config: takes the path of one YAML file; gives the validated, frozen config built from every
// stage's own options schema, or an EdgeError (EDGE_ERR_CONFIG, exit 78) listing every problem with
// its key path, the bad value and what was expected (secrets redacted). Relative paths, secret files
// included, are taken from the file's folder.

import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { EdgeError } from './errors.js';
import { maxModelBytesSchema } from '../models/load.js';
import { probationOptionsSchema } from '../models/probation.js';
import { releasesOptionsSchema } from '../sync/push.js';
import { syncOptionsSchema } from '../sync/upstream.js';
import { parsePublicKey } from '../models/sign.js';
import { mappingOptionsSchema, type MappingOptions } from './ingest/features.js';
import { payloadOptionsSchema, type PayloadOptions } from './ingest/styles.js';
import { qualityOptionsSchema, type QualityOptions } from './ingest/quality.js';
import { sparkplugConfigProblems } from './ingest/sparkplug-client.js';
import { inferenceOptionsSchema } from './infer/infer.js';
import { ingestOptionsSchema, subscriptionsSchema, type Subscription } from './ingest/ingest.js';
import { truthOptionsSchema } from './ingest/labels.js';
import { logOptionsSchema } from './log.js';
import { httpOptionsSchema } from './observe/http.js';
import { driftOptionsSchema } from './observe/drift.js';
import { mqttOptionsSchema } from './ingest/mqtt.js';
import { publishOptionsSchema, resultTopicSchema } from './publish.js';
import { storeOptionsSchema } from './store/store.js';
import { resolveSecret, SecretRef, type Resolved } from './secret.js';
import { formatPath, formatZodIssues } from './zod-format.js';

/** The most models one agent serves: each has a worker thread of its own. */
export const MAX_MODELS = 16;

/** One model of an agent serving several (a line PC often serves several stations). */
const servedModelSchema = z.strictObject({
  /** The model's first version: a folder holding model.onnx and manifest.json. */
  dir: z.string().min(1),
  /** The topic filters of this model's readings. */
  subscriptions: subscriptionsSchema,
  /** How this model's features are read from the payloads (style json). */
  mapping: mappingOptionsSchema,
  /** How this model's readings arrive: json (one object per reading), tags, sparkplug or window. */
  payload: payloadOptionsSchema,
  /** This model's data-quality gate: checks against its contract and training profile, and what to do on a failure. */
  quality: qualityOptionsSchema,
  /** This model's result topic; default publish.topic. */
  resultTopic: resultTopicSchema.optional(),
  /** Accept unsigned releases of this model; default model.trust.allowUnsigned. */
  allowUnsigned: z.boolean().optional(),
});

export const configSchema = z.strictObject({
  mqtt: mqttOptionsSchema,
  ingest: ingestOptionsSchema.prefault({}),
  /** One model: its mapping (with several, each entry of models has its own). */
  mapping: mappingOptionsSchema,
  /** One model: how its readings arrive (with several, each entry of models has its own). */
  payload: payloadOptionsSchema,
  /** One model: its data-quality gate (with several, each entry of models has its own). */
  quality: qualityOptionsSchema,
  /** Several models, each with its own first version, subscriptions, mapping and result topic. */
  models: z.array(servedModelSchema).min(1).max(MAX_MODELS).optional(),
  model: z.strictObject({
    /** One model: a model version folder holding model.onnx and manifest.json (with several, see models). */
    dir: z.string().min(1).optional(),
    /** The largest model.onnx the agent reads (checked before reading). */
    maxModelBytes: maxModelBytesSchema,
    /** Where installed versions live, with the one that serves. Default: <store>.models beside the store file (one per store). */
    versionsDir: z.string().min(1).optional(),
    /** Installed versions kept per model (the active and the previous one are always kept). */
    keepVersions: z.number().int().min(2).max(100).default(3),
    /** After every install: watched for this many readings, rolled back by itself when it misbehaves. */
    probation: probationOptionsSchema,
    /** How long verifying a candidate (in a child process) may take. */
    verifyDeadlineMs: z.number().int().min(1000).max(600000).default(60000),
    trust: z
      .strictObject({
        /** Public keys (PEM files from `edge-agent model keygen`) whose signatures are trusted. */
        keyFiles: z.array(z.string().min(1)).default([]),
        /** Accept releases without a signature (the model.dir seed is always accepted). */
        allowUnsigned: z.boolean().default(false),
        /** How far this PC's clock may be off when a release's expiry is checked. */
        clockSlackMs: z.number().int().nonnegative().default(300000),
      })
      .prefault({}),
  }).prefault({}),
  inference: inferenceOptionsSchema,
  store: storeOptionsSchema,
  publish: publishOptionsSchema,
  releases: releasesOptionsSchema,
  /** Upstream sync of predictions, dead letters and lifecycle events (sync/upstream.ts). */
  sync: syncOptionsSchema,
  /** Ground truth: labels from a quality station joined to predictions (agent/observe/truth.ts). Off by default. */
  truth: truthOptionsSchema,
  shutdown: z
    .strictObject({
      /** Stop taking messages, finish the batch in flight, commit, disconnect: all within this. Keep it under systemd's TimeoutStopSec. */
      deadlineMs: z.number().int().min(100).max(600000).default(10000),
    })
    .prefault({}),
  log: logOptionsSchema,
  /** Health, readiness, Prometheus metrics and the status page (agent/observe/http.ts). */
  http: httpOptionsSchema,
  /** Input and prediction drift against each model's training baseline, and data quality (observe/drift.ts). */
  drift: driftOptionsSchema,
});

export type DeepReadonly<T> = T extends readonly (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/**
 * A model the agent serves, from either form of the config: the top level (model.dir, ingest.subscriptions,
 * mapping, publish.topic) for one model, or one entry of models. `keys` names where each part was written,
 * so that a message about it points at the right line.
 */
export interface ModelSpec {
  dir: string;
  subscriptions: readonly Subscription[];
  mapping: MappingOptions;
  payload: DeepReadonly<PayloadOptions>;
  quality: DeepReadonly<QualityOptions>;
  resultTopic: string;
  allowUnsigned: boolean;
  keys: { dir: string; subscriptions: string; mapping: string; payload: string; quality: string; resultTopic: string };
}

export type Config = Omit<Resolved<z.infer<typeof configSchema>>, 'models'> & { models: ModelSpec[] };

export type FrozenConfig = DeepReadonly<Config>;

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/** The YAML text as plain data; a syntax error is EDGE_ERR_CONFIG naming `where`. */
function parseYaml(text: string, where: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const details = doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`);
    throw new EdgeError('EDGE_ERR_CONFIG', `${where}: not valid YAML\n  ${details.join('\n  ')}`, { details });
  }
  return doc.toJS() ?? {};
}

/** Parses YAML text. `where` names the file in messages; relative paths resolve against `baseDir`. */
export function parseConfig(text: string, where: string, baseDir: string): FrozenConfig {
  return configFromObject(parseYaml(text, where), where, baseDir);
}

function configError(where: string, details: string[]): EdgeError {
  return new EdgeError('EDGE_ERR_CONFIG', `${where}: ${details.length} problem${details.length > 1 ? 's' : ''}\n  ${details.join('\n  ')}`, { details });
}

/**
 * Replaces every SecretRef the schema left (only where a secret stands: see secret.ts) with its
 * value, in place; gives the problems, each naming the key path.
 */
function resolveSecrets(node: unknown, baseDir: string, path: PropertyKey[], problems: string[]): void {
  if (node === null || typeof node !== 'object') return;
  for (const [key, child] of Object.entries(node)) {
    const at = Array.isArray(node) ? [...path, Number(key)] : [...path, key];
    if (child instanceof SecretRef) {
      const r = resolveSecret(child, baseDir);
      if ('value' in r) (node as Record<string, unknown>)[key] = r.value;
      else problems.push(`${formatPath(at)}: ${r.problem}`);
    } else {
      resolveSecrets(child, baseDir, at, problems);
    }
  }
}

/** Validates an already-parsed config object (what the YAML file holds). */
export function configFromObject(raw: unknown, where: string, baseDir: string): FrozenConfig {
  const result = configSchema.safeParse(raw);
  const shape = formProblems(raw);
  if (!result.success || shape.length) throw configError(where, [...(result.success ? [] : formatZodIssues(result.error.issues, raw)), ...shape]);
  const secretProblems: string[] = [];
  resolveSecrets(result.data, baseDir, [], secretProblems);
  if (secretProblems.length) throw configError(where, secretProblems);
  const parsed = result.data as unknown as Resolved<z.infer<typeof configSchema>>;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const c = { ...parsed, models: servedModels(parsed) } as Config;
  c.store.path = abs(c.store.path);
  const missing: string[] = [];
  for (const m of c.models) {
    const written = m.dir;
    m.dir = abs(m.dir);
    try {
      if (!statSync(m.dir).isDirectory()) missing.push(`${m.keys.dir}: got "${written}" — a folder holding model.onnx and manifest.json (it is a file)`);
    } catch (err) {
      missing.push(`${m.keys.dir}: got "${written}" — a folder holding model.onnx and manifest.json (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  /** TLS files: taken from the config's folder when relative, and checked to be readable. */
  const tlsFiles = (tls: { caFile?: string; certFile?: string; keyFile?: string } | undefined, at: string) => {
    for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
      const v = tls?.[k];
      if (v === undefined || !tls) continue;
      tls[k] = abs(v);
      try {
        accessSync(abs(v), constants.R_OK);
      } catch (err) {
        missing.push(`${at}.${k}: got "${v}" — a readable file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }
  };
  tlsFiles(c.mqtt.tls, 'mqtt.tls');
  c.sync.targets.forEach((t, i) => {
    if (t.type === 'dir') t.path = abs(t.path);
    else tlsFiles(t.tls, `sync.targets[${i}].tls`);
  });
  const names = c.sync.targets.map((t) => t.name);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i) missing.push(`sync.targets[${i}].name: got "${n}" — a name no other target has (each target keeps its own cursors under its name)`);
  });
  // One per store, like the store's lock: two agents with stores in one folder never share versions.
  c.model.versionsDir = c.model.versionsDir ? abs(c.model.versionsDir) : join(dirname(c.store.path), `${basename(c.store.path, extname(c.store.path))}.models`);
  c.model.trust.keyFiles = c.model.trust.keyFiles.map((f, i) => {
    const path = abs(f);
    try {
      const key = parsePublicKey(readFileSync(path, 'utf8'));
      if ('problem' in key) missing.push(`model.trust.keyFiles[${i}]: got "${f}" — ${key.problem}`);
    } catch (err) {
      missing.push(`model.trust.keyFiles[${i}]: got "${f}" — a readable public key file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    return path;
  });
  missing.push(...sparkplugConfigProblems(c.models));
  if (missing.length) throw configError(where, missing);
  return deepFreeze(c);
}

/** The config holds one model at the top level or several under models, never both: what is amiss, by key. */
function formProblems(raw: unknown): string[] {
  if (raw === null || typeof raw !== 'object') return [];
  const r = raw as { models?: unknown; model?: { dir?: unknown }; ingest?: { subscriptions?: unknown }; mapping?: unknown };
  const has = (v: unknown) => v !== undefined && v !== null;
  const topLevel = [
    ['model.dir', has(r.model?.dir), 'dir'],
    ['ingest.subscriptions', has(r.ingest?.subscriptions), 'subscriptions'],
    ['mapping', has(r.mapping), 'mapping'],
    ['payload', has((r as { payload?: unknown }).payload), 'payload'],
    ['quality', has((r as { quality?: unknown }).quality), 'quality'],
  ] as const;
  if (r.models !== undefined) {
    return topLevel.filter(([, present]) => present).map(([key, , inEntry]) => `${key}: with models listed, each model has its own ${inEntry} (models[].${inEntry}); remove ${key}`);
  }
  // A parent that is there but not an object (model: null) is the schema's to name.
  const parentBad = (v: unknown) => v !== undefined && (v === null || typeof v !== 'object');
  return topLevel
    .filter(([key, present]) => !present && key !== 'mapping' && key !== 'payload' && key !== 'quality' && !parentBad(key === 'model.dir' ? r.model : r.ingest))
    .map(([key]) => `${key}: got (missing) — ${key === 'model.dir' ? "the folder of the model's first version" : "the readings' topic filters"} (or list several models under models, each with dir, subscriptions and mapping)`);
}

/** Both forms of the config as one list of served models. */
function servedModels(c: Resolved<z.infer<typeof configSchema>>): ModelSpec[] {
  if (!c.models) {
    return [{
      dir: c.model.dir as string, subscriptions: [...(c.ingest.subscriptions ?? [])], mapping: c.mapping, payload: c.payload, quality: c.quality, resultTopic: c.publish.topic, allowUnsigned: c.model.trust.allowUnsigned,
      keys: { dir: 'model.dir', subscriptions: 'ingest.subscriptions', mapping: 'mapping', payload: 'payload', quality: 'quality', resultTopic: 'publish.topic' },
    }];
  }
  return c.models.map((m, i) => ({
    dir: m.dir, subscriptions: [...m.subscriptions], mapping: m.mapping, payload: m.payload, quality: m.quality, resultTopic: m.resultTopic ?? c.publish.topic, allowUnsigned: m.allowUnsigned ?? c.model.trust.allowUnsigned,
    keys: { dir: `models[${i}].dir`, subscriptions: `models[${i}].subscriptions`, mapping: `models[${i}].mapping`, payload: `models[${i}].payload`, quality: `models[${i}].quality`, resultTopic: m.resultTopic ? `models[${i}].resultTopic` : 'publish.topic' },
  }));
}

/** Every model's subscriptions as one list for the broker: each filter once, at the highest QoS asked for it. */
export function allSubscriptions(models: readonly { subscriptions: readonly Subscription[] }[]): Subscription[] {
  const qos = new Map<string, 0 | 1>();
  for (const m of models) for (const s of m.subscriptions) qos.set(s.topic, Math.max(qos.get(s.topic) ?? 0, s.qos) as 0 | 1);
  return [...qos].map(([topic, q]) => ({ topic, qos: q }));
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new EdgeError('EDGE_ERR_CONFIG', `${path}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export function loadConfig(path: string): FrozenConfig {
  return parseConfig(readConfigText(path), path, dirname(resolve(path)));
}

/**
 * Only `store.path` from a config file, resolved like loadConfig does (relative to the file's folder; the
 * schema's default when absent). For `edge-agent status`, which needs no more than where the control socket
 * is: nothing else is validated, and no secret is read, so an `{ env }` secret the operator's shell lacks
 * does not stop it.
 */
export function readStorePath(path: string): string {
  const raw = parseYaml(readConfigText(path), path) as { store?: { path?: unknown } | null };
  const value = raw.store && typeof raw.store === 'object' ? raw.store.path : undefined;
  if (value === undefined) return storeOptionsSchema.parse({}).path;
  if (typeof value !== 'string' || !value) throw configError(path, [`store.path: got ${JSON.stringify(value)} — the SQLite file's path`]);
  return isAbsolute(value) ? value : resolve(dirname(resolve(path)), value);
}
