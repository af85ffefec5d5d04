// The wire format of upstream sync: takes rows of one kind as the store gives them; gives NDJSON, one JSON
// object per line, each naming its kind, the agent and the store it comes from and its row id there
// (README, "Upstream sync", has the schema of each kind). Features and outputs are stored as JSON text
// and go out as they are; every other string goes through JSON.stringify.

import type { SyncKind, SyncRow } from '../agent/store/sync.js';

const iso = (ms: unknown) => JSON.stringify(new Date(ms as number).toISOString());
const str = (v: unknown) => (v === null || v === undefined ? 'null' : JSON.stringify(v));
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : 'null');

/** One line per row, each ending in \n. `source`: the `"agent":…,"store":…` part every line carries. */
export function encodeRows(kind: SyncKind, rows: readonly SyncRow[], source: { agent: string; store: string }): string {
  const from = `"agent":${JSON.stringify(source.agent)},"store":${JSON.stringify(source.store)}`;
  let out = '';
  for (const r of rows) {
    if (kind === 'predictions') {
      out += `{"kind":"prediction",${from},"id":${r.id},"receivedAt":${iso(r.received_at)},"asset":${str(r.asset)},"topic":${str(r.topic)},` +
        `"model":${str(r.model_name)},"version":${str(r.model_version)},"role":${str(r.role)},"features":${r.features as string},"outputs":${r.outputs as string},` +
        `"label":${str(r.label)},"score":${num(r.score)},"latencyMs":${num(r.latency_ms)},"storedAt":${iso(r.created_at)}}\n`;
    } else if (kind === 'dead_letters') {
      out += `{"kind":"dead_letter",${from},"id":${r.id},"receivedAt":${iso(r.received_at)},"topic":${str(r.topic)},"reasonCode":${str(r.reason_code)},` +
        `"reason":${str(r.reason)},"model":${str(r.model)},"payload":${JSON.stringify((r.payload as Buffer).toString('base64'))},"storedAt":${iso(r.created_at)}}\n`;
    } else if (kind === 'model_events') {
      out += `{"kind":"model_event",${from},"id":${r.id},"at":${iso(r.at)},"model":${str(r.model)},"version":${str(r.version)},"event":${str(r.event)},"reason":${str(r.reason)}}\n`;
    } else {
      out += `{"kind":"gap",${from},"id":${r.id},"at":${iso(r.at)},"of":${str(r.kind)},"firstId":${r.first_id as number},"lastId":${r.last_id as number},"rows":${r.rows as number},"reason":${str(r.reason)}}\n`;
    }
  }
  return out;
}

/** The idempotency key of a batch: the same on every retry (its bounds are kept in the store), never the same for two agents or two stores. */
export function batchKey(storeId: string, kind: SyncKind, first: number, last: number): string {
  return `${storeId}-${kind}-${first}-${last}`;
}
