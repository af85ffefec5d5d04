// Ingest, Sparkplug B message order: takes each seq number (0-255) an edge node sends and the time;
// gives whether the message is in order, fills a gap, or is a duplicate/too late, and which seq numbers
// are proven lost (missing when their reorder timeout ran out). One tracker per edge node: NBIRTH, DBIRTH,
// NDATA, DDATA and DDEATH share the node's counter (tck-id-payloads-sequence-num-incrementing).
//
// What seq can prove: a message whose number was skipped and did not arrive within the reorder timeout
// was lost (QoS 0 has no redelivery). Because the counter wraps at 256, it cannot see 256 (or a multiple)
// messages lost in a row, and a gap is read as "ahead" only up to 128 numbers: a later number counts as
// an old message (dropped, counted as late).

export interface SeqTracker {
  /** The highest seq number seen (in wrap order), -1 before the first. */
  last: number;
  /** Deadline (ms) per seq number that was skipped and has not arrived; 0 = not missing. Made at the first gap. */
  missing: Float64Array | null;
  missingCount: number;
  /** The earliest deadline in `missing`, Infinity when none. */
  nextDeadline: number;
  gaps: number;
  reordered: number;
  late: number;
  lost: number;
}

export const newSeqTracker = (): SeqTracker => ({ last: -1, missing: null, missingCount: 0, nextDeadline: Infinity, gaps: 0, reordered: 0, late: 0, lost: 0 });

/** 'ok': in order or the first; 'filled': a missing number arrived late (still used); 'late': a duplicate or beyond its timeout (dropped). */
export type SeqVerdict = 'ok' | 'filled' | 'late';

/** Restarts the count at a birth's seq (NBIRTH); missing numbers of the old session are lost. Gives how many. */
export function resetSeq(t: SeqTracker, seq: number, count: boolean): number {
  const lost = t.missingCount;
  if (t.missing) t.missing.fill(0);
  t.missingCount = 0;
  t.nextDeadline = Infinity;
  if (count) t.lost += lost;
  t.last = seq;
  return lost;
}

/**
 * One message's seq. A number ahead of the expected one marks the skipped numbers missing with a
 * deadline now + reorderTimeoutMs (tck-id-operational-behavior-host-reordering-start); a missing number
 * that arrives clears it, and with the last one the timer ends (tck-id-operational-behavior-host-reordering-success).
 * `count` false (a replay after restart) rebuilds the state and counts nothing.
 */
export function takeSeq(t: SeqTracker, seq: number, now: number, reorderTimeoutMs: number, count: boolean): SeqVerdict {
  if (t.last < 0) {
    t.last = seq;
    return 'ok';
  }
  const d = (seq - t.last) & 255;
  if (d === 1) {
    t.last = seq;
    if (t.missingCount > 0 && t.missing![seq] !== 0) lapped(t, seq, count); // the counter came round to a number still missing
    return 'ok';
  }
  if (t.missingCount > 0 && t.missing![seq] !== 0) {
    t.missing![seq] = 0;
    t.missingCount--;
    if (t.missingCount === 0) t.nextDeadline = Infinity;
    if (count) t.reordered++;
    return 'filled';
  }
  if (d === 0 || d > 128) {
    if (count) t.late++;
    return 'late';
  }
  t.missing ??= new Float64Array(256);
  const deadline = now + reorderTimeoutMs;
  for (let k = (t.last + 1) & 255; k !== seq; k = (k + 1) & 255) {
    if (t.missing[k] !== 0) lapped(t, k, count);
    t.missing[k] = deadline;
    t.missingCount++;
  }
  if (deadline < t.nextDeadline) t.nextDeadline = deadline;
  if (count) t.gaps++;
  t.last = seq;
  return 'ok';
}

function lapped(t: SeqTracker, k: number, count: boolean): void {
  t.missing![k] = 0;
  t.missingCount--;
  if (count) t.lost++;
  if (t.missingCount === 0) t.nextDeadline = Infinity;
}

/** Seq numbers whose reorder timeout ran out by `now`: counted lost and forgotten. Gives how many. */
export function expireSeq(t: SeqTracker, now: number, count: boolean): number {
  if (t.nextDeadline > now || !t.missing) return 0;
  let expired = 0;
  let next = Infinity;
  for (let k = 0; k < 256; k++) {
    const dl = t.missing[k]!;
    if (dl === 0) continue;
    if (dl <= now) {
      t.missing[k] = 0;
      expired++;
    } else if (dl < next) next = dl;
  }
  t.missingCount -= expired;
  t.nextDeadline = next;
  if (count) t.lost += expired;
  return expired;
}
