// Activation: takes installed versions (versions.ts) and the slot the agent serves from; gives atomic
// activation and rollback. The new version is loaded and warmed (its golden vectors run in its own
// worker) before anything changes; then the pointer on disk is replaced (write, fsync, rename, fsync),
// then the slot, so the next batch uses it; the old version's worker closes after its last batch. No
// message waits on any of this. Every step is recorded as a lifecycle event with its reason.

import type { Logger } from '../agent/log.js';
import type { CommittedBatch, ModelSlot, ServingModel } from '../agent/predict.js';
import { createProbation, type ProbationOptions } from './probation.js';
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
  log: Logger;
  keepVersions: number;
  policy: InstallPolicy;
  probation: ProbationOptions;
}

export interface ModelManager {
  /** `from`: where the candidate came from, for the record (default: its folder). */
  install(candidate: string, from?: string): Promise<{ name: string; version: string; state: ModelState }>;
  rollback(reason: string): Promise<{ name: string; version: string; state: ModelState }>;
  list(): { name: string; state: ModelState; versions: string[] };
  /** Every committed batch ("batch committed"): probation watches the version it put on trial. */
  observe(batch: CommittedBatch): void;
}

export function createModelManager(deps: ManagerDeps): ModelManager {
  const name = () => deps.slot.current.manifest.name;
  // One lifecycle operation at a time: a second install waits for the first.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  // The version on probation (after an install), with its watcher.
  let trial: { model: ServingModel; watch: ReturnType<typeof createProbation> } | null = null;

  async function swapTo(version: string, event: string, reason: string, onDisk: () => ModelState, probation: boolean) {
    const model = name();
    let next: ServingModel;
    try {
      next = await deps.load(deps.versions.versionDir(model, version));
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
    trial = probation && deps.probation.predictions > 0
      ? { model: next, watch: createProbation(deps.probation, next.manifest.latencyBudgetMs, next.manifest.baseline?.predictions) }
      : null;
    if (trial) deps.record({ model, version, event: 'on probation', reason: `for ${deps.probation.predictions} readings or ${deps.probation.maxMinutes} min` });
    else if (probation) deps.record({ model, version, event: 'committed', reason: 'no probation configured (model.probation.predictions: 0)' });
    const removed = deps.versions.prune(model, deps.keepVersions);
    if (removed.length) deps.log.info({ model, removed }, 'old model versions removed');
    return { name: model, version, state };
  }

  const manager: ModelManager = {
    install: (candidate, from = candidate) =>
      serial(async () => {
        const model = name();
        let installed;
        try {
          installed = await installVersion(deps.versions, candidate, deps.policy, model);
        } catch (err) {
          deps.record({ model, version: candidateVersion(candidate), event: 'refused', reason: (err as Error).message });
          deps.log.warn({ model, candidate, err: (err as Error).message }, 'model version refused');
          throw err;
        }
        if (!installed.already) deps.record({ model, version: installed.version, event: 'installed', reason: `from ${from}${installed.signedBy ? `, signed by ${installed.signedBy}` : ', unsigned'}` });
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
    list: () => ({ name: name(), state: deps.versions.state(name()), versions: deps.versions.versions(name()) }),
    observe(batch) {
      if (!trial || batch.model !== trial.model) return;
      const verdict = trial.watch.observe(batch);
      if (!verdict) return;
      const { version } = trial.model.manifest;
      trial = null;
      const model = name();
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
  };
  return manager;
}
