// Model versions on disk: takes the models folder; gives each model's installed version folders, which
// one serves and which one came before it, with activation that is atomic on disk and one consistent
// state at boot wherever a crash hit.
//
//   <root>/<model>/versions/<version>/   complete, verified version folders
//   <root>/.incoming/<random>/           a version being copied, downloaded or verified: removed at boot
//   <root>/<model>/state.json            { active, previous, highestTrusted, ... }
//
// state.json is replaced, never edited: write a temp file, fsync it, rename it over the old one, fsync
// the folder. A crash leaves the old state or the new one, never half of either. A version folder is
// complete (every file fsynced, renamed into versions/, folder fsynced) before any state names it.

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { compareVersions } from './semver.js';

const stateSchema = z.strictObject({
  active: z.string().nullable(),
  previous: z.string().nullable(),
  /** The highest version ever trusted for this model: a lower one is refused unless signed as a rollback. */
  highestTrusted: z.string().nullable(),
  /** A version running beside the active one on the same rows, its predictions stored, not published. */
  shadow: z.string().nullable().default(null),
  updatedAt: z.string(),
  reason: z.string(),
});

export type ModelState = z.infer<typeof stateSchema>;

const EMPTY: ModelState = { active: null, previous: null, highestTrusted: null, shadow: null, updatedAt: new Date(0).toISOString(), reason: 'nothing installed' };

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs every file and folder below `dir`, then `dir` itself. */
function fsyncTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) fsyncTree(p);
    else if (entry.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

/** Writes `text` to `path` so that a crash leaves either the old file or the new one. */
export function writeFileAtomic(path: string, text: string): void {
  const dir = join(path, '..');
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  fsyncPath(tmp);
  renameSync(tmp, path);
  fsyncPath(dir);
}

export interface Recovery {
  model: string;
  /** Folders of versions whose install a crash interrupted, removed. */
  removedIncoming: string[];
  /** state.json names a version folder that is gone: what was done about it. */
  problem: string | null;
}

export interface ModelVersions {
  readonly root: string;
  /** What `open` found and cleaned up, per model. */
  readonly recovered: readonly Recovery[];
  models(): string[];
  state(model: string): ModelState;
  versions(model: string): string[];
  versionDir(model: string, version: string): string;
  /** A fresh, empty folder to stage a version in; `commit` moves it into place (same file system). */
  incoming(): string;
  /** Makes an incoming folder durable and moves it to versions/<version>. Gives its final path. */
  commit(model: string, version: string, incomingDir: string): string;
  /** `version` serves; the one that served before becomes `previous`. */
  activate(model: string, version: string, reason: string): ModelState;
  /** `previous` serves again; the version rolled back from becomes `previous`. */
  rollback(model: string, reason: string): ModelState;
  setHighestTrusted(model: string, version: string): ModelState;
  setShadow(model: string, version: string | null, reason: string): ModelState;
  /** Removes an installed version that is neither active nor previous (a drill's copy). */
  remove(model: string, version: string): void;
  /** Names `previous` as the rollback target again (after a drill's rollback). */
  setPrevious(model: string, previous: string | null, reason: string): ModelState;
  /** Removes versions beyond the newest `keep` installed, never the active or the previous one. */
  prune(model: string, keep: number): string[];
}

export function openModelVersions(root: string): ModelVersions {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const modelDir = (m: string) => join(root, m);
  const statePath = (m: string) => join(modelDir(m), 'state.json');

  function readState(model: string): ModelState {
    const path = statePath(model);
    if (!existsSync(path)) return { ...EMPTY };
    return stateSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  }

  function writeState(model: string, next: Omit<ModelState, 'updatedAt'>): ModelState {
    const state: ModelState = { ...next, updatedAt: new Date().toISOString() };
    mkdirSync(modelDir(model), { recursive: true, mode: 0o700 });
    writeFileAtomic(statePath(model), `${JSON.stringify(state, null, 2)}\n`);
    return state;
  }

  const versionsOf = (model: string) => {
    const dir = join(modelDir(model), 'versions');
    return existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name) : [];
  };

  // Boot: whatever a crash interrupted is removed, and the state is made to name only what exists.
  const recovered: Recovery[] = [];
  const incomingRoot = join(root, '.incoming');
  const removedIncoming = existsSync(incomingRoot) ? readdirSync(incomingRoot) : [];
  rmSync(incomingRoot, { recursive: true, force: true });
  if (removedIncoming.length) recovered.push({ model: '(staging)', removedIncoming, problem: null });
  const modelNames = () => readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  for (const model of modelNames()) {
    for (const f of readdirSync(modelDir(model)).filter((f) => f.startsWith('state.json.tmp-'))) rmSync(join(modelDir(model), f), { force: true });
    const state = readState(model);
    const have = new Set(versionsOf(model));
    let problem: string | null = null;
    if (state.active && !have.has(state.active)) {
      const fallback = state.previous && have.has(state.previous) ? state.previous : null;
      problem = `state.json names active version ${state.active}, whose folder is gone; ${fallback ? `falling back to ${fallback}` : 'no previous version to fall back to'}`;
      writeState(model, { ...state, active: fallback, previous: null, reason: problem });
    } else if (state.previous && !have.has(state.previous)) {
      problem = `state.json names previous version ${state.previous}, whose folder is gone; no rollback target`;
      writeState(model, { ...state, previous: null, reason: problem });
    }
    if (problem) recovered.push({ model, removedIncoming: [], problem });
  }

  return {
    root,
    recovered,
    models: modelNames,
    state: readState,
    versions: versionsOf,
    versionDir: (model, version) => join(modelDir(model), 'versions', version),
    incoming() {
      const dir = join(incomingRoot, randomBytes(6).toString('hex'));
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      return dir;
    },
    commit(model, version, incomingDir) {
      const versionsDir = join(modelDir(model), 'versions');
      mkdirSync(versionsDir, { recursive: true, mode: 0o700 });
      const target = join(versionsDir, version);
      if (existsSync(target)) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${model} ${version} is already installed in ${versionsDir}`);
      fsyncTree(incomingDir);
      renameSync(incomingDir, target);
      fsyncPath(versionsDir);
      return target;
    },
    activate(model, version, reason) {
      if (!versionsOf(model).includes(version)) throw new Error(`${model} ${version} is not installed`);
      const state = readState(model);
      if (state.active === version) return state;
      return writeState(model, { ...state, active: version, previous: state.active, reason });
    },
    rollback(model, reason) {
      const state = readState(model);
      if (!state.previous) throw new Error(`${model} has no previous version to roll back to`);
      return writeState(model, { ...state, active: state.previous, previous: state.active, reason });
    },
    remove(model, version) {
      const state = readState(model);
      if (state.active === version || state.previous === version) throw new Error(`${model} ${version} is in use (active or previous)`);
      rmSync(join(modelDir(model), 'versions', version), { recursive: true, force: true });
      fsyncPath(join(modelDir(model), 'versions'));
    },
    setPrevious(model, previous, reason) {
      return writeState(model, { ...readState(model), previous, reason });
    },
    setShadow(model, version, reason) {
      return writeState(model, { ...readState(model), shadow: version, reason });
    },
    setHighestTrusted(model, version) {
      return writeState(model, { ...readState(model), highestTrusted: version });
    },
    prune(model, keep) {
      const state = readState(model);
      const dir = join(modelDir(model), 'versions');
      const newestFirst = versionsOf(model).sort((a, b) => compareVersions(b, a));
      const removed = newestFirst.slice(keep).filter((v) => v !== state.active && v !== state.previous && v !== state.shadow);
      for (const v of removed) rmSync(join(dir, v), { recursive: true, force: true });
      if (removed.length) fsyncPath(dir);
      return removed;
    },
  };
}
