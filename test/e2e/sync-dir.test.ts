// Upstream sync to a directory (sync/dir-target.ts), with the agent as a child process on a real mosquitto:
// every row lands in the folder's files once, and a reader watching the folder only ever sees complete gzip
// files; kill -9 after a file's rename and before the cursor moved leaves nothing a collector that dedupes by
// file name cannot recognise; a folder the agent cannot write, a missing one and one short of free space
// show in `sync status`, lose nothing, and the rows follow once the folder is fixed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { agentConfig, mqttClient, openDb, publishSequence, runCli, spawnAgent, startMosquitto, stopChild, teardown, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

type Row = Record<string, unknown> & { kind: string; id: number; store: string };

function dirConfig(dir: string, brokerUrl: string, sync: Record<string, unknown>) {
  const dbPath = join(dir, 'agent.db');
  const config = agentConfig({
    url: brokerUrl, dbPath, releases: { agentId: 'line3-pc1' },
    sync: { schedule: '* * * * * *', runDeadlineMs: 5000, batchRows: 100, retry: { minMs: 50, maxMs: 400 }, ...sync },
  });
  return { dbPath, path: writeConfig(dir, config) };
}

const storedIds = (dbPath: string) => {
  const db = openDb(dbPath);
  try {
    return (db.prepare('SELECT id FROM predictions ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  } finally {
    db.close();
  }
};

async function publish(t: TestContext, brokerUrl: string, n: number) {
  const gateway = await mqttClient(t, brokerUrl);
  await publishSequence(gateway, 'plant/press-1/bearing', n, 50, 5).done;
}

/** What a collector does with one file: gunzip it whole, one JSON object per line. Throws on a partial file. */
function readBatchFile(path: string): Row[] {
  const text = gunzipSync(readFileSync(path)).toString('utf8');
  if (!text.endsWith('\n')) throw new Error(`${path}: the last line is cut off`);
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
}

/** The files a collector takes: dot files are the agent's temp files. */
const visible = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith('.')).sort();

const FILE = /^line3-pc1-([0-9a-f]{32})-(predictions|dead_letters|model_events)-(\d+)-(\d+)\.ndjson\.gz$/;

/** Each visible file's rows, checked against its name (agent, store, kind, first and last id). */
function collect(dir: string): Map<string, Row[]> {
  const files = new Map<string, Row[]>();
  for (const name of visible(dir)) {
    const m = FILE.exec(name);
    assert.ok(m, `a file named as documented: ${name}`);
    const rows = readBatchFile(join(dir, name));
    assert.equal(rows[0]?.id, Number(m[3]), `${name}: its first row`);
    assert.equal(rows[rows.length - 1]?.id, Number(m[4]), `${name}: its last row`);
    assert.ok(rows.every((r) => r.store === m[1] && r.agent === 'line3-pc1'), `${name}: rows of its agent and store`);
    files.set(name, rows);
  }
  return files;
}

const predictionIds = (files: Iterable<Row[]>) => [...files].flat().filter((r) => r.kind === 'prediction').map((r) => r.id).sort((a, b) => a - b);

/**
 * A reader that opens every file the moment it appears in the folder (inotify through fs.watch, and a poll
 * as a backstop) and gunzips it whole; it records each file it could not read. Stopped at teardown.
 */
function watchReader(t: Teardown, dir: string) {
  const problems: string[] = [];
  const read = new Set<string>();
  const check = (name: string) => {
    if (name.startsWith('.')) return;
    let body: Buffer;
    try {
      body = readFileSync(join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const text = gunzipSync(body).toString('utf8');
      if (!text.endsWith('\n')) throw new Error('the last line is cut off');
      read.add(name);
    } catch (err) {
      problems.push(`${name} (${body.length} bytes): ${(err as Error).message}`);
    }
  };
  const watcher = watch(dir, (_event, name) => {
    if (name) check(name);
  });
  const poll = setInterval(() => readdirSync(dir).forEach(check), 20);
  teardown(t, () => {
    watcher.close();
    clearInterval(poll);
  });
  return { problems, read };
}

test('every prediction lands in the folder once, in files no larger than maxFileBytes, and a reader never sees a partial file', { timeout: 90_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const out = join(dir, 'out');
  mkdirSync(out);
  const reader = watchReader(t, out);
  // A relative path: taken from the config file's folder. maxFileBytes small enough that 100 rows are split.
  const { dbPath, path } = dirConfig(dir, broker.url, { targets: [{ type: 'dir', name: 'stick', path: 'out', maxFileBytes: 4096 }] });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const N = 600;
  await publish(t, broker.url, N);
  await waitFor(`${N} predictions stored`, () => storedIds(dbPath).length === N);
  // The lifecycle event is its own kind: its file may land a poll after the predictions' last one.
  const events = () => [...collect(out).values()].flat().filter((r) => r.kind === 'model_event').length;
  await waitFor('every prediction and the lifecycle event in the folder', () => predictionIds(collect(out).values()).length >= N && events() >= 1, 40_000, 100);

  const files = collect(out);
  assert.deepEqual(predictionIds(files.values()), storedIds(dbPath), 'each stored prediction once');
  assert.equal([...files.values()].flat().filter((r) => r.kind === 'model_event').length, 1, 'the lifecycle event');
  for (const name of files.keys()) assert.ok(statSync(join(out, name)).size <= 4096, `${name} within maxFileBytes`);
  assert.ok(agent.logs.some((l) => l.msg === 'sync batch too large for the target; sending smaller batches' && l.target === 'stick'), 'batches over maxFileBytes were split');
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('.')), [], 'no temp file left');
  // The reader polls every 20 ms: on a busy machine the last file may be a poll away.
  await waitFor(`the reader read every file as it appeared (${reader.read.size} of ${files.size})`, () => reader.read.size >= files.size, 10_000);
  assert.deepEqual(reader.problems, [], 'the reader only ever saw complete gzip files');
  assert.equal(await stopChild(agent), 0);
});

