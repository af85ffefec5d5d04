// Activation: takes installed versions (versions.ts) and the slot the agent serves from; gives atomic
// activation and rollback. The new version is loaded and warmed (its golden vectors run in its own
// worker) before anything changes; then the pointer on disk is replaced (write, fsync, rename, fsync),
// then the slot, so the next batch uses it; the old version's worker closes after its last batch. No
// message waits on any of this. Every step is recorded as a lifecycle event with its reason.

import type { Logger } from '../agent/log.js';
import type { CommittedBatch, ModelSlot, ServingModel } from '../agent/infer/predict.js';
import type { PredictionRow } from '../agent/store/store.js';
import { interpret, rowShape, rowSize } from './manifest.js';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProbation, type ProbationOptions, type Verdict } from './probation.js';
import { candidateVersion, installVersion, testKillPoint, type InstallPolicy } from './install.js';
import type { ModelState, ModelVersions } from './versions.js';

export interface ModelEvent { model: string; version: string | null; event: string; reason: string }

export interface ManagerDeps {
  versions: ModelVersions;
  slot: ModelSlot;
  /** Loads a version folder into a worker, checks it against the config, runs its golden vectors. */
  load(dir: string): Promise<ServingModel>;
  /** Resolves when no batch that captured `model` is in flight. */
  retired(model: ServingModel): Promise<void>;
  record(e: ModelEvent): void;
  /** Stores a shadow version's predictions (role 'shadow'). */
  storeShadow(rows: readonly PredictionRow[]): void;
  log: Logger;
  keepVersions: number;
  policy: InstallPolicy;
  probation: ProbationOptions;
}

export interface ModelManager {
  /** `from`: where the candidate came from, for the record (default: its folder). */
  install(candidate: string, from?: string): Promise<{ name: string; version: string; state: ModelState }>;
  rollback(reason: string): Promise<{ name: string; version: string; state: ModelState }>;
  list(): { name: string; state: ModelState; versions: string[]; shadow: ShadowStats | null };
  /** Installs a version as a shadow: it runs beside the active one on the same rows; nothing of it is published. */
  installShadow(candidate: string, from?: string): Promise<{ name: string; version: string; state: ModelState }>;
  /** The shadow becomes the active version (on probation); the active one becomes the previous. */
  promote(): Promise<{ name: string; version: string; state: ModelState }>;
  /** At start: the shadow named in state.json runs again (its comparison counts start afresh). */
  resumeShadow(): Promise<void>;
  /** Every committed batch ("batch committed"): probation watches the version it put on trial. */
  observe(batch: CommittedBatch): void;
  /**
   * Rehearses the whole path on the live line: a copy of the active version is verified, installed and
   * activated, serves its probation (`readings`, waiting at most `timeoutMs`), then a rollback is forced
   * and the copy removed. Gives what each step took and found.
   */
  drill(readings: number, timeoutMs: number): Promise<DrillReport>;
  /** At stop: the shadow's worker is closed after its batch in hand (state.json keeps it for the next start). */
  close(): Promise<void>;
}

export interface ShadowStats {
  version: string;
  /** Rows the shadow predicted, and on how many its label agreed with the active version's. */
  compared: number;
  agreed: number;
  /** Batches not given to the shadow because it was still busy: dropped, never queued. */
  dropped: number;
}

export interface DrillReport {
  model: string;
  from: string;
  copy: string;
  steps: { step: string; ms: number; result: string }[];
  /** The active version after the drill: the one it started from, unless something went wrong. */
  active: string | null;
}

