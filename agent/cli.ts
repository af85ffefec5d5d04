#!/usr/bin/env node
// CLI entry (bin `edge-agent`): takes argv; runs the agent, checks a config, runs the simulated
// gateway or the demo. The only place that calls process.exit. Exit codes: 0 ok, 64 usage,
// 78 invalid config or model, 65 release refused, 69 broker, 70 internal/timeout, 74 store, 75 push timeout,
// 130 second signal.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import { runDemo } from './demo.js';
import { EdgeError, isEdgeError } from './errors.js';
import { createLogger } from './log.js';
import { limitHeapGrowth } from './heap.js';
import { brokerUrlSchema } from './ingest/mqtt.js';
import { redactUrl } from './redact.js';
import { fitProblems, servedModelNames, startAgent, type Agent } from './pipeline.js';
import { createNotifier } from './observe/notify.js';
import { simulateDefaults, startSimulator } from './simulate.js';
import { runModelCommand } from '../models/commands.js';
import { runSyncCommand } from '../sync/commands.js';
import { runStatusCommand } from './observe/status-command.js';
import { loadModel } from '../models/load.js';

const HELP = `edge-agent — ONNX inference on MQTT sensor readings, every prediction kept in SQLite

Usage:
  edge-agent run --config FILE        run the agent (SIGTERM/SIGINT: graceful stop)
  edge-agent config check FILE        validate a config file and the model it names, then exit
  edge-agent simulate [options]       a simulated PLC gateway publishing bearing readings
  edge-agent demo [--duration SEC]    embedded broker + simulated gateway + agent, with a live status line
  edge-agent model pack | keygen | sign | install | rollback | list | push
                                      release tools and the model lifecycle ('edge-agent model --help')
  edge-agent drill [MODEL] --config FILE  rehearse install, probation and rollback on the running agent
  edge-agent sync now | status --config FILE
                                      upstream sync of the running agent ('edge-agent sync --help')
  edge-agent status [--config FILE] [--json]
                                      the running agent at a glance ('edge-agent status --help')
  edge-agent --help | --version

Options:
  -c, --config FILE      config file (YAML) for 'run'
  --url URL              simulate: broker URL (default ${simulateDefaults.url})
  --machines N           simulate: machines (default ${simulateDefaults.machines})
  --rate HZ              simulate: readings per second per machine (default ${simulateDefaults.ratePerMachine})
  --drifting N           simulate: the machine whose bearing degrades, 0 for none (default ${simulateDefaults.drifting})
  --drift-sec SEC        simulate: seconds from a new to a failing bearing (default ${simulateDefaults.driftSec})
  --qos 0|1              simulate: QoS of the readings (default ${simulateDefaults.qos})
  --count N              simulate: stop after N readings (default: run until stopped)
  --duration SEC         demo: stop by itself after SEC seconds (default: run until Ctrl-C)
  -h, --help             this text
  -v, --version          the agent's version

Exit codes: 0 ok, 64 bad command line, 78 invalid config or model, 65 a release refused, 69 broker,
the control socket or a sync target, 70 internal, 74 store, 75 a push not finished in time, 130 stopped by a second signal.
Docs: README.md (config reference, payload mapping, manifest format, error codes).`;

function usage(message: string): never {
  process.stderr.write(`edge-agent: EDGE_ERR_CLI_USAGE: ${message}\nRun 'edge-agent --help' for the commands and options.\n`);
  process.exit(64);
}