for (const collector of ['took the file away', 'left the file in place'] as const) {
  test(`kill -9 after the rename, before the cursor moved, and the collector ${collector}: no duplicate a collector deduping by file name keeps`, { timeout: 90_000 }, async (t) => {
    const broker = await startMosquitto(t);
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const taken = join(dir, 'taken');
    mkdirSync(out);
    mkdirSync(taken);
    // Yearly: only the run at start syncs.
    const { dbPath, path } = dirConfig(dir, broker.url, { schedule: '0 0 1 1 *', batchRows: 40, targets: [{ type: 'dir', path: out }] });
    const first = spawnAgent(t, path);
    await first.waitForLog('agent ready');
    await waitFor('the start run', () => visible(out).length === 1);
    const N = 120;
    await publish(t, broker.url, N);
    await waitFor(`${N} predictions stored`, () => storedIds(dbPath).length === N);
    assert.equal(await stopChild(first), 0);

    // The next start writes the first batch of predictions, renames it, and dies before the cursor moves.
    const dying = spawnAgent(t, path, { EDGE_AGENT_TEST_KILL_AT_SYNC_STEP: 'after-response' });
    assert.equal((await dying.exited).signal, 'SIGKILL');
    const written = visible(out).filter((n) => n.includes('-predictions-'));
    assert.equal(written.length, 1, 'one batch written before the kill');
    const [inFlight] = written as [string];
    const inode = statSync(join(out, inFlight)).ino;

    // A collector dedupes by file name: a name it already took is a resend of the same rows.
    const took = new Map<string, Row[]>();
    let resends = 0;
    const take = () => {
      for (const [name, rows] of collect(out)) {
        if (took.has(name)) {
          assert.deepEqual(rows, took.get(name), `the resend ${name} holds the same rows`);
          resends++;
        } else {
          took.set(name, rows);
        }
        renameSync(join(out, name), join(taken, name));
      }
    };
    if (collector === 'took the file away') take();

    // Restarted with smaller batches: the batch in flight still goes as it was, under its name.
    const { path: smaller } = dirConfig(dir, broker.url, { schedule: '0 0 1 1 *', batchRows: 25, targets: [{ type: 'dir', path: out }] });
    const again = spawnAgent(t, smaller);
    await waitFor('every prediction in the folder', () => predictionIds([...took.values(), ...collect(out).values()]).length >= N + (collector === 'took the file away' ? 40 : 0), 30_000, 100);
    if (collector === 'left the file in place') assert.equal(statSync(join(out, inFlight)).ino, inode, 'a complete file under the batch name is not written again');
    take();
    assert.equal(resends, collector === 'took the file away' ? 1 : 0, 'the batch in flight came again under its name only if the collector had taken it');
    assert.deepEqual(predictionIds(took.values()), storedIds(dbPath), 'each stored prediction once after dedupe by file name');
    assert.equal(took.get(inFlight)?.length, 40, 'the batch in flight is one file of its 40 rows');
    assert.equal(await stopChild(again), 0);
  });
}

