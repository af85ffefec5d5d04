// The wire format of upstream sync: takes rows of one kind as the store gives them; gives NDJSON, one JSON
// object per line, each naming its kind, the agent and the store it comes from and its row id there
// (README, "Upstream sync", has the schema of each kind). Predictions, most of the volume, are formatted by
// SQLite itself (agent/store/sync.ts, PREDICTION_LINE); dead letters, lifecycle events and gaps here.

import type { SyncKind, SyncRow } from '../agent/store/sync.js';

/**
 * JSON of the strings and times of one batch, remembered: a batch repeats the same asset, topic, model,
 * version, label and storage time thousands of times, and stringifying them was most of the encoding time.
 */
function memo<K, V>(fn: (k: K) => V): (k: K) => V {
  const seen = new Map<K, V>();
  return (k) => {
    let v = seen.get(k);
    if (v === undefined) {
      v = fn(k);
      if (seen.size < 10_000) seen.set(k, v);
    }
    return v;
  };
}

/** One line per row, each ending in \n. `source`: the `"agent":…,"store":…` part every line carries. */
export function encodeRows(kind: Exclude<SyncKind, 'predictions'>, rows: readonly SyncRow[], source: { agent: string; store: string }): string {
  const from = `"agent":${JSON.stringify(source.agent)},"store":${JSON.stringify(source.store)}`;
  const str = memo((v: unknown) => (v === null || v === undefined ? 'null' : JSON.stringify(v)));
  const isoOnce = memo((ms: number) => JSON.stringify(new Date(ms).toISOString()));
  const iso = (ms: unknown) => (kind === 'dead_letters' ? JSON.stringify(new Date(ms as number).toISOString()) : isoOnce(ms as number));
  const parts: string[] = [];
  for (const r of rows) {
    if (kind === 'dead_letters') {
      parts.push(`{"kind":"dead_letter",${from},"id":${r.id},"receivedAt":${iso(r.received_at)},"topic":${str(r.topic)},"reasonCode":${str(r.reason_code)},` +
        `"reason":${JSON.stringify(r.reason)},"model":${str(r.model)},"payload":${JSON.stringify((r.payload as Buffer).toString('base64'))},"storedAt":${isoOnce(r.created_at as number)}}\n`);
    } else if (kind === 'model_events') {
      parts.push(`{"kind":"model_event",${from},"id":${r.id},"at":${iso(r.at)},"model":${str(r.model)},"version":${str(r.version)},"event":${str(r.event)},"reason":${JSON.stringify(r.reason)}}\n`);
    } else {
      parts.push(`{"kind":"gap",${from},"id":${r.id},"at":${iso(r.at)},"of":${str(r.kind)},"firstId":${r.first_id as number},"lastId":${r.last_id as number},"rows":${r.rows as number},"reason":${JSON.stringify(r.reason)}}\n`);
    }
  }
  return parts.join('');
}

/** The idempotency key of a batch: the same on every retry (its bounds are kept in the store), never the same for two agents or two stores. */
export function batchKey(storeId: string, kind: SyncKind, first: number, last: number): string {
  return `${storeId}-${kind}-${first}-${last}`;
}
