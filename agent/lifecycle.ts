// Lifecycle: takes the agent's parts as they are started, in data-flow order, and closes them in
// reverse, each within its own time budget. A part that overruns its budget is named in the log and
// force-closed (destroy), and the stop goes on with the next part, so one hung part never keeps the
// others from closing. Greengrass's KernelLifecycle.stopAllServices is the model.

import type { Logger } from './log.js';

export interface Part {
  /** Names the part in logs: "store", "model worker", "broker connection"... */
  readonly name: string;
  /** Finish in-flight work and release resources. */
  close(): unknown;
  /** Abort now (after a close that overran, or when the whole agent is force-closed). */
  destroy?(err?: Error): unknown;
  /** How long close() may take before the part is force-closed; default: what is left of the deadline. */
  readonly closeBudgetMs?: number;
  /** What an overrun means for the data, for the log line (e.g. "results are in the store"). */
  readonly onOverrun?: string;
}

export interface CloseReport {
  /** Parts whose close() overran its budget or threw, in the order they were met. */
  forced: { part: string; why: string }[];
}

export interface Lifecycle {
  /** Stacks a started part for closing: parts are added in data-flow order and closed in reverse. */
  add<T extends Part>(part: T): T;
  /** The part now closing (null when none): what hung when a deadline passes. */
  readonly closing: string | null;
  /** Closes every part in reverse order; resolves when all are closed or force-closed. Idempotent. */
  close(deadlineMs: number): Promise<CloseReport>;
  /** Force-closes every part in reverse order. Idempotent. */
  destroy(err?: Error): Promise<void>;
}

const never = Symbol('overran');

export function createLifecycle(log: Logger): Lifecycle {
  const parts: Part[] = [];
  let current: string | null = null;
  let closing: Promise<CloseReport> | null = null;
  let destroying: Promise<void> | null = null;

  async function forceClose(part: Part, err: Error): Promise<void> {
    try {
      await part.destroy?.(err);
    } catch (e) {
      log.debug({ part: part.name, err: (e as Error).message }, 'destroy failed');
    }
  }

  return {
    add(part) {
      parts.push(part);
      return part;
    },
    get closing() {
      return current;
    },
    close(deadlineMs) {
      closing ??= (async () => {
        const end = performance.now() + deadlineMs;
        const forced: CloseReport['forced'] = [];
        for (const part of [...parts].reverse()) {
          current = part.name;
          const left = Math.max(0, end - performance.now());
          const budget = Math.min(part.closeBudgetMs ?? left, left);
          let timer: NodeJS.Timeout | undefined;
          try {
            const outcome = await Promise.race([
              Promise.resolve().then(() => part.close()),
              new Promise<typeof never>((resolve) => (timer = setTimeout(() => resolve(never), budget))),
            ]);
            if (outcome === never) {
              const why = `did not close within ${Math.round(budget)} ms`;
              forced.push({ part: part.name, why });
              log.warn({ part: part.name, budgetMs: Math.round(budget), effect: part.onOverrun }, 'part did not close in time; force-closing it');
              await forceClose(part, new Error(`${part.name} ${why}`));
            }
          } catch (err) {
            forced.push({ part: part.name, why: (err as Error).message });
            log.error({ part: part.name, err: (err as Error).message }, 'part failed to close; force-closing it');
            await forceClose(part, err as Error);
          } finally {
            clearTimeout(timer);
          }
        }
        current = null;
        return { forced };
      })();
      return closing;
    },
    destroy(err) {
      destroying ??= (async () => {
        for (const part of [...parts].reverse()) {
          current = part.name;
          await forceClose(part, err ?? new Error('force-closed'));
        }
        current = null;
      })();
      return destroying;
    },
  };
}