export function createModelManager(deps: ManagerDeps): ModelManager {
  let pendingVerdict: ((v: Verdict) => void) | null = null;
  let shadow: { model: ServingModel; stats: ShadowStats; busy: boolean } | null = null;

  /** Runs a committed batch's rows through the shadow when it is idle; when it is busy the batch is dropped. */
  function runShadow(b: CommittedBatch): void {
    if (!shadow || b.model === shadow.model || b.predictions.length === 0) return;
    if (shadow.busy) return void shadow.stats.dropped++;
    const s = shadow;
    s.busy = true;
    const m = s.model.manifest;
    // A window's row is channels × samples (the stored features hold the window's values).
    const cols = rowSize(m);
    const data = new Float32Array(b.predictions.length * cols);
    b.predictions.forEach((p, r) => data.set(p.features.length === cols ? p.features : p.features.slice(0, cols), r * cols));
    void s.model.inference
      .run(m.input.name, data, b.predictions.length, cols, rowShape(m))
      .then((res) => {
        const out = res.outputs[m.output.tensor]?.data;
        if (!out || shadow !== s) return;
        const width = out.length / b.predictions.length;
        const rows: PredictionRow[] = [];
        b.predictions.forEach((p, r) => {
          const row = Array.from(out.subarray(r * width, (r + 1) * width));
          if (!row.every(Number.isFinite)) return;
          const v = interpret(m.output, row);
          const label = 'label' in v ? v.label : null;
          s.stats.compared++;
          if (label === p.label) s.stats.agreed++;
          rows.push({ ...p, modelName: m.name, modelVersion: m.version, outputs: row, label, score: v.kind === 'classification' ? (v.probabilities[v.label] ?? null) : v.kind === 'score' ? v.score : v.value, latencyMs: res.ms, inboxId: null, dedupKey: null });
        });
        deps.storeShadow(rows);
      })
      .catch((err: unknown) => {
        // A shadow ended meanwhile (replaced, promoted, the agent stopping) fails its batch in hand: not news.
        if (shadow === s) deps.log.warn({ version: m.version, err: (err as Error).message }, 'shadow batch failed');
      })
      .finally(() => (s.busy = false));
  }

  async function endShadow(reason: string): Promise<void> {
    if (!shadow) return;
    const s = shadow;
    shadow = null;
    deps.versions.setShadow(name(), null, reason);
    await s.model.inference.close();
  }
  const name = () => deps.slot.current.manifest.name;
  // One lifecycle operation at a time: a second install waits for the first.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  // The version on probation (after an install), with its watcher and whoever waits for its verdict.
  let trial: { model: ServingModel; watch: ReturnType<typeof createProbation>; waiting: ((v: Verdict) => void)[]; drill?: boolean } | null = null;

  /** `loaded`: the version already loaded and warmed (a shadow being promoted); otherwise it is loaded here. */
  async function swapTo(version: string, event: string, reason: string, onDisk: () => ModelState, probation: boolean, trialOptions = deps.probation, loaded?: ServingModel) {
    const model = name();
    let next: ServingModel;
    try {
      next = loaded ?? (await deps.load(deps.versions.versionDir(model, version)));
    } catch (err) {
      deps.record({ model, version, event: 'refused', reason: (err as Error).message });
      throw err;
    }
    const state = onDisk();
    testKillPoint('pointer');
    const old = deps.slot.swap(next);
    deps.record({ model, version, event, reason });
    deps.log.info({ model, version, previous: old.manifest.version, event, reason }, 'model version activated');
    void deps.retired(old).then(() => old.inference.close());
    trial = probation && trialOptions.predictions > 0
      ? { model: next, watch: createProbation(trialOptions, next.manifest.latencyBudgetMs, next.manifest.baseline?.predictions), waiting: [] }
      : null;
    if (trial) deps.record({ model, version, event: 'on probation', reason: `for ${trialOptions.predictions} readings or ${trialOptions.maxMinutes} min` });
    else if (probation) deps.record({ model, version, event: 'committed', reason: 'no probation configured (model.probation.predictions: 0)' });
    const removed = deps.versions.prune(model, deps.keepVersions);
    if (removed.length) deps.log.info({ model, removed }, 'old model versions removed');
    return { name: model, version, state };
  }

  /** Verifies and installs a candidate (install.ts), recording its refusal or its installation. */
  async function installRecorded(candidate: string, from: string, check: (version: string) => void = () => undefined) {
    const model = name();
    let installed;
    try {
      installed = await installVersion(deps.versions, candidate, deps.policy, model);
      check(installed.version);
    } catch (err) {
      deps.record({ model, version: candidateVersion(candidate), event: 'refused', reason: (err as Error).message });
      deps.log.warn({ model, candidate, err: (err as Error).message }, 'model version refused');
      throw err;
    }
    if (!installed.already) deps.record({ model, version: installed.version, event: 'installed', reason: `from ${from}${installed.signedBy ? `, signed by ${installed.signedBy}` : ', unsigned'}` });
    return installed;
  }

  const manager: ModelManager = {
    install: (candidate, from = candidate) =>
      serial(async () => {
        const model = name();
        const installed = await installRecorded(candidate, from);
        if (deps.versions.state(model).active === installed.version) return { name: model, version: installed.version, state: deps.versions.state(model) };
        return swapTo(installed.version, 'activated', `installed from ${from}`, () => deps.versions.activate(model, installed.version, `installed from ${from}`), true);
      }),
    rollback: (reason) =>
      serial(async () => {
        const model = name();
        const previous = deps.versions.state(model).previous;
        if (!previous) throw new Error(`${model} has no previous version to roll back to`);
        return swapTo(previous, 'rolled back', reason, () => deps.versions.rollback(model, reason), false);
      }),
    list: () => ({ name: name(), state: deps.versions.state(name()), versions: deps.versions.versions(name()), shadow: shadow ? { ...shadow.stats } : null }),
    installShadow: (candidate, from = candidate) =>
      serial(async () => {
        const model = name();
        const installed = await installRecorded(candidate, from, (version) => {
          if (version === deps.versions.state(model).active) throw new Error(`${version} is the active version; a shadow is another one`);
        });
        const next = await deps.load(deps.versions.versionDir(model, installed.version));
        const active = deps.slot.current.manifest.features.map((f) => f.name).join(',');
        if (next.manifest.features.map((f) => f.name).join(',') !== active) {
          await next.inference.close();
          const reason = `a shadow reads the same features in the same order as the active version (${active})`;
          deps.record({ model, version: installed.version, event: 'refused', reason });
          throw new Error(reason);
        }
        await endShadow(`replaced by ${installed.version}`);
        shadow = { model: next, stats: { version: installed.version, compared: 0, agreed: 0, dropped: 0 }, busy: false };
        const state = deps.versions.setShadow(model, installed.version, `shadow from ${from}`);
        deps.record({ model, version: installed.version, event: 'shadow', reason: `beside ${state.active}, from ${from}` });
        deps.log.info({ model, version: installed.version, active: state.active }, 'shadow version running');
        return { name: model, version: installed.version, state };
      }),
    async resumeShadow() {
      const model = name();
      const version = deps.versions.state(model).shadow;
      if (!version) return;
      try {
        shadow = { model: await deps.load(deps.versions.versionDir(model, version)), stats: { version, compared: 0, agreed: 0, dropped: 0 }, busy: false };
        deps.log.info({ model, version }, 'shadow version running');
      } catch (err) {
        deps.versions.setShadow(model, null, `shadow ${version} could not be loaded: ${(err as Error).message}`);
        deps.log.warn({ model, version, err: (err as Error).message }, 'shadow version dropped: it could not be loaded');
      }
    },
    promote: () =>
      serial(async () => {
        const model = name();
        if (!shadow) throw new Error(`${model} has no shadow version to promote`);
        const { model: loaded, stats } = shadow;
        const reason = `promoted from shadow (agreed on ${stats.agreed} of ${stats.compared} rows)`;
        // The shadow is loaded and warm already: it goes into the slot as it is, its worker kept.
        shadow = null;
        deps.versions.setShadow(model, null, reason);
        return swapTo(stats.version, 'activated', reason, () => deps.versions.activate(model, stats.version, reason), true, deps.probation, loaded);
      }),
    observe(batch) {
      runShadow(batch);
      if (!trial || batch.model !== trial.model) return;
      const verdict = trial.watch.observe(batch);
      if (!verdict) return;
      const { version } = trial.model.manifest;
      for (const w of trial.waiting) w(verdict);
      const drill = trial.drill === true;
      trial = null;
      const model = name();
      if (drill) return deps.record({ model, version, event: verdict.ok ? 'committed' : 'probation failed', reason: `drill: ${verdict.ok ? verdict.summary : verdict.reason}` });
      if (verdict.ok) {
        deps.record({ model, version, event: 'committed', reason: `probation passed: ${verdict.summary}` });
        deps.log.info({ model, version, summary: verdict.summary }, 'model version committed after probation');
        return;
      }
      deps.record({ model, version, event: 'probation failed', reason: verdict.reason });
      deps.log.error({ model, version, reason: verdict.reason }, 'model version failed probation; rolling back');
      manager.rollback(`probation of ${version} failed: ${verdict.reason}`).catch((err: unknown) =>
        deps.log.error({ model, version, err: (err as Error).message }, 'automatic rollback failed; the version on probation keeps serving'),
      );
    },
    async close() {
      const s = shadow;
      shadow = null;
      await s?.model.inference.close();
    },
    drill: (readings, timeoutMs) =>
      serial(async () => {
        const model = name();
        const start = deps.versions.state(model);
        const from = start.active as string;
        const parsed = /^(\d+)\.(\d+)\.(\d+)/.exec(from);
        // A version no release will ever have, that stands in a topic: x.y.(z+1)-drill.<time>.
        const copy = parsed ? `${parsed[1]}.${parsed[2]}.${Number(parsed[3]) + 1}-drill.${Date.now()}` : `0.0.0-drill.${Date.now()}`;
        const steps: DrillReport['steps'] = [];
        const timed = async <T>(step: string, fn: () => Promise<T> | T, result: (v: T) => string): Promise<T> => {
          const t0 = performance.now();
          try {
            const v = await fn();
            steps.push({ step, ms: Math.round(performance.now() - t0), result: result(v) });
            return v;
          } catch (err) {
            steps.push({ step, ms: Math.round(performance.now() - t0), result: `FAILED: ${(err as Error).message.split('\n')[0]}` });
            throw err;
          }
        };
        deps.record({ model, version: copy, event: 'drill', reason: `rehearsal from ${from}` });
        const candidate = deps.versions.incoming();
        try {
          await timed('copy the active version', () => {
            const src = deps.versions.versionDir(model, from);
            const m = JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8')) as Record<string, unknown>;
            writeFileSync(join(candidate, 'manifest.json'), JSON.stringify({ ...m, version: copy, release: undefined }));
            copyFileSync(join(src, (m.file as { name: string }).name), join(candidate, (m.file as { name: string }).name));
          }, () => `${from} as ${copy}`);
          // The agent's own copy of a version it verified: no signature to check, and the trust state stays as it was.
          await timed('verify in a child process and install', () => installVersion(deps.versions, candidate, { ...deps.policy, allowUnsigned: true }, model, true, false), (i) => `latency p99 ${i.latencyP99Ms.toFixed(2)} ms`);
          deps.record({ model, version: copy, event: 'installed', reason: `drill: a copy of ${from}` });
          const verdict = new Promise<Verdict | null>((resolve) => {
            const timer = setTimeout(() => resolve(null), timeoutMs);
            pendingVerdict = (v) => (clearTimeout(timer), resolve(v));
          });
          await timed('load, warm and swap in', () => swapTo(copy, 'activated', 'drill', () => deps.versions.activate(model, copy, 'drill'), true, { ...deps.probation, predictions: readings }), () => `${copy} serving`);
          // The drill rolls back itself, whatever the verdict: no automatic rollback behind its back.
          if (trial) {
            trial.drill = true;
            trial.waiting.push((v) => pendingVerdict?.(v));
          }
          await timed('probation', () => verdict, (v) => (v === null ? `no verdict within ${timeoutMs} ms (too few readings?)` : v.ok ? `passed: ${v.summary}` : `failed: ${v.reason}`));
          trial = null;
          await timed('forced rollback', () => swapTo(from, 'rolled back', 'drill', () => deps.versions.rollback(model, 'drill'), false), () => `${from} serving`);
        } finally {
          rmSync(candidate, { recursive: true, force: true });
          const now = deps.versions.state(model);
          if (now.active === from) {
            deps.versions.setPrevious(model, start.previous, 'drill done: the previous version before the drill');
            if (deps.versions.versions(model).includes(copy)) deps.versions.remove(model, copy);
          }
        }
        steps.push({ step: 'clean up', ms: 0, result: `${copy} removed; previous is ${start.previous ?? 'none'} again` });
        deps.record({ model, version: from, event: 'drill done', reason: steps.map((s) => `${s.step}: ${s.result}`).join('; ') });
        return { model, from, copy, steps, active: deps.versions.state(model).active };
      }),
  };
  return manager;
}
