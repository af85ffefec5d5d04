// Ingest, shared: the one value of one feature that every payload style (tags, Sparkplug B, ...) reads
// out of a message and hands to the join. Takes nothing; gives the type.

/** One value of one model feature for one asset, as a payload style read it. */
export interface Sample {
  asset: string;
  /** The model feature's name (after the style's mapping). */
  feature: string;
  /** As received: a number normally; anything else (string, boolean, null, NaN) is the quality gate's to judge. */
  value: unknown;
  /** The value's own timestamp (ms since epoch): the payload's, else the time the message was received. */
  ts: number;
}
