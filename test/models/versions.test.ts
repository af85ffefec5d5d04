// Model versions on disk: atomic activation, rollback, pruning that never touches the active or the
// previous version, and one consistent state at boot after a crash at any step of an install.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareVersions } from '../../models/semver.js';
import { openModelVersions } from '../../models/versions.js';
import { tempDir } from '../helpers/parts.js';

function install(store: ReturnType<typeof openModelVersions>, model: string, version: string): string {
  const dir = store.incoming();
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: model, version }));
  writeFileSync(join(dir, 'model.onnx'), Buffer.alloc(16, 1));
  return store.commit(model, version, dir);
}

test('activate, roll back and prune keep the active and previous versions', { timeout: 10_000 }, (t) => {
  const root = join(tempDir(t), 'models');
  const store = openModelVersions(root);
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.10.0']) install(store, 'bearing', v);
  assert.deepEqual(store.state('bearing').active, null);
  store.activate('bearing', '1.0.0', 'first');
  const s = store.activate('bearing', '1.1.0', 'push');
  assert.deepEqual([s.active, s.previous, s.reason], ['1.1.0', '1.0.0', 'push']);
  const back = store.rollback('bearing', 'probation: NaN outputs');
  assert.deepEqual([back.active, back.previous], ['1.0.0', '1.1.0']);
  // What is on disk is what the next process reads.
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'bearing', 'state.json'), 'utf8')).active, '1.0.0');
  assert.deepEqual(openModelVersions(root).state('bearing').active, '1.0.0');
  // Keep 1: the newest (1.10.0) stays, and so do the active (1.0.0) and the previous (1.1.0).
  assert.deepEqual(store.prune('bearing', 1).sort(), ['1.2.0']);
  assert.deepEqual(store.versions('bearing').sort(compareVersions), ['1.0.0', '1.1.0', '1.10.0']);
  assert.throws(() => store.activate('bearing', '9.9.9', 'x'), /not installed/);
  assert.throws(() => install(store, 'bearing', '1.0.0'), /already installed/);
});

test('at boot, interrupted installs are removed and a state naming a missing folder falls back', { timeout: 10_000 }, (t) => {
  const root = join(tempDir(t), 'models');
  const store = openModelVersions(root);
  install(store, 'bearing', '1.0.0');
  install(store, 'bearing', '1.1.0');
  store.activate('bearing', '1.0.0', 'first');
  store.activate('bearing', '1.1.0', 'push');
  // A crash mid-download leaves an incoming folder and a temp state file.
  const half = store.incoming();
  writeFileSync(join(half, 'model.onnx'), Buffer.alloc(3));
  writeFileSync(join(root, 'bearing', 'state.json.tmp-deadbeef'), '{"active":');
  const again = openModelVersions(root);
  assert.deepEqual(again.recovered.map((r) => [r.model, r.removedIncoming.length, r.problem]), [['(staging)', 1, null]]);
  assert.equal(existsSync(half), false);
  assert.deepEqual(readdirSync(join(root, 'bearing')).sort(), ['state.json', 'versions']);
  // A version folder removed by hand: the state falls back to the previous version.
  rmSync(again.versionDir('bearing', '1.1.0'), { recursive: true });
  const third = openModelVersions(root);
  assert.match(third.recovered[0]?.problem ?? '', /active version 1\.1\.0, whose folder is gone; falling back to 1\.0\.0/);
  assert.deepEqual([third.state('bearing').active, third.state('bearing').previous], ['1.0.0', null]);
  mkdirSync(join(root, 'empty-model'));
  assert.deepEqual(openModelVersions(root).state('empty-model').active, null);
});

test('versions compare as semantic versions', { timeout: 10_000 }, () => {
  assert.ok(compareVersions('1.10.0', '1.9.2') > 0);
  assert.ok(compareVersions('1.1.0-rc.1', '1.1.0') < 0);
  assert.equal(compareVersions('1.1.0+build.7', '1.1.0'), 0);
  assert.ok(compareVersions('nightly', '99.0.0') > 0, 'non-semver sorts after semver');
});
