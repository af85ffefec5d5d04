// Fault suite (`npm run faults [-- --quick] [--out FILE.md] [--json FILE.json] [--only TEXT] [--seed N] [--budget-scale X]`):
// runs each scenario against real parts, one after the other, each within its time budget and with
// its own teardown; prints the table (scenario, times injected, readings sent, stored once, lost,
// doubled, expected loss) and exits 1 when a reading was lost or doubled where the agent guarantees it must not.

import { writeFileSync } from 'node:fs';
import { killAfterInbox, killQos0, killRandom, sigstop, sigtermUnderLoad, workerCrash } from './agent-faults.js';
import { brokerKill, brokerRestartPersistent, brokerRestartVolatile } from './broker-faults.js';
import { clockBack, clockForward } from './clock.js';
import { diskFull, secondAgent } from './store-faults.js';
import { fuzz } from './fuzz.js';
import { bounded, mulberry32, type Outcome, type Scenario } from './harness.js';
import type { Teardown } from '../helpers/parts.js';

const SCENARIOS: Scenario[] = [
  killRandom, killAfterInbox, sigtermUnderLoad, workerCrash, sigstop, killQos0,
  brokerRestartPersistent, brokerRestartVolatile, brokerKill,
  diskFull, secondAgent, clockBack, clockForward, fuzz,
];

interface Row extends Outcome { scenario: string; seconds: number; pass: boolean }

function args(argv: string[]) {
  const o = { quick: false, out: '', json: '', only: '', seed: 20260101, budgetScale: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--out') o.out = next();
    else if (a === '--json') o.json = next();
    else if (a === '--only') o.only = next();
    else if (a === '--seed') o.seed = Number(next());
    else if (a === '--budget-scale') o.budgetScale = Number(next());
    else throw new Error(`unknown option ${a} (known: --quick, --out FILE.md, --json FILE.json, --only TEXT, --seed N, --budget-scale X)`);
  }
  return o;
}

/** A scenario's teardown: cleanups run last-registered first; one registered after the close runs at once. */
function teardownContext() {
  const cleanups: (() => unknown)[] = [];
  let closed = false;
  const runAll = async () => {
    closed = true;
    while (cleanups.length) {
      try {
        await bounded(Promise.resolve((cleanups.pop() as () => unknown)()), 20000, 'a cleanup');
      } catch (err) {
        console.error(`cleanup failed: ${(err as Error).message}`);
      }
    }
  };
  // An overrun scenario goes on in the background: what it starts after the close is stopped at once.
  const t: Teardown = { after: (fn) => void (closed ? Promise.resolve().then(fn as () => unknown).catch(() => undefined) : cleanups.push(fn as () => unknown)) };
  return { t, close: runAll };
}

async function runOne(s: Scenario, quick: boolean, seed: number, budgetScale: number, onInterrupt: (close: () => Promise<void>) => void): Promise<Row> {
  const { t, close } = teardownContext();
  onInterrupt(close);
  const t0 = Date.now();
  let outcome: Outcome;
  try {
    outcome = await bounded(s.run({ t, quick, random: mulberry32(seed), log: (l) => console.error(l) }), s.budgetSec * budgetScale * 1000, `scenario "${s.name}"`);
  } catch (err) {
    outcome = { injected: 0, sent: 0, storedOnce: 0, lost: 0, doubled: 0, expectedLoss: 0, failures: [`did not complete: ${(err as Error).message}`], notes: [] };
  } finally {
    // Everything the scenario started is stopped, even after an overrun or a failure.
    await close();
  }
  const seconds = Math.round((Date.now() - t0) / 100) / 10;
  return { scenario: s.name, seconds, ...outcome, pass: outcome.lost === 0 && outcome.doubled === 0 && outcome.failures.length === 0 };
}

/** Each scenario's seed depends on its name, not its place in the run, so --only reproduces a full run's points. */
function nameHash(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

const n = (v: number) => v.toLocaleString('en-US');

function table(rows: Row[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [
    '| scenario | times injected | readings sent | stored once | lost | doubled | expected loss (whose) | verdict | notes |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const expected = r.expectedLoss ? `${n(r.expectedLoss)} (${r.expectedLossWhose ?? '?'})` : '0';
    const notes = [...r.failures.map((f) => `**${f}**`), ...r.notes, `${r.seconds} s`].join('; ');
    lines.push(`| ${cell(r.scenario)} | ${n(r.injected)} | ${n(r.sent)} | ${n(r.storedOnce)} | ${n(r.lost)} | ${n(r.doubled)} | ${cell(expected)} | ${r.pass ? 'pass' : '**FAIL**'} | ${cell(notes)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const chosen = SCENARIOS.filter((s) => (o.quick ? s.quick : true) && (!o.only || s.name.includes(o.only)));
  const started = new Date();
  const t0 = Date.now();
  const rows: Row[] = [];
  let current: () => Promise<void> = async () => undefined;
  // Ctrl-C stops what the running scenario started before leaving.
  process.once('SIGINT', () => void current().finally(() => process.exit(130)));
  for (const [i, s] of chosen.entries()) {
    console.error(`[${i + 1}/${chosen.length}] ${s.name} (budget ${Math.round(s.budgetSec * o.budgetScale)} s)`);
    const row = await runOne(s, o.quick, o.seed ^ nameHash(s.name), o.budgetScale, (close) => (current = close));
    console.error(`  ${row.pass ? 'pass' : 'FAIL'} in ${row.seconds} s${row.failures.length ? `: ${row.failures.join('; ')}` : ''}`);
    rows.push(row);
  }
  const seconds = Math.round((Date.now() - t0) / 1000);
  const title = `Fault suite (${o.quick ? 'quick' : 'full'} run, seed ${o.seed}), ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${seconds} s`;
  const md = `${title}\n\n${table(rows)}\n`;
  console.log(`\n${md}`);
  if (o.out) writeFileSync(o.out, md);
  if (o.json) writeFileSync(o.json, `${JSON.stringify({ title, quick: o.quick, seed: o.seed, startedAt: started.toISOString(), seconds, scenarios: rows }, null, 2)}\n`);
  const failed = rows.filter((r) => !r.pass);
  if (failed.length) console.error(`${failed.length} of ${rows.length} scenarios failed: ${failed.map((r) => r.scenario).join(', ')}`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(2);
});
