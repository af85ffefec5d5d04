// The engineer's model commands (`edge-agent model …`): takes the words after `model`; gives files
// (a key pair, a signed release) and a report on stdout, or an EdgeError for the CLI entry to print.
// Each command answers --help with its own usage and examples.

import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { readVersionFile } from './read.js';
import { loadConfig, type ModelSpec } from '../agent/config.js';
import { servedModelIndex, servedModelNames } from '../agent/pipeline.js';
import { callControl, controlSocketPath } from '../agent/control.js';
import { brokerUrlSchema } from '../agent/ingest/mqtt.js';
import { openStore } from '../agent/store/store.js';
import { pushRelease } from '../sync/push-command.js';
import type { DrillReport } from './activate.js';
import { candidateVersion, installPolicy, installVersion, seedVersion } from './install.js';
import { DEFAULT_MAX_MODEL_BYTES } from './load.js';
import { compareVersions } from './semver.js';
import { openModelVersions } from './versions.js';
import { readManifest } from './manifest.js';
import { packModel, type FeatureSpec, type OutputChoice } from './pack.js';
import { releaseSchema, type Release } from './release.js';
import { generateKeyPair, parsePrivateKey, signBytes } from './sign.js';

const USAGE = {
  model: `Usage: edge-agent model COMMAND [options]   (edge-agent model COMMAND --help for each)

Commands:
  pack MODEL.onnx [options]          a version folder with a manifest built from the model itself
  install DIR --config FILE          verify a version folder and make it serve (hot swap in a running agent)
  install DIR --shadow --config FILE run a version beside the active one on the same rows (not published)
  promote [NAME] --config FILE       the shadow version becomes the active one
  rollback [NAME] --config FILE      serve the previous version again
  list [NAME] --config FILE          installed versions, the active and previous one, recent events

NAME is the model, needed when the agent serves several (install takes it from the release).
  push DIR --broker URL --target T   publish a signed release to a group of agents and follow each one
  keygen --out DIR [--name NAME]     an ed25519 key pair for signing releases
  sign DIR --key FILE [options]      seal a version folder: list its files in manifest.json, sign it`,
  install: `Usage: edge-agent model install DIR --config FILE [--shadow]

Verifies the version folder DIR (a release sealed with 'model sign', or any version folder when the
config's model.trust.allowUnsigned is true) in a separate process: files, sizes, hashes, signature, the
version order, the model's contract, golden vectors and latency budget. Then it is installed beside the
other versions and activated: a running agent (reached on its control socket beside the store) loads
and warms it and swaps it in without dropping a reading; with no agent running it serves from the next
start. A refused release leaves the active version serving and is recorded with its reason.
With --shadow the version runs beside the active one on the same rows instead: its predictions are stored
(role 'shadow'), never published, and 'model list' shows how often it agrees; 'model promote' makes it
the active one. A shadow needs the running agent and never slows it: a batch the shadow is still busy
with when the next one comes is dropped for the shadow, not queued.

Example (a release on a USB stick):
  edge-agent model install /media/usb/bearing-health/1.1.0 --config /etc/edge-agent/agent.yaml`,
  promote: `Usage: edge-agent model promote [NAME] --config FILE

The shadow version (installed with 'model install DIR --shadow') of model NAME becomes the active one, on
probation; the active one becomes the previous. Needs the running agent. NAME may be left out when the
agent serves one model.`,
  rollback: `Usage: edge-agent model rollback [NAME] --config FILE [--reason TEXT]

Makes the previous version of model NAME serve again (the current one becomes the previous), in the
running agent or, with none running, from its next start. NAME may be left out when the agent serves
one model.

Example:
  edge-agent model rollback bearing-health --config /etc/edge-agent/agent.yaml --reason "false alarms on press 4"`,
  push: `Usage: edge-agent model push DIR --broker URL --target group:NAME|agent:ID [options]

Publishes the signed release DIR, retained, on the target's release topic of the plant's broker (an
agent that is off gets it when it comes back), then shows each target agent's progress live — from
their retained status topics: downloading, verified, activated, on probation, committed, or refused /
rolled back with the reason — until every one has finished or the timeout passes.
Exit 0: every agent committed it; 65: one refused it or rolled it back; 75: the timeout passed.

Options:
  --broker URL          the plant's broker, mqtt:// or mqtts://
  --target T            group:NAME (the agents' releases.groups) or agent:ID (releases.agentId)
  --url BASE            the agents fetch the files from BASE/<file> (HTTP); without it they travel
                        inline (up to 512 KiB)
  --timeout SEC         how long to follow the agents (default 600)
  --prefix PREFIX       the topic prefix the agents use (releases.topicPrefix, default edge-agent)
  --username USER       broker login; the password comes from the environment variable EDGE_AGENT_MQTT_PASSWORD

Example:
  edge-agent model push build/bearing-health/1.1.0 --broker mqtts://broker.plant.local:8883 --target group:line3`,
  drill: `Usage: edge-agent drill [MODEL] --config FILE [--readings N] [--timeout SEC]

Rehearses the model lifecycle on the running agent, on the live line: a copy of the active version (as
version x.y.(z+1)-drill.<time>) is verified in a child process, installed, loaded, warmed and swapped in,
serves its probation for N readings (default 100; readings must be flowing), then a rollback is forced
and the copy removed, so the line ends as it began. Prints what each step took and found; exit 0 when
every step worked and the original version serves again. Run it before you need a rollback. MODEL may
be left out when the agent serves one model.

Example:
  edge-agent drill bearing-health --config /etc/edge-agent/agent.yaml --readings 200`,
  list: `Usage: edge-agent model list [NAME] --config FILE

Each served model's (or model NAME's) installed versions, the active, previous and shadow one, and the
recent lifecycle events.`,
  pack: `Usage: edge-agent model pack MODEL.onnx --name NAME --version VERSION [options]

Writes OUT/NAME/VERSION/ with a copy of MODEL.onnx and a manifest.json built from the model's real
input and outputs (names, types, shapes, a fixed or symbolic batch), its sha256, golden vectors
computed by running it, its measured latency, and, given training rows, the baseline for drift checks.
A model that cannot be served as exported is refused with how to export it instead.

Options:
  --out DIR                   where NAME/VERSION/ goes (default: .)
  --features FILE             YAML or JSON list of { name, unit, min, max, description? }, in input order
  --feature NAME:UNIT:MIN:MAX one feature (repeat, in input order); instead of --features
  --labels A,B,C              a classifier: one probability per label, in output order
  --score T:ABOVE:BELOW       one score per row: the label ABOVE when >= T, else BELOW
  --regression UNIT           one value per row, in UNIT
  --tensor NAME               the output to read (default: the first float32 [batch, k] output)
  --train CSV                 training rows with a header naming the features: baseline, golden vectors,
                              and (without --features) the features and their ranges
  --latency-budget-ms N       the budget per batch (default: ten times the measured p99, at least 5)
  --window                    the 2-d input [batch, N] is a window of N samples of one feature (a 3-d
                              input [batch, C, N] is always a window: C features, N samples, channels
                              first); --train is then a time series, one sample per line
  --description TEXT

Examples:
  edge-agent model pack bearing.onnx --name bearing-health --version 1.1.0 --out build \\
    --features features.yaml --labels healthy,wear,fault --train train.csv
  edge-agent model pack rul.onnx --name spindle-rul --version 0.3.0 --regression h --train rows.csv`,
  keygen: `Usage: edge-agent model keygen --out DIR [--name NAME]

Writes DIR/NAME.key (the private key, mode 0600: keep it off the line PCs) and DIR/NAME.pub (the public
key, for the agents' trusted keys), and prints the key id that signatures name.

Example:
  edge-agent model keygen --out ~/.edge-agent/keys --name anna`,
  sign: `Usage: edge-agent model sign DIR --key FILE [--expires WHEN] [--rollback]

Seals the version folder DIR: lists every file in it (but manifest.json and signature.json) with its
sha256 and size in manifest.json's release block, then signs manifest.json's exact bytes with the
private key FILE into DIR/signature.json. Run it again after any change to the folder.

Options:
  --key FILE        the private key from 'model keygen'
  --expires WHEN    the release is refused after WHEN: an ISO date-time, or Nd for N days from now
  --rollback        allow agents to install it below a version they already trusted

Example:
  edge-agent model sign build/bearing-health/1.1.0 --key ~/.edge-agent/keys/anna.key --expires 30d`,
} as const;

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

