// Simulated PLC gateway: takes a broker URL, a number of machines and a rate; publishes bearing
// condition readings as JSON on plant/<machine>/bearing, one machine's bearing degrading toward
// failure, and now and then a broken reading (as real gateways do) to show the dead-letter path.

import mqtt, { type MqttClient } from 'mqtt';
import { mulberry32, sampleReading } from '../models/demo/bearing.js';

export interface SimulateOptions {
  url: string;
  machines: number;
  /** Readings per second per machine. */
  ratePerMachine: number;
  /** The machine (1-based) whose bearing degrades; 0 for none. */
  drifting: number;
  /** Seconds the drifting bearing takes to go from new to failing. */
  driftSec: number;
  /** One in this many readings is broken (missing field, text instead of a number); 0 for none. */
  brokenEvery: number;
  qos: 0 | 1;
  seed: number;
  /** Stop after this many readings in all (0: run until stopped). */
  count: number;
}

export const simulateDefaults: SimulateOptions = {
  url: 'mqtt://127.0.0.1:1883',
  machines: 4,
  ratePerMachine: 20,
  drifting: 3,
  driftSec: 90,
  brokenEvery: 400,
  qos: 1,
  seed: 7,
  count: 0,
};

export interface Simulator {
  readonly sent: number;
  readonly done: Promise<void>;
  close(): Promise<void>;
}

export const machineName = (i: number) => `press-${i}`;

export function reading(machine: number, seq: number, health: number, rand: () => number) {
  const r = sampleReading(health, rand, { speedRpm: 1200 + 300 * machine, ambientC: 24 });
  return {
    ts: new Date().toISOString(),
    seq,
    machine: machineName(machine),
    vibration: { rms_g: r.rms_g, peak_g: r.peak_g, kurtosis: r.kurtosis, crest_factor: r.crest_factor },
    temperature_c: r.temperature_c,
    speed_rpm: r.speed_rpm,
  };
}

export function startSimulator(o: SimulateOptions): Simulator {
  const rand = mulberry32(o.seed);
  const client: MqttClient = mqtt.connect(o.url, { clientId: `edge-agent-sim-${process.pid}`, reconnectPeriod: 500 });
  const started = Date.now();
  let sent = 0;
  let seq = 0;
  let timer: NodeJS.Timeout | null = null;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const intervalMs = 1000 / Math.max(o.ratePerMachine, 0.001);

  const tick = () => {
    for (let m = 1; m <= o.machines; m++) {
      if (o.count && sent >= o.count) {
        stop();
        return;
      }
      const elapsed = (Date.now() - started) / 1000;
      const health = m === o.drifting ? Math.min(1, 0.05 + elapsed / o.driftSec) : 0.05 + 0.1 * rand();
      const body: Record<string, unknown> = reading(m, ++seq, health, rand);
      if (o.brokenEvery && seq % o.brokenEvery === 0) {
        if (rand() < 0.5) delete body.temperature_c;
        else body.speed_rpm = 'sensor fault';
      }
      client.publish(`plant/${machineName(m)}/bearing`, JSON.stringify(body), { qos: o.qos });
      sent++;
    }
  };

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    finish();
  }

  client.once('connect', () => {
    timer = setInterval(tick, intervalMs);
  });

  return {
    get sent() {
      return sent;
    },
    done,
    async close() {
      stop();
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
  };
}
