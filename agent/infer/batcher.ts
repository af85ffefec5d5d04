// Micro-batching: takes items one at a time; gives them to `run` in batches of at most maxBatchRows.
// maxWaitMs 0: a batch leaves at the end of the event-loop turn, or as soon as a slot frees up, so
// batches grow by themselves under load. maxWaitMs > 0: a partial batch waits up to that long to fill.
// Up to two batches are in the model at once (one computing while the next fills); `commit` sees the
// batches strictly in arrival order. `left` sees every batch once it no longer counts in `queued`.

export interface BatcherOptions { maxBatchRows: number; maxWaitMs: number; maxQueuedRows: number }

export interface Batcher<T> {
  /** Gives false when the queue is at maxQueuedRows: the caller should wait for `drained()`. */
  push(item: T): boolean;
  /** Resolves when the queue has room again. */
  drained(): Promise<void>;
  /** Flushes what is queued and resolves when every batch is committed. */
  flush(): Promise<void>;
  readonly queued: number;
}

const MAX_IN_FLIGHT = 2;

export function createBatcher<T, R>(
  options: BatcherOptions,
  run: (batch: T[]) => Promise<R>,
  commit: (batch: T[], result: R) => void,
  onError: (err: unknown) => void,
  left?: (batch: T[]) => void,
): Batcher<T> {
  let queue: T[] = [];
  let inFlight = 0;
  let inFlightRows = 0;
  let armed = false;
  // Set when the oldest queued item has waited maxWaitMs (or a flush asked) but both slots were busy.
  let overdue = false;
  let tail: Promise<void> = Promise.resolve();
  let waiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];

  const total = () => queue.length + inFlightRows;

  function wake() {
    if (total() < options.maxQueuedRows && waiters.length) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
    if (total() === 0 && idleWaiters.length) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  }

  function dispatch(force: boolean) {
    while (queue.length && inFlight < MAX_IN_FLIGHT && (force || queue.length >= options.maxBatchRows)) {
      const batch = queue.length <= options.maxBatchRows ? queue : queue.slice(0, options.maxBatchRows);
      queue = queue.length <= options.maxBatchRows ? [] : queue.slice(options.maxBatchRows);
      inFlight++;
      inFlightRows += batch.length;
      const result = run(batch);
      tail = tail.then(async () => {
        try {
          commit(batch, await result);
        } catch (err) {
          onError(err);
        } finally {
          inFlight--;
          inFlightRows -= batch.length;
          left?.(batch);
          // With maxWaitMs 0 a freed slot takes what queued meanwhile: batches grow by themselves under load.
          dispatch(overdue || options.maxWaitMs === 0);
          if (queue.length === 0) overdue = false;
          else if (!overdue) arm();
          wake();
        }
      });
    }
  }

  function fire() {
    armed = false;
    dispatch(true);
    if (queue.length) overdue = true;
  }

  function arm() {
    if (armed) return;
    armed = true;
    if (options.maxWaitMs > 0) setTimeout(fire, options.maxWaitMs);
    else setImmediate(fire);
  }

  return {
    push(item) {
      queue.push(item);
      if (queue.length >= options.maxBatchRows) dispatch(overdue);
      if (queue.length) arm();
      return total() < options.maxQueuedRows;
    },
    drained() {
      if (total() < options.maxQueuedRows) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    async flush() {
      while (total() > 0) {
        overdue = true;
        dispatch(true);
        await new Promise<void>((resolve) => idleWaiters.push(resolve));
      }
      await tail;
    },
    get queued() {
      return total();
    },
  };
}