function usage(message: string, command: keyof typeof USAGE): never {
  throw new EdgeError('EDGE_ERR_CLI_USAGE', `${message}\n\n${USAGE[command]}`);
}

type Options = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

function parse(command: keyof typeof USAGE, args: string[], options: Options): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | string[] | undefined>, positionals: r.positionals };
  } catch (err) {
    usage((err as Error).message, command);
  }
}

/** Reads a regular file of at most `max` bytes (no link, FIFO or device: see read.ts). */
function readRegular(path: string, max: number): Buffer {
  return Buffer.from(readVersionFile(dirname(path), basename(path), max, 'EDGE_ERR_CLI_USAGE'));
}

const featureListSchema = z
  .array(z.strictObject({ name: z.string(), unit: z.string(), min: z.number(), max: z.number(), description: z.string().optional() }))
  .min(1);

function featureFlag(v: string): FeatureSpec {
  const m = /^([^:]+):([^:]*):([^:]+):([^:]+)$/.exec(v);
  const min = Number(m?.[3]);
  const max = Number(m?.[4]);
  if (!m || !Number.isFinite(min) || !Number.isFinite(max)) usage(`--feature: got "${v}", expected NAME:UNIT:MIN:MAX such as rms_g:g:0:50`, 'pack');
  return { name: m[1] as string, unit: m[2] as string, min, max };
}

