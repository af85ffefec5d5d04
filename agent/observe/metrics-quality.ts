// Observe: drift and ground-truth figures for /metrics. Takes the status() objects of the drift monitor
// (agent/observe/drift.ts) and of ground truth (agent/observe/truth.ts); gives metric families by name.
// Read at scrape time, like every other figure the agent already holds.

import type { DriftStatus } from './drift.js';
import type { IngestStatus } from './status.js';
import type { TruthStatus } from './truth.js';

export interface Sample { labels?: Record<string, string | number>; value: number; metricName?: string }
export interface QualityFamily { help: string; type: 'gauge' | 'counter'; samples: Sample[] }

/** The data-quality gate's counters as /metrics reads them (agent/ingest/quality-options.ts, QualityCounters). */
interface QualityView {
  passed?: number; rowsWithImputed?: number; rowsWithFlagged?: number; rejected?: Record<string, number>;
  features?: Record<string, Record<string, Record<string, number>>>; byAsset?: Record<string, Record<string, number>>; otherAssets?: Record<string, number>;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function qualitySamples(drift: DriftStatus | null | undefined, truth: TruthStatus | null | undefined, ingest: IngestStatus = []): Map<string, QualityFamily> {
  const out = new Map<string, QualityFamily>();
  const add = (name: string, help: string, type: QualityFamily['type'], labels: Sample['labels'], value: unknown) => {
    if (!finite(value)) return;
    const f = out.get(name) ?? out.set(name, { help, type, samples: [] }).get(name) as QualityFamily;
    f.samples.push({ labels, value });
  };
  const d = drift;
  if (d?.enabled && Array.isArray(d.models)) {
    for (const m of d.models) {
      const base = { model: m.name, version: m.version };
      for (const f of m.features ?? []) {
        add('edge_agent_input_drift_psi', 'PSI of a feature\'s rolling window against the manifest\'s training baseline', 'gauge', { ...base, feature: f.name }, f.psi);
        add('edge_agent_input_drift_alert', '1 while a feature\'s PSI is over drift\'s warning threshold', 'gauge', { ...base, feature: f.name }, f.over === undefined ? undefined : f.over ? 1 : 0);
        add('edge_agent_input_out_of_training_range_ratio', 'Share of the window\'s values outside the training range', 'gauge', { ...base, feature: f.name }, f.outOfRangeShare);
      }
      if (m.predictions) {
        add('edge_agent_prediction_drift_psi', 'PSI of the predicted labels\' shares against the baseline\'s', 'gauge', base, m.predictions.psi);
        add('edge_agent_prediction_drift_alert', '1 while the prediction PSI is over its warning threshold', 'gauge', base, m.predictions.over === undefined ? undefined : m.predictions.over ? 1 : 0);
      }
      add('edge_agent_dead_letter_ratio', 'Share of dead letters among the drift window\'s messages', 'gauge', base, m.deadLetters?.share);
    }
  }
  const t = truth;
  if (t?.enabled) {
    for (const [k, v] of Object.entries(t.counters ?? {})) {
      if (k !== 'pending') add('edge_agent_truth_labels_total', 'Ground-truth label messages, by outcome (received, joined, unmatched, bad, duplicates)', 'counter', { outcome: k }, v);
    }
    add('edge_agent_truth_labels_pending', 'Ground-truth labels waiting to be joined', 'gauge', undefined, t.counters?.pending);
    for (const m of t.models ?? []) {
      const base = { model: m.model, version: m.version };
      add('edge_agent_truth_joined_total', 'Labels joined to this version\'s predictions', 'counter', base, m.joined);
      add('edge_agent_truth_accuracy_ratio', 'Rolling accuracy of a classification version over its last joined labels', 'gauge', base, m.accuracy);
      add('edge_agent_truth_mae', 'Rolling mean absolute error of a regression version over its last joined labels (the output\'s unit)', 'gauge', base, m.mae);
    }
  }
  // The payload styles' state and counters (assemble.ts): each number at the top of a model's entry, and
  // per-feature counts (values superseded before a row used them, the gate's counts) one level down.
  const GAUGES = new Set(['assets', 'held', 'nodes', 'devices', 'buffered']);
  for (const m of ingest) {
    for (const [k, v] of Object.entries(m)) {
      if (finite(v)) {
        if (GAUGES.has(k)) add('edge_agent_ingest_state', 'A payload style\'s state now: assets, held messages, Sparkplug B nodes and devices', 'gauge', { model: m.model, style: m.style, state: k }, v);
        else add('edge_agent_ingest_events_total', 'A payload style\'s counts: late, duplicate, ignored values, refused assets, rows made, Sparkplug B gaps and rebirths', 'counter', { model: m.model, style: m.style, event: k }, v);
      } else if (k === 'supersededUnused' && v && typeof v === 'object') {
        for (const [feature, n] of Object.entries(v)) add('edge_agent_tags_superseded_unused_total', 'Values acknowledged and superseded before any row used them (the model never saw them), by feature', 'counter', { model: m.model, feature }, n);
      }
    }
    const q = m.quality as QualityView | null | undefined;
    if (q) {
      const rows = 'Rows the data-quality gate judged, by outcome (passed clean, with imputed values, with flagged values, rejected)';
      add('edge_agent_quality_rows_total', rows, 'counter', { model: m.model, outcome: 'passed' }, q.passed);
      add('edge_agent_quality_rows_total', rows, 'counter', { model: m.model, outcome: 'imputed' }, q.rowsWithImputed);
      add('edge_agent_quality_rows_total', rows, 'counter', { model: m.model, outcome: 'flagged' }, q.rowsWithFlagged);
      for (const [code, n] of Object.entries(q.rejected ?? {})) add('edge_agent_quality_rows_total', rows, 'counter', { model: m.model, outcome: code }, n);
      for (const [feature, reasons] of Object.entries(q.features ?? {})) {
        for (const [reason, actions] of Object.entries(reasons ?? {})) {
          for (const [action, n] of Object.entries(actions ?? {})) add('edge_agent_quality_values_total', 'Values that failed a data-quality check, by feature, reason and what was done (rejected, imputed, flagged)', 'counter', { model: m.model, feature, reason, action }, n);
        }
      }
      for (const [asset, a] of Object.entries(q.byAsset ?? {})) {
        for (const [outcome, n] of Object.entries(a)) add('edge_agent_quality_asset_rows_total', 'Per asset (quality.perAsset): rows judged, rejected, values imputed and flagged; assets beyond maxAssets under "other"', 'counter', { model: m.model, asset, outcome }, n);
      }
      for (const [outcome, n] of Object.entries(q.otherAssets ?? {})) add('edge_agent_quality_asset_rows_total', 'Per asset (quality.perAsset): rows judged, rejected, values imputed and flagged; assets beyond maxAssets under "other"', 'counter', { model: m.model, asset: 'other', outcome }, n);
    }
    const spb = m.sparkplug as { nodes?: { group: string; node: string; online: boolean; gaps: number; lost: number; rebirths: number; late: number }[] } | undefined;
    for (const n of spb?.nodes ?? []) {
      const labels = { model: m.model, group: n.group, node: n.node };
      add('edge_agent_sparkplug_node_online', '1 while a Sparkplug B edge node is online (born, not dead)', 'gauge', labels, n.online ? 1 : 0);
      add('edge_agent_sparkplug_seq_lost_total', 'Sparkplug B messages a node sent that its seq numbers prove were lost', 'counter', labels, n.lost);
      add('edge_agent_sparkplug_seq_gaps_total', 'Gaps in a Sparkplug B node\'s seq numbers', 'counter', labels, n.gaps);
      add('edge_agent_sparkplug_rebirths_total', 'Rebirth requests (NCMD) sent to a Sparkplug B node', 'counter', labels, n.rebirths);
    }
  }
  return out;
}
