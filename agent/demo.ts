// Demo (`npm run demo`): takes nothing but an optional duration; runs the embedded broker, the
// agent and a simulated gateway (four presses, press-3's bearing wearing out) in this process, and
// prints a live status line. Ctrl-C (or --duration) stops everything cleanly.

import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { parse } from 'yaml';
import { configFromObject } from './config.js';
import { createLogger } from './log.js';
import { startAgent } from './pipeline.js';
import { machineName, simulateDefaults, startSimulator } from './simulate.js';

const examples = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'agent', 'examples');

export async function runDemo(options: { durationSec: number }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-demo-'));
  const raw = parse(readFileSync(join(examples, 'demo.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  raw.store = { ...raw.store, path: join(dir, 'demo.db') };
  raw.mqtt = { ...raw.mqtt, embedded: { host: '127.0.0.1', port: 0 } };
  const config = configFromObject(raw, join(examples, 'demo.yaml'), examples);
  const logFile = join(dir, 'agent.log');
  const log = createLogger({ level: 'info' }, createWriteStream(logFile));

  let fatal: Error | null = null;
  const agent = await startAgent(config, log, { onFatal: (err) => void (fatal = err) });
  const out = process.stdout;
  out.write(
    `edge-agent demo\n  broker  ${agent.brokerUrl} (embedded; try: mosquitto_sub -h 127.0.0.1 -p ${agent.brokerUrl.split(':').pop()} -t 'plant/#' -v)\n` +
      `  model   ${agent.models.map((m) => `${m.name}@${m.version}`).join(', ')}\n  store   ${config.store.path}\n  log     ${logFile}\n` +
      (agent.http ? `  page    ${agent.http.url}/ (status page; metrics at ${agent.http.url}/metrics)\n` : '') +
      `  gateway ${simulateDefaults.machines} presses at ${simulateDefaults.ratePerMachine} readings/s each; ${machineName(simulateDefaults.drifting)}'s bearing wears out over ${simulateDefaults.driftSec} s\n` +
      `Ctrl-C stops.\n\n`,
  );

  const verdicts = new Map<string, string>();
  const watcher = mqtt.connect(agent.brokerUrl, { clientId: `edge-agent-demo-watch-${process.pid}` });
  watcher.on('connect', () => watcher.subscribe('plant/+/predictions/#'));
  watcher.on('message', (_topic, payload) => {
    try {
      const r = JSON.parse(payload.toString()) as { asset: string; label?: string };
      if (r.label) verdicts.set(r.asset, r.label);
    } catch {
      // The agent's own results are always JSON; anything else on these topics is not ours.
    }
  });

  const sim = startSimulator({ ...simulateDefaults, url: agent.brokerUrl });
  const tty = out.isTTY;
  const status = setInterval(() => {
    const s = agent.stats.snapshot();
    const machines = [...verdicts.keys()].sort().map((k) => `${k}: ${verdicts.get(k)}`).join('  ');
    const line =
      `msg/s ${s.receivedPerSec.toFixed(0).padStart(4)} | predictions ${String(s.predictions).padStart(6)} | ` +
      `p99 ${s.latencyP99Ms.toFixed(1)} ms | dead letters ${s.deadLetters} | ${machines}`;
    out.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }, 1000);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (options.durationSec > 0) setTimeout(resolve, options.durationSec * 1000);
  });
  clearInterval(status);
  out.write(tty ? '\n' : '');
  await sim.close();
  // Let the readings already on their way through the broker arrive before the agent stops taking them.
  for (let i = 0; i < 40 && agent.stats.counters.received + agent.stats.counters.duplicates < sim.sent; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise<void>((resolve) => watcher.end(false, {}, () => resolve()));
  await agent.close(10_000);
  const s = agent.stats.snapshot();
  out.write(
    `stopped: ${sim.sent} readings sent, ${s.predictions} predictions, ${s.deadLetters} dead letters ` +
      `(${Object.entries(s.rejects).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); rows kept in ${config.store.path}\n`,
  );
  if (fatal) throw fatal;
}
