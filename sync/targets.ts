// Sync targets: the config schema of each kind of target and the one place that makes a target from its
// options. Every target takes a batch (gzip NDJSON, its idempotency key, its rows' kind and ids) and says
// what became of it (see Outcome in http.ts); sync/upstream.ts drives them all the same way.

import { z } from 'zod';
import { createDirTarget, dirTargetSchema } from './dir-target.js';
import { createHttpTarget, httpTargetSchema, type Target } from './http.js';
import { createMqttTarget, mqttTargetSchema } from './mqtt-target.js';

export const targetSchema = z.discriminatedUnion('type', [httpTargetSchema, mqttTargetSchema, dirTargetSchema]);
export type TargetOptions = z.infer<typeof targetSchema>;

export function createTarget(o: Readonly<TargetOptions> & { token?: string; password?: string }, agentId: string): Target {
  switch (o.type) {
    case 'http':
      return createHttpTarget(o, agentId);
    case 'mqtt':
      return createMqttTarget(o, agentId);
    case 'dir':
      return createDirTarget(o, agentId);
  }
}
