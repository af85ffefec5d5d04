// Ingest, Sparkplug B host STATE: takes the host id and the time of each CONNECT; gives the STATE birth
// and Will (one timestamp), the death for a clean disconnect, and the answer to our own STATE read offline.
// Only with sparkplug.hostId set; the MQTT connection that carries them is the caller's (see the README).

import type { Command } from './sparkplug-types.js';

const stateJson = (online: boolean, timestamp: number) => Buffer.from(JSON.stringify({ online, timestamp }));

export function createHostState(hostId: string) {
  const topic = `spBv1.0/STATE/${hostId}`;
  let timestamp: number | null = null; // of the last CONNECT's Will; null after a death or before the first birth
  return {
    topic,
    /** Birth and Will with one timestamp (tck-id-host-topic-phid-birth-payload-timestamp): JSON {online, timestamp}
     *  (tck-id-host-topic-phid-birth-payload, tck-id-payloads-state-will-message-payload). */
    birth(now: number): Command & { will: Command } {
      timestamp = now;
      return { topic, payload: stateJson(true, now), will: { topic, payload: stateJson(false, now) } };
    },
    /** Published before a clean DISCONNECT, at the time of it (tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean). */
    death(now: number): Command {
      timestamp = null;
      return { topic, payload: stateJson(false, now) };
    },
    /** A STATE message on our own topic: reading ourselves offline, publish the birth again with the CONNECT's
     *  timestamp (tck-id-message-flow-hid-sparkplug-state-message-delivered); else null. */
    answer(payload: Buffer): Command | null {
      let online: unknown;
      try {
        online = (JSON.parse(payload.toString('utf8')) as { online?: unknown } | null)?.online;
      } catch {
        return null;
      }
      return online === false && timestamp !== null ? { topic, payload: stateJson(true, timestamp) } : null;
    },
  };
}