function outputFlags(o: Record<string, string | boolean | string[] | undefined>): OutputChoice {
  const given = ['labels', 'score', 'regression'].filter((k) => typeof o[k] === 'string');
  if (given.length !== 1) usage('say how to read the output: exactly one of --labels, --score, --regression', 'pack');
  if (typeof o.labels === 'string') return { kind: 'classification', labels: o.labels.split(',').map((l) => l.trim()) };
  if (typeof o.regression === 'string') return { kind: 'regression', unit: o.regression };
  const m = /^([^:]+):([^:]+):([^:]+)$/.exec(String(o.score));
  const threshold = Number(m?.[1]);
  if (!m || !Number.isFinite(threshold)) usage(`--score: got "${String(o.score)}", expected THRESHOLD:ABOVE:BELOW such as 0.5:anomaly:normal`, 'pack');
  return { kind: 'score', threshold, above: m[2] as string, below: m[3] as string };
}

async function pack(args: string[], out: (s: string) => void): Promise<void> {
  const { values: o, positionals } = parse('pack', args, {
    name: { type: 'string' }, version: { type: 'string' }, out: { type: 'string' }, features: { type: 'string' },
    feature: { type: 'string', multiple: true }, labels: { type: 'string' }, score: { type: 'string' }, regression: { type: 'string' },
    tensor: { type: 'string' }, train: { type: 'string' }, 'latency-budget-ms': { type: 'string' }, description: { type: 'string' },
    window: { type: 'boolean' },
  });
  if (o.help) return out(`${USAGE.pack}\n`);
  const model = positionals[0];
  if (!model || positionals.length > 1) usage('give one MODEL.onnx', 'pack');
  if (typeof o.name !== 'string' || typeof o.version !== 'string') usage('--name and --version are required', 'pack');
  const output = outputFlags(o);
  let features: FeatureSpec[] | undefined;
  if (typeof o.features === 'string' && Array.isArray(o.feature)) usage('give --features FILE or --feature flags, not both', 'pack');
  if (typeof o.features === 'string') {
    let parsed;
    try {
      parsed = featureListSchema.safeParse(parseYaml(readRegular(o.features, 1 << 20).toString('utf8')));
    } catch (err) {
      throw new EdgeError('EDGE_ERR_CLI_USAGE', `--features: cannot read ${o.features} (${(err as Error).message})`);
    }
    if (!parsed.success) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--features ${o.features}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
    features = parsed.data.map((f) => ({ ...f }));
  } else if (Array.isArray(o.feature)) {
    features = o.feature.map((f) => featureFlag(String(f)));
  }
  const budget = o['latency-budget-ms'];
  const latencyBudgetMs = typeof budget === 'string' ? Number(budget) : undefined;
  if (latencyBudgetMs !== undefined && !(latencyBudgetMs > 0)) usage(`--latency-budget-ms: got "${String(budget)}", expected a number above 0`, 'pack');
  const packed = await packModel({
    modelPath: model, name: o.name, version: o.version, outDir: typeof o.out === 'string' ? o.out : '.', output,
    ...(features ? { features } : {}),
    ...(typeof o.tensor === 'string' ? { tensor: o.tensor } : {}),
    ...(typeof o.train === 'string' ? { trainCsv: o.train } : {}),
    ...(latencyBudgetMs !== undefined ? { latencyBudgetMs } : {}),
    ...(typeof o.description === 'string' ? { description: o.description } : {}),
    ...(o.window === true ? { window: true } : {}),
    maxModelBytes: DEFAULT_MAX_MODEL_BYTES,
  });
  const m = packed.manifest;
  out(`packed ${m.name} ${m.version} into ${packed.dir}\n  input ${m.input.name} [${m.input.shape.join(', ')}], reads ${m.output.tensor} as ${m.output.kind}, ${m.golden.length} golden vectors\n` +
    packed.report.map((r) => `  ${r}\n`).join('') + `next: check the manifest, then 'edge-agent model sign ${packed.dir} --key KEY'\n`);
}