/** Makes `dir` a folder this process cannot create files in: chmod for a user, chattr +i for root (chmod binds no root). Null when neither works here. */
function makeUnwritable(t: Teardown, dir: string): (() => void) | null {
  const root = process.getuid?.() === 0;
  const lock = () => (root ? spawnSync('chattr', ['+i', dir]) : chmodSync(dir, 0o555));
  const unlock = () => (root ? spawnSync('chattr', ['-i', dir]) : chmodSync(dir, 0o755));
  lock();
  teardown(t, unlock); // before the temp folder is removed (teardown runs last-registered first)
  try {
    writeFileSync(join(dir, '.probe'), '');
    unlinkSync(join(dir, '.probe'));
    unlock();
    return null;
  } catch {
    return unlock;
  }
}

test('a folder the agent cannot write, a missing folder and a disk short of minFreeBytes: shown in sync status, nothing lost, the rows follow once fixed', { timeout: 90_000 }, async (t) => {
  const dir = tempDir(t);
  const share = join(dir, 'share');
  const stick = join(dir, 'stick');
  mkdirSync(share);
  const unlock = makeUnwritable(t, share);
  if (!unlock) return t.skip('cannot make a folder unwritable here (neither chmod as a user nor chattr +i as root)');
  const broker = await startMosquitto(t);
  const { dbPath, path } = dirConfig(dir, broker.url, {
    runDeadlineMs: 1500, retry: { minMs: 50, maxMs: 200 },
    targets: [{ type: 'dir', name: 'share', path: share }, { type: 'dir', name: 'stick', path: stick }, { type: 'dir', name: 'full', path: dir, minFreeBytes: 2 ** 50 }],
  });
  const agent = spawnAgent(t, path);
  await agent.waitForLog('agent ready');
  const N = 100;
  await publish(t, broker.url, N);
  await waitFor(`${N} predictions stored`, () => storedIds(dbPath).length === N);
  const failedOn = (target: string, msg: string) => agent.logs.some((l) => l.target === target && l.kind === 'predictions' && l.msg === msg);
  await waitFor('a run that met each problem with the predictions', () =>
    failedOn('share', 'sync target cannot take rows from this agent; stopped until the next run') && failedOn('stick', 'sync target cannot take rows from this agent; stopped until the next run') &&
    failedOn('full', 'sync batch not taken; retrying'), 30_000);

  const status = await runCli(['sync', 'status', '--config', path]);
  assert.equal(status.code, 0, status.stderr);
  const line = (target: string) => status.stdout.split(/^(?=\S)/m).find((s) => s.startsWith(`${target}\n`))?.split('\n').find((l) => l.includes('predictions')) ?? '';
  assert.match(line('share'), new RegExp(`backlog ${N} .*last error .*${share}: cannot write .*: the agent may not write there \\((EPERM|EACCES)\\)`));
  assert.match(line('stick'), new RegExp(`backlog ${N} .*last error .*${stick}: cannot read the folder: the folder does not exist \\(is the share or stick mounted\\?\\) \\(ENOENT\\)`));
  assert.match(line('full'), new RegExp(`backlog ${N} .*last error .*${dir}: \\d+ bytes free, .*less than minFreeBytes \\(${2 ** 50}\\)`));
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.ndjson.gz') || n.endsWith('.tmp')), [], 'nothing written below minFreeBytes');

  // Fixed by hand: the rows follow on the next runs, each once.
  unlock();
  mkdirSync(stick);
  await waitFor('every prediction in both folders', () => predictionIds(collect(share).values()).length >= N && predictionIds(collect(stick).values()).length >= N, 30_000, 100);
  assert.deepEqual(predictionIds(collect(share).values()), storedIds(dbPath));
  assert.deepEqual(predictionIds(collect(stick).values()), storedIds(dbPath));
  const after = await runCli(['sync', 'status', '--config', path]);
  assert.match(after.stdout, new RegExp(`full\\n  predictions +backlog ${N} `), 'the target short of space still holds every row');
  assert.equal(await stopChild(agent), 0);
});
