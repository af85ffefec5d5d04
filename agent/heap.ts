// V8's heap sizing for the agent: takes node's own flags; sets how far the old generation may grow past what
// survived the last full collection before the next one. V8 picks that factor itself, up to 4 on a machine
// whose heap limit is 2 GB or more (8 GB of RAM and up): under 10,000 readings/s the main thread's heap then
// saw-toothed up to 120-190 MB around a live set of about 30 MB. At 1.5 the agent's RSS peaked at 245 MB
// instead of 322 (medians of 60 s runs), for 107 instead of 105 us of CPU per reading, within the noise
// (README, Performance, Memory). Unlike --max-old-space-size it is
// no ceiling: a backlog of large payloads still gets the heap it needs. The flag is process-wide, so the
// worker threads started afterwards (model, checkpoints, sync reader) get it too.

import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 50;

/**
 * Sets V8's heap growing factor to 1 + HEAP_GROWING_PERCENT/100, unless node was started with its own
 * --heap-growing-percent (0 there gives V8's own sizing back). Gives the percent it set, or null.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): number | null {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return null;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return HEAP_GROWING_PERCENT;
}