/**
 * install / rollback / list / promote: asks the running agent on its control socket, or works on the store
 * itself. NAME picks the model when the agent serves several (install takes it from the release).
 */
async function lifecycleCommand(command: 'install' | 'rollback' | 'list' | 'promote', args: string[], out: (s: string) => void): Promise<void> {
  const { values: o, positionals } = parse(command, args, { config: { type: 'string', short: 'c' }, reason: { type: 'string' }, shadow: { type: 'boolean' } });
  if (o.help) return out(`${USAGE[command]}\n`);
  if (typeof o.config !== 'string') usage('--config FILE is required', command);
  if (positionals.length > 1 || (command === 'install' && !positionals[0])) usage(command === 'install' ? 'give one version folder DIR' : `unexpected "${positionals[1]}": give at most one model NAME`, command);
  const dir = command === 'install' ? positionals[0] : undefined;
  const model = command === 'install' ? undefined : positionals[0];
  const config = loadConfig(o.config);
  const reason = typeof o.reason === 'string' ? o.reason : 'rolled back by hand';
  const cmd = `model.${command}`;
  const shadow = o.shadow === true;
  const args_: Record<string, unknown> = command === 'install' ? { path: resolvePath(dir as string), shadow } : { model, ...(command === 'rollback' ? { reason } : {}) };
  const answer = await callControl(controlSocketPath(config.store.path), cmd, args_, config.model.verifyDeadlineMs + 30_000);
  if (answer) return report(shadow ? 'shadow' : command, answer.result, true, out);
  if (shadow || command === 'promote') throw new EdgeError('EDGE_ERR_CONTROL', `no agent is running on ${config.store.path}: a shadow runs in the running agent`);
  // No agent running: work on the store itself, holding its lock as an agent would.
  const store = openStore(config.store);
  try {
    const versions = openModelVersions(config.model.versionsDir as string);
    // As an agent's start would: each model's first version is installed (and active when nothing is).
    const record = (e: { model: string; version: string | null; event: string; reason: string }) => store.recordModelEvent(e);
    const names = servedModelNames(config);
    for (const spec of config.models) await seedVersion(versions, spec, installPolicy(config, spec), record);
    const pick = (name: string | undefined): { name: string; spec: ModelSpec } => {
      const i = servedModelIndex(names, name, command === 'install');
      return { name: names[i] as string, spec: config.models[i] as ModelSpec };
    };
    if (command === 'list') {
      const listed = model === undefined ? names : [pick(model).name];
      return report(command, { models: listed.map((name) => ({ name, state: versions.state(name), versions: versions.versions(name), shadow: null })), events: store.modelEvents(20) }, false, out);
    }
    if (command === 'rollback') {
      const { name } = pick(model);
      const state = versions.rollback(name, reason);
      store.recordModelEvent({ model: name, version: state.active, event: 'rolled back', reason });
      return report(command, { name, version: state.active, state }, false, out);
    }
    // With several models the release's manifest says which one it is for (an unreadable one is refused here).
    const { name, spec } = pick(names.length > 1 ? readManifest(dir as string).name : undefined);
    const installed = await installVersion(versions, dir as string, installPolicy(config, spec), name).catch((err: unknown) => {
      record({ model: name, version: candidateVersion(dir as string), event: 'refused', reason: (err as Error).message });
      throw err;
    });
    if (!installed.already) record({ model: name, version: installed.version, event: 'installed', reason: `from ${dir}` });
    const state = versions.activate(name, installed.version, `installed from ${dir}`);
    record({ model: name, version: installed.version, event: 'activated', reason: `installed from ${dir} (agent not running)` });
    return report(command, { name, version: installed.version, state }, false, out);
  } finally {
    store.close();
  }
}

