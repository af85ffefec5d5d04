// Ingest, Sparkplug B host application, its contract: the options (zod, with defaults) and the types that
// sparkplug.ts takes and gives (births to persist, outcomes, status). No logic.

import { z } from 'zod';
import type { Sample } from './samples.js';

export const MAX_ASSET_CHARS = 128;

export const sparkplugOptionsSchema = z.strictObject({
  /** Publish STATE (spBv1.0/STATE/<hostId>) as this Sparkplug host id. Unset: the agent only listens. Never the plant
   *  SCADA's primary host id: edge nodes that wait for their primary host would take the agent's STATE for it. */
  hostId: z.string().min(1).max(MAX_ASSET_CHARS).regex(/^[^/+#]+$/, 'no / + or #').optional(),
  /** Least time between two rebirth requests (NCMD) to one edge node. */
  rebirthMinIntervalMs: z.number().int().min(0).default(30000),
  /** How long a skipped seq number may take to arrive before it counts as lost and a rebirth is asked. */
  reorderTimeoutMs: z.number().int().min(0).default(2000),
  /** The asset a metric's value belongs to: {group}, {node} and {device} are replaced. */
  asset: z.strictObject({
    /** For the edge node's own metrics (NBIRTH/NDATA). */
    node: z.string().min(1).default('{node}'),
    /** For a device's metrics (DBIRTH/DDATA). */
    device: z.string().min(1).default('{node}.{device}'),
  }).default({ node: '{node}', device: '{node}.{device}' }),
  /** Which metric feeds which model feature; the first rule that matches wins, other metrics are ignored.
   *  group/node/device are globs (* any run, ? one character); left out they match anything, and device ""
   *  matches the node's own metrics only. metric is the exact metric name of the birth. */
  metrics: z.array(z.strictObject({
    group: z.string().optional(),
    node: z.string().optional(),
    device: z.string().optional(),
    metric: z.string().min(1),
    feature: z.string().min(1),
  })).min(1),
  /** Edge nodes tracked at most; messages from more are rejected (REJECT_LIMIT). */
  maxNodes: z.number().int().min(1).default(1000),
  /** Metrics (node and all its devices, a device counting at least one) per edge node at most; a bigger birth is rejected. */
  maxMetricsPerNode: z.number().int().min(1).default(10000),
});
/** As written in the config (defaults optional). */
export type SparkplugOptions = z.input<typeof sparkplugOptionsSchema>;
/** After parsing, defaults filled. */
export type SparkplugConfig = z.output<typeof sparkplugOptionsSchema>;

/** A birth as persisted by the caller (one row per key: a new birth of the same key replaces it). JSON-safe. */
export interface BirthRecord {
  /** "<group>/<node>" for a node birth, "<group>/<node>/<device>" for a device birth. */
  key: string;
  group: string;
  node: string;
  /** "" for a node birth. */
  device: string;
  /** The NBIRTH's bdSeq (null in device births, or a node that sent none). */
  bdSeq: number | null;
  /** The `now` the birth was taken at. */
  receivedAt: number;
  /** receivedAt of the node birth this belongs to: a device record of an older node session is not loaded. */
  nodeBirthAt: number;
  metrics: { name: string; alias: number | string | null; datatype: number }[];
}

export interface Command { topic: string; payload: Buffer } // QoS 0, not retained (tck-id-payloads-ncmd-qos, -retain)

export type SparkplugRejectCode = 'REJECT_SPARKPLUG_PAYLOAD' | 'REJECT_SPARKPLUG_NO_BIRTH' | 'REJECT_LIMIT' | 'REJECT_BAD_ASSET';

export interface SparkplugOutcome {
  samples: Sample[];
  /** is_historical metrics: stored by the caller, never given to the join. */
  historical: Sample[];
  reject?: { code: SparkplugRejectCode; detail: string };
  /** NCMD to publish now (QoS 0, not retained), already rate-limited per node. */
  rebirth?: Command;
  /** Assets whose node/device died: the caller forgets them in the join. */
  offline?: string[];
  birth?: BirthRecord;
  /** Our own STATE read offline: publish this at once, QoS 1, retained (tck-id-message-flow-hid-sparkplug-state-message-delivered). */
  state?: Command;
  ignored?: string;
}

export interface SparkplugNodeStatus {
  group: string; node: string; online: boolean;
  /** false while the node is known only from a saved birth (before restart). */
  confirmed: boolean;
  bdSeq: number | null; lastSeq: number | null;
  births: number; gaps: number; reordered: number; late: number;
  /** Seq numbers proven lost. */
  lost: number;
  rebirths: number; rebirthsSuppressed: number; rebirthPending: boolean;
  devices: { device: string; online: boolean }[];
}
export interface SparkplugStatus {
  nodes: SparkplugNodeStatus[];
  counters: { messages: number; samples: number; historical: number; rejected: number; ignored: number; refusedNodes: number };
}
