// The wire format of upstream sync: takes rows of one kind as the store gives them; gives NDJSON, one JSON
// object per line, each naming its kind, the agent and the store it comes from and its row id there
// (README, "Upstream sync", has the schema of each kind). Predictions, most of the volume, are formatted by
// SQLite itself (agent/store/sync.ts, PREDICTION_LINE); dead letters, lifecycle events, gaps and labels here.

import type { SyncKind, SyncRow } from '../agent/store/sync.js';

const iso = (ms: unknown) => new Date(ms as number).toISOString();

/** One line per row, each ending in \n. `source`: the agent and the store every line names. */
export function encodeRows(kind: Exclude<SyncKind, 'predictions'>, rows: readonly SyncRow[], source: { agent: string; store: string }): string {
  const { agent, store } = source;
  let out = '';
  for (const r of rows) {
    const line =
      kind === 'dead_letters'
        ? { kind: 'dead_letter', agent, store, id: r.id, receivedAt: iso(r.received_at), topic: r.topic, reasonCode: r.reason_code, reason: r.reason, model: r.model, payload: (r.payload as Buffer).toString('base64'), storedAt: iso(r.created_at) }
        : kind === 'model_events'
          ? { kind: 'model_event', agent, store, id: r.id, at: iso(r.at), model: r.model, version: r.version, event: r.event, reason: r.reason }
          : kind === 'labels'
            ? labelLine(r, agent, store)
            : { kind: 'gap', agent, store, id: r.id, at: iso(r.at), of: r.kind, firstId: r.first_id, lastId: r.last_id, rows: r.rows, reason: r.reason };
    out += `${JSON.stringify(line)}\n`;
  }
  return out;
}

/** The idempotency key of a batch: the same on every retry (its bounds are kept in the store), never the same for two agents or two stores. */
export function batchKey(storeId: string, kind: SyncKind, first: number, last: number): string {
  return `${storeId}-${kind}-${first}-${last}`;
}

/**
 * A label joined to a prediction: `predictionId` is the prediction's row id in the same store, so the platform
 * joins it to a prediction line it may have had for days. `outcome` is the measured label (classification) or
 * number (regression); `predicted` what the model said; `correct` or `absError` as the agent scored it.
 */
function labelLine(r: SyncRow, agent: string, store: string) {
  const regression = r.value !== null;
  return {
    kind: 'label', agent, store, id: r.id, predictionId: r.prediction_id, model: r.model_name, version: r.model_version, key: r.join_key,
    outcome: regression ? r.value : r.outcome, predicted: regression ? r.predicted_score : r.predicted_label,
    ...(regression ? { absError: r.abs_error } : { correct: r.correct === 1 }),
    labelAt: iso(r.label_at), receivedAt: iso(r.received_at), topic: r.topic, storedAt: iso(r.created_at),
  };
}