type Listed = { name: string; state: { active: string | null; previous: string | null }; versions?: string[]; shadow?: { version: string; compared: number; agreed: number; dropped: number } | null };

function report(command: string, result: unknown, live: boolean, out: (s: string) => void): void {
  const r = result as Listed & { version?: string; models?: Listed[]; events?: { at: number; model: string; version: string | null; event: string; reason: string }[] };
  const where = live ? 'in the running agent' : 'from the next start of the agent';
  if (command === 'install') return out(`${r.name} ${r.version} installed and active ${where} (previous: ${r.state.previous ?? 'none'})\n`);
  if (command === 'shadow') return out(`${r.name} ${r.version} installed and running as a shadow beside ${r.state.active ?? 'none'}\n`);
  if (command === 'promote') return out(`${r.name} ${r.version} promoted from shadow: active, on probation (previous: ${r.state.previous ?? 'none'})\n`);
  if (command === 'rollback') return out(`${r.name} rolled back to ${r.version} ${where} (previous: ${r.state.previous ?? 'none'})\n`);
  const models = r.models ?? [];
  const several = models.length > 1;
  out(models.map((m) => {
    const s = m.shadow;
    return `${m.name}: active ${m.state.active ?? 'none'}, previous ${m.state.previous ?? 'none'}; installed: ${(m.versions ?? []).sort(compareVersions).join(', ')}\n` +
      (s ? `  shadow ${s.version}: agreed with the active version on ${s.agreed} of ${s.compared} rows${s.compared ? ` (${((100 * s.agreed) / s.compared).toFixed(1)} %)` : ''}, ${s.dropped} batches dropped while it was busy\n` : '');
  }).join('') +
    (r.events ?? []).filter((e) => models.some((m) => m.name === e.model)).map((e) => `  ${new Date(e.at).toISOString()} ${several ? `${e.model} ` : ''}${e.event} ${e.version ?? ''}: ${e.reason}\n`).join(''));
}

async function drill(args: string[], out: (s: string) => void): Promise<void> {
  const { values: o, positionals } = parse('drill', args, { config: { type: 'string', short: 'c' }, readings: { type: 'string' }, timeout: { type: 'string' } });
  if (o.help) return out(`${USAGE.drill}\n`);
  if (typeof o.config !== 'string') usage('--config FILE is required', 'drill');
  if (positionals.length > 1) usage(`unexpected "${positionals[1]}"`, 'drill');
  const readings = typeof o.readings === 'string' ? Number(o.readings) : 100;
  const timeoutSec = typeof o.timeout === 'string' ? Number(o.timeout) : 120;
  if (!Number.isInteger(readings) || readings < 1) usage(`--readings: got "${String(o.readings)}", expected a whole number above 0`, 'drill');
  if (!(timeoutSec > 0)) usage(`--timeout: got "${String(o.timeout)}", expected seconds above 0`, 'drill');
  const config = loadConfig(o.config);
  const answer = await callControl(controlSocketPath(config.store.path), 'model.drill', { model: positionals[0], readings, timeoutMs: timeoutSec * 1000 }, timeoutSec * 1000 + config.model.verifyDeadlineMs + 60_000);
  if (!answer) throw new EdgeError('EDGE_ERR_CONTROL', `no agent is running on ${config.store.path}: the drill rehearses on a running agent`);
  const r = answer.result as DrillReport;
  out(`drill of ${r.model} ${r.from} (copy ${r.copy})\n${r.steps.map((s) => `  ${s.step.padEnd(38)} ${String(s.ms).padStart(6)} ms  ${s.result}\n`).join('')}` +
    `${r.active === r.from ? `${r.from} serves again: the path from install to rollback works on this line` : `ATTENTION: ${r.active} serves, not ${r.from}`}\n`);
  if (r.active !== r.from || r.steps.some((s) => s.result.startsWith('FAILED'))) throw new EdgeError('EDGE_ERR_DRILL_FAILED', `the drill of ${r.model} did not end where it began`);
}