function fail(err: unknown): never {
  if (isEdgeError(err)) {
    process.stderr.write(`edge-agent: ${err.code}: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`edge-agent: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(70);
}

function positiveNumber(name: string, v: string | undefined, fallback: number, integer = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) usage(`--${name}: got "${v}", expected a ${integer ? 'whole ' : ''}number >= 0`);
  return n;
}

async function cmdRun(configPath: string): Promise<void> {
  // Before any worker thread starts: V8's flags are the process's, and the workers take them at their start.
  const heapGrowingPercent = limitHeapGrowth();
  const config = loadConfig(configPath);
  const log = createLogger(config.log);
  if (heapGrowingPercent !== null) log.info({ heapGrowingPercent }, 'heap growth limited');
  // systemd's notify protocol (only under systemd): started before the agent so that EXTEND_TIMEOUT_USEC
  // covers loading the models.
  const notifier = createNotifier(log, process.env, { maxSyncLagSec: config.http.maxSyncLagSec });
  let agent: Agent | null = null;
  let stopping = false;
  let exitCode = 0;
  let fatalLogged = false;
  const stop = (reason: string, code: number, err?: Error) => {
    // Once a fatal error has stopped the agent, the failures that follow from it (a store that refuses
    // writes after a failed commit) are not news: the first is logged, the rest only at debug.
    if (err && !fatalLogged) log.fatal({ err: err.message, reason }, 'fatal error');
    else if (err) log.debug({ err: err.message, reason }, 'further error while stopping');
    if (err) fatalLogged = true;
    // A fatal error while already stopping still decides the exit code.
    exitCode = Math.max(exitCode, code);
    if (stopping) {
      if (reason !== 'SIGINT' && reason !== 'SIGTERM') return;
      log.warn({ signal: reason, code: exitCode || 130, closingStep: agent?.closingStep ?? null }, 'second signal: stopping now');
      process.exit(exitCode || 130);
    }
    stopping = true;
    notifier.stopping();
    log.info({ reason }, 'stopping');
    const deadlineMs = config.shutdown.deadlineMs;
    // The lifecycle closes every part within the deadline, force-closing what overruns. This is the
    // backstop for what even that cannot end (a worker stuck in native code): exit 70 regardless.
    const backstop = setTimeout(() => {
      log.error({ deadlineMs, code: 'EDGE_ERR_SHUTDOWN_TIMEOUT', hung: agent?.closingStep ?? null }, 'shutdown deadline passed; force-closing');
      setTimeout(() => process.exit(70), 2000).unref();
      void agent?.destroy(new EdgeError('EDGE_ERR_SHUTDOWN_TIMEOUT', 'shutdown deadline passed')).finally(() => process.exit(70));
    }, deadlineMs + 1000);
    void (agent?.close(deadlineMs) ?? Promise.resolve(null)).then(
      (report) => {
        clearTimeout(backstop);
        // A part whose overrun loses nothing (results unacknowledged, but in the store) still makes a clean
        // stop; any other one is a stop that did not finish: exit 70 naming it.
        if (report && !report.safe) {
          log.error({ deadlineMs, code: 'EDGE_ERR_SHUTDOWN_TIMEOUT', hung: report.hung, forced: report.forced }, 'shutdown deadline passed; force-closing');
          process.exit(Math.max(exitCode, 70));
        }
        process.exit(exitCode);
      },
      (e: unknown) => {
        log.error({ err: (e as Error).message }, 'graceful stop failed');
        process.exit(70);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  try {
    agent = await startAgent(config, log, { onFatal: (err) => stop('fatal', isEdgeError(err) ? err.exitCode : 70, err) });
    notifier.watch(agent);
  } catch (err) {
    notifier.close();
    if (isEdgeError(err)) log.fatal({ code: err.code, err: err.message }, 'agent could not start');
    fail(err);
  }
}

async function cmdConfigCheck(path: string): Promise<void> {
  const config = loadConfig(path);
  servedModelNames(config); // each model once
  const lines: string[] = [];
  for (const spec of config.models) {
    const model = await loadModel(spec.dir, config.inference, { maxModelBytes: config.model.maxModelBytes });
    try {
      const problems = fitProblems(config, spec, model.manifest);
      if (problems.length) throw new EdgeError('EDGE_ERR_CONFIG_MODEL_MISMATCH', `${path}: the config does not fit model ${model.manifest.name}\n  ${problems.join('\n  ')}`);
      const m = model.manifest;
      lines.push(`  model: ${m.name}@${m.version} (${m.features.length} features, ${m.golden.length} golden vectors pass) on ${spec.subscriptions.map((s) => s.topic).join(', ')}\n`);
    } finally {
      await model.inference.close();
    }
  }
  process.stdout.write(
    `${path}: OK\n  broker: ${config.mqtt.url ?? `embedded on ${config.mqtt.embedded.host}:${config.mqtt.embedded.port}`}\n` +
      lines.join('') +
      `  store: ${config.store.path} (synchronous=${config.store.synchronous})\n`,
  );
}

async function main(argv: string[]): Promise<void> {
  // The model commands have options of their own: they parse their own words.
  if (argv[0] === 'model') return runModelCommand(argv.slice(1), (s) => void process.stdout.write(s));
  if (argv[0] === 'drill') return runModelCommand(argv, (s) => void process.stdout.write(s));
  if (argv[0] === 'sync') return runSyncCommand(argv.slice(1), (s) => void process.stdout.write(s));
  if (argv[0] === 'status') return runStatusCommand(argv.slice(1), (s) => void process.stdout.write(s));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        url: { type: 'string' },
        machines: { type: 'string' },
        rate: { type: 'string' },
        drifting: { type: 'string' },
        'drift-sec': { type: 'string' },
        qos: { type: 'string' },
        count: { type: 'string' },
        duration: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values: o, positionals: p } = parsed;
  if (o.help) return void process.stdout.write(`${HELP}\n`);
  if (o.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return void process.stdout.write(`${pkg.version}\n`);
  }
  const cmd = p.join(' ');
  if (cmd === 'run') {
    if (!o.config) usage("'run' needs --config FILE");
    return cmdRun(o.config);
  }
  if (p[0] === 'config' && p[1] === 'check') {
    const file = p[2] ?? o.config;
    if (!file || p.length > 3) usage("'config check' takes one FILE");
    return cmdConfigCheck(file);
  }
  if (cmd === 'simulate') {
    const qos = positiveNumber('qos', o.qos, simulateDefaults.qos, true);
    if (qos !== 0 && qos !== 1) usage(`--qos: got "${o.qos}", expected 0 or 1`);
    const url = o.url ?? simulateDefaults.url;
    const checked = brokerUrlSchema.safeParse(url);
    if (!checked.success) usage(`--url: got "${redactUrl(url)}", expected ${checked.error.issues.map((i) => i.message).join('; ')}`);
    const sim = startSimulator({
      ...simulateDefaults,
      url,
      machines: positiveNumber('machines', o.machines, simulateDefaults.machines, true),
      ratePerMachine: positiveNumber('rate', o.rate, simulateDefaults.ratePerMachine),
      drifting: positiveNumber('drifting', o.drifting, simulateDefaults.drifting, true),
      driftSec: positiveNumber('drift-sec', o['drift-sec'], simulateDefaults.driftSec),
      qos,
      count: positiveNumber('count', o.count, 0, true),
    });
    const end = () => void sim.close().then(() => process.exit(0));
    process.on('SIGINT', end);
    process.on('SIGTERM', end);
    await sim.done;
    await sim.close();
    process.stdout.write(`sent ${sim.sent} readings\n`);
    return;
  }
  if (cmd === 'demo') return runDemo({ durationSec: positiveNumber('duration', o.duration, 0) });
  if (cmd === '') usage('no command given');
  usage(`unknown command "${cmd}"`);
}

main(process.argv.slice(2)).catch(fail);
