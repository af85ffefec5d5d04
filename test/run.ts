// Test runner (`npm test`): takes the compiled tree under dist/test; gives `node --test` the list of
// every *.test.js at any depth whose TypeScript source still exists (a deleted test's stale .js never
// runs), two files at a time (EDGE_TEST_CONCURRENCY), with a global per-test timeout as a backstop, and
// passes its exit code on. Two at a time keeps CI within its time on 2 cores, and is the busy machine every
// test must pass on anyway.
// A list of files rather than a glob: Node 20's `node --test` does not expand globs (21 does).

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Backstop for a test that forgot its own { timeout }: no test may hang the suite. */
const TEST_TIMEOUT_MS = 300_000;

const distTest = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = join(distTest, '..', '..');

function list(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? list(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : []))
    .sort();
}

const files: string[] = [];
for (const f of list(distTest)) {
  const source = join(repoRoot, 'test', relative(distTest, f)).replace(/\.js$/, '.ts');
  if (existsSync(source)) files.push(f);
  else process.stderr.write(`test/run: skipping ${relative(repoRoot, f)}: its source ${relative(repoRoot, source)} is gone\n`);
}
// Filters narrow the run to files whose path contains one of the arguments (`node dist/test/run.js e2e/crash`).
const filters = process.argv.slice(2);
const chosen = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (!chosen.length) {
  process.stderr.write(`test/run: no test files under ${distTest}${filters.length ? ` matching ${filters.join(', ')}` : ''}\n`);
  process.exit(1);
}

const concurrency = Math.max(1, Number(process.env.EDGE_TEST_CONCURRENCY ?? 2) || 1);
const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`, ...chosen], { stdio: 'inherit' });
const forward = (signal: NodeJS.Signals) => () => void child.kill(signal);
process.on('SIGINT', forward('SIGINT'));
process.on('SIGTERM', forward('SIGTERM'));
child.once('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
child.once('error', (err) => {
  process.stderr.write(`test/run: cannot start node --test: ${err.message}\n`);
  process.exit(1);
});