async function push(args: string[], out: (s: string) => void): Promise<void> {
  const { values: o, positionals } = parse('push', args, {
    broker: { type: 'string' }, target: { type: 'string' }, url: { type: 'string' }, timeout: { type: 'string' }, prefix: { type: 'string' }, username: { type: 'string' },
  });
  if (o.help) return out(`${USAGE.push}\n`);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) usage('give one version folder DIR', 'push');
  if (typeof o.broker !== 'string' || !brokerUrlSchema.safeParse(o.broker).success) usage('--broker URL is required: mqtt://host:port or mqtts://host:port, without credentials', 'push');
  if (typeof o.target !== 'string') usage('--target group:NAME or agent:ID is required', 'push');
  const timeoutSec = typeof o.timeout === 'string' ? Number(o.timeout) : 600;
  if (!(timeoutSec > 0)) usage(`--timeout: got "${String(o.timeout)}", expected seconds above 0`, 'push');
  await pushRelease({
    dir, broker: o.broker, target: o.target, timeoutMs: timeoutSec * 1000, topicPrefix: typeof o.prefix === 'string' ? o.prefix : 'edge-agent',
    ...(typeof o.url === 'string' ? { url: o.url } : {}),
    ...(typeof o.username === 'string' ? { username: o.username, ...(process.env.EDGE_AGENT_MQTT_PASSWORD ? { password: process.env.EDGE_AGENT_MQTT_PASSWORD } : {}) } : {}),
  }, out);
}

function keygen(args: string[], out: (s: string) => void): void {
  const { values: o, positionals } = parse('keygen', args, { out: { type: 'string' }, name: { type: 'string' } });
  if (o.help) return out(`${USAGE.keygen}\n`);
  if (positionals.length) usage(`unexpected "${positionals[0]}"`, 'keygen');
  if (typeof o.out !== 'string') usage('--out DIR is required', 'keygen');
  const name = typeof o.name === 'string' ? o.name : 'release-signing';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) usage(`--name: got "${name}", expected letters, digits, . _ -`, 'keygen');
  if (!existsSync(o.out) || !lstatSync(o.out).isDirectory()) throw new EdgeError('EDGE_ERR_CLI_USAGE', `--out: ${o.out} is not a folder`);
  const keyPath = join(o.out, `${name}.key`);
  const pubPath = join(o.out, `${name}.pub`);
  for (const p of [keyPath, pubPath]) if (existsSync(p)) throw new EdgeError('EDGE_ERR_CLI_USAGE', `${p} exists; choose another --name or folder (a key is never overwritten)`);
  const pair = generateKeyPair();
  writeFileSync(keyPath, pair.privateKeyPem, { mode: 0o600, flag: 'wx' });
  writeFileSync(pubPath, pair.publicKeyPem, { mode: 0o644, flag: 'wx' });
  out(`key id ${pair.keyId}\n  private key: ${keyPath} (keep it off the line PCs)\n  public key:  ${pubPath} (give it to the agents as a trusted key)\n`);
}

