// Assemble: the payload styles that make rows out of several messages (tags on separate topics and
// Sparkplug B joined per asset, sliding windows). Takes a model's messages at dispatch, in arrival order;
// gives its rows, and the messages it no longer holds. Also the books of which inbox rows are held.
//
// A style may hold a message: its inbox row stays until the style releases it (a tag superseded by a newer
// value, a sample slid out of its window), so that after a crash the replay rebuilds the style's state
// exactly from the inbox. An inbox row goes once no model holds it. A held row that a model consumed is
// recorded (inbox_done); the replay gives it to that model with `restore`: state only, no row made again.

import type { Manifest } from '../../models/manifest.js';
import type { RejectReason } from '../errors.js';
import type { BatchExtra } from '../store/store.js';
import type { Message } from './ingest.js';

/** A row a style made: the raw values the quality gate judges, in the captured model's feature order. */
export interface AssembledRow {
  asset: string;
  /** When the row was made: the trigger's time, or the tick's. */
  at: number;
  /** Raw values in the manifest's feature order (undefined: never seen); null for a window. */
  raw: readonly unknown[] | null;
  /** Per feature, ms between its value's time and `at` (undefined: unknown); null when the style has none. */
  ages: readonly (number | undefined)[] | null;
  /** A window's samples, channels first (C × N). */
  window?: Float32Array;
  /** The message that made the row: its topic, times and keys go on the prediction. */
  source: Message;
}

export interface Taken {
  rows: readonly AssembledRow[];
  /** Messages the style no longer holds (from this call or earlier ones). */
  released: readonly Message[];
  /** The message itself cannot be read: a dead letter (it is released too). */
  reject?: { code: RejectReason; detail: string };
  /** Writes for the batch's transaction (Sparkplug B births, historical values). */
  extra?: Pick<BatchExtra, 'births' | 'historical'>;
}

/** One model's assembler: stateful, called at dispatch only, strictly in arrival order. */
export interface Assembler {
  /** `restore`: the model consumed this message before a restart: rebuild state, make no row, count nothing. */
  take(m: Message, manifest: Manifest, now: number, restore: boolean): Taken;
  /** A period tick (joins on a period, Sparkplug B reorder timeouts). */
  tick(manifest: Manifest, now: number): Taken;
  /** How often the pipeline ticks it (null: never). */
  readonly tickMs: number | null;
  /** For the status page and /metrics. */
  status(): Record<string, unknown>;
}

/**
 * The books of held inbox rows, kept at commit (in dispatch order). Each batch: every message counts one hold
 * per model that took it; a model that makes its rows at once (JSON) lets go at its commit, a style lets go
 * when it releases; a row goes when its count is 0. The count lives in memory: the replay rebuilds it.
 */
export function createHolds() {
  const count = new Map<number, number>();
  const hadDone = new Set<number>();
  return {
    hold(id: number, n: number): void {
      count.set(id, (count.get(id) ?? 0) + n);
    },
    /** One model lets go; gives true when nobody holds the row any more (it goes in this commit). */
    release(id: number): boolean {
      const c = (count.get(id) ?? 0) - 1;
      if (c > 0) {
        count.set(id, c);
        return false;
      }
      count.delete(id);
      return true;
    },
    held: (id: number) => count.has(id),
    /** The row goes: whether done rows were written for it (they go too). */
    forget(id: number): boolean {
      return hadDone.delete(id);
    },
    /** The row has done rows (written by this batch, or found by the replay): they go with it. */
    markDone(id: number): void {
      hadDone.add(id);
    },
    get size() {
      return count.size;
    },
  };
}

export type Holds = ReturnType<typeof createHolds>;