function expiry(when: string, now: number): string {
  const days = /^(\d{1,4})d$/.exec(when);
  if (days) return new Date(now + Number(days[1]) * 86_400_000).toISOString();
  const t = Date.parse(when);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(when) || Number.isNaN(t)) usage(`--expires: got "${when}", expected an ISO date-time (2027-01-31T00:00:00Z) or Nd`, 'sign');
  return new Date(t).toISOString();
}

function sign(args: string[], out: (s: string) => void): void {
  const { values: o, positionals } = parse('sign', args, { key: { type: 'string' }, expires: { type: 'string' }, rollback: { type: 'boolean' } });
  if (o.help) return out(`${USAGE.sign}\n`);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) usage('give one version folder DIR', 'sign');
  if (typeof o.key !== 'string') usage('--key FILE is required', 'sign');
  const expiresAt = typeof o.expires === 'string' ? expiry(o.expires, Date.now()) : undefined;
  let pem: string;
  try {
    pem = readRegular(o.key, 64 * 1024).toString('utf8');
  } catch (err) {
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `--key: cannot read ${o.key} (${(err as Error).message})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = parsePrivateKey(pem);
  } catch (err) {
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `--key: ${o.key} is not an ed25519 private key from 'model keygen' (${(err as Error).message})`);
  }
  const manifestPath = join(dir, 'manifest.json');
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(readRegular(manifestPath, MAX_MANIFEST_BYTES).toString('utf8')) as Record<string, unknown>;
    if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) throw new Error('not a JSON object');
  } catch (err) {
    throw new EdgeError('EDGE_ERR_MANIFEST', `${manifestPath}: cannot read it as a manifest (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const files: Release['files'] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (entry === 'manifest.json' || entry === 'signature.json') continue;
    if (!lstatSync(join(dir, entry)).isFile()) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${join(dir, entry)} is not a regular file; a release holds regular files only`);
    const data = readFileSync(join(dir, entry));
    files.push({ name: entry, sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length });
  }
  // The inference contract names the model file and its hash: it must be this folder's file.
  const contract = manifest.file as { name?: unknown; sha256?: unknown } | undefined;
  const modelFile = files.find((f) => f.name === (contract?.name ?? 'model.onnx'));
  if (!modelFile) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${dir} has no ${String(contract?.name ?? 'model.onnx')}, the file manifest.json's file.name names`);
  if (contract?.sha256 !== modelFile.sha256) {
    throw new EdgeError('EDGE_ERR_RELEASE_HASH', `${modelFile.name}: sha256 is ${modelFile.sha256}, manifest.json's file.sha256 says ${String(contract?.sha256)}; is this the manifest of this model?`);
  }
  const previous = (manifest.release ?? {}) as Partial<Release>;
  const release = releaseSchema.parse({
    files,
    ...(expiresAt ? { expiresAt } : previous.expiresAt ? { expiresAt: previous.expiresAt } : {}),
    rollback: o.rollback === true,
  });
  const bytes = Buffer.from(`${JSON.stringify({ ...manifest, release }, null, 2)}\n`);
  const signature = signBytes(bytes, privateKey);
  writeFileSync(manifestPath, bytes);
  writeFileSync(join(dir, 'signature.json'), `${JSON.stringify(signature)}\n`);
  const what = `${String(manifest.name)} ${String(manifest.version)}`;
  out(`signed ${what} (${files.map((f) => `${f.name} ${f.bytes} bytes`).join(', ')}) with key ${signature.keyId}` +
    `${release.expiresAt ? `, expires ${release.expiresAt}` : ''}${release.rollback ? ', as a rollback' : ''}\n  ${join(dir, 'signature.json')}\n`);
}

/** Runs `edge-agent model …`; writes its report through `out`. */
export function runModelCommand(argv: string[], out: (s: string) => void): void | Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') return out(`${USAGE.model}\n`);
  if (command === 'pack') return pack(rest, out);
  if (command === 'push') return push(rest, out);
  if (command === 'drill') return drill(rest, out);
  if (command === 'install' || command === 'rollback' || command === 'list' || command === 'promote') return lifecycleCommand(command, rest, out);
  if (command === 'keygen') return keygen(rest, out);
  if (command === 'sign') return sign(rest, out);
  usage(`unknown model command "${basename(command)}"`, 'model');
}
