// /metrics against a real agent, a real mosquitto and a real Prometheus: the counters equal what a
// publisher sent (by subscription and QoS, dead letters by reason, predictions by label as the store holds
// them), promtool accepts the text, Prometheus scrapes it with the bearer token, and the scrape example and
// the Grafana dashboard in systemd/monitoring/ stay true to what the agent serves.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import {
  agentConfig, countRows, freePort, mqttClient, openDb, publishSequence, readingPayload, repoRoot, spawnAgent, spawnChild, startMosquitto, tempDir, waitFor, writeConfig,
  type AgentProcess, type Teardown,
} from '../helpers/parts.js';

interface MetricSample { name: string; labels: Record<string, string>; value: number }

/** The Prometheus text format's sample lines (comments skipped). */
function parse(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1');
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `where`. */
function sum(samples: MetricSample[], name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

async function scrape(url: string, token?: string): Promise<{ type: string; text: string }> {
  const res = await fetch(`${url}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(15_000) });
  assert.equal(res.status, 200);
  return { type: res.headers.get('content-type') ?? '', text: await res.text() };
}

/** promtool's lint of a scrape: what it prints (nothing when the text is clean) and its exit code. */
async function promtoolCheck(t: Teardown, args: string[], stdin?: string): Promise<{ code: number | null; out: string }> {
  const child = spawnChild(t, 'promtool', args, { stdio: ['pipe', 'pipe', 'pipe'], killAfterMs: 30_000 });
  child.proc.stdin?.end(stdin ?? '');
  const { code } = await child.exited;
  return { code, out: child.stdout() + child.stderr() };
}

async function httpUrl(agent: AgentProcess): Promise<string> {
  return String((await agent.waitForLog('http listening')).url);
}

const good = readingPayload(1);
const bad = [
  ...Array.from({ length: 7 }, () => ({ payload: '{"vibration": {"rms_g": 0.4,', reason: 'REJECT_MALFORMED_JSON' })),
  ...Array.from({ length: 5 }, () => ({ payload: JSON.stringify({ temperature_c: 45 }), reason: 'REJECT_MISSING_FIELD' })),
  ...Array.from({ length: 3 }, () => ({ payload: JSON.stringify({ ...(JSON.parse(good) as object), pad: 'x'.repeat(5000) }), reason: 'REJECT_PAYLOAD_TOO_LARGE' })),
];

test('/metrics counts what was sent: by subscription and QoS, dead letters by reason, predictions by label; promtool accepts it; the dashboard names only metrics it serves', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const dbPath = join(dir, 'agent.db');
  mkdirSync(join(dir, 'out'));
  const config = agentConfig({
    url: broker.url, dbPath,
    ingest: { subscriptions: [{ topic: 'plant/+/bearing', qos: 1 }, { topic: 'lab/+/bearing', qos: 0 }], maxPayloadBytes: 4096 },
    http: { port: 0, metrics: { perAsset: 1 } },
    // A target that never runs in the test: its backlog is every row.
    sync: { schedule: '0 0 1 1 *', earlyAtRows: 0, targets: [{ type: 'dir', name: 'usb', path: join(dir, 'out') }] },
  });
  const agent = spawnAgent(t, writeConfig(dir, config));
  const url = await httpUrl(agent);
  await agent.waitForLog('agent ready');

  let results = 0;
  const watcher = await mqttClient(t, broker.url);
  watcher.on('message', () => void results++);
  await watcher.subscribeAsync('plant/+/predictions/#', { qos: 1 });

  // m1 at QoS 1 (good and bad), then m2 at QoS 0 on the other subscription: m1 is the first asset seen.
  const gateway = await mqttClient(t, broker.url);
  const N1 = 240;
  const N2 = 60;
  await publishSequence(gateway, 'plant/m1/bearing', N1, 40, 5).done;
  for (const b of bad) await gateway.publishAsync('plant/m1/bearing', b.payload, { qos: 1 });
  await waitFor('the QoS 1 rows', () => countRows(dbPath).predictions + countRows(dbPath).deadLetters === N1 + bad.length);
  for (let i = 0; i < N2; i++) await gateway.publishAsync('lab/m2/bearing', good, { qos: 0 });
  await waitFor(`${N1 + N2} predictions stored`, () => countRows(dbPath).predictions === N1 + N2);
  await waitFor('every result on the result topic', () => results === N1 + N2);
  await waitFor('every result acknowledged', async () => sum(parse((await scrape(url)).text), 'edge_agent_results_published_total') === N1 + N2);

  const { type, text } = await scrape(url);
  assert.match(type, /^text\/plain; version=0\.0\.4/);
  const s = parse(text);
  assert.equal(sum(s, 'edge_agent_messages_received_total', { subscription: 'plant/+/bearing', qos: '1' }), N1 + bad.length);
  assert.equal(sum(s, 'edge_agent_messages_received_total', { subscription: 'lab/+/bearing', qos: '0' }), N2);
  assert.equal(sum(s, 'edge_agent_messages_received_total'), N1 + N2 + bad.length, 'no other subscription or QoS');
  for (const reason of new Set(bad.map((b) => b.reason))) {
    assert.equal(sum(s, 'edge_agent_dead_letters_total', { reason }), bad.filter((b) => b.reason === reason).length, reason);
  }
  assert.equal(sum(s, 'edge_agent_dead_letters_total'), bad.length);
  // Predictions by label: what the store holds, label by label.
  const db = openDb(dbPath);
  const stored = db.prepare('SELECT label, count(*) AS n FROM predictions GROUP BY label').all() as { label: string; n: number }[];
  const events = db.prepare('SELECT event, count(*) AS n FROM model_events GROUP BY event').all() as { event: string; n: number }[];
  db.close();
  for (const { label, n } of stored) assert.equal(sum(s, 'edge_agent_predictions_total', { model: 'bearing-health', label }), n, label);
  assert.equal(sum(s, 'edge_agent_predictions_total'), N1 + N2);
  for (const { event, n } of events) assert.equal(sum(s, 'edge_agent_model_events_total', { model: 'bearing-health', event }), n, event);
  // Opted in to one asset: m1 by name, m2 as "other".
  assert.equal(sum(s, 'edge_agent_asset_predictions_total', { asset: 'm1' }), N1);
  assert.equal(sum(s, 'edge_agent_asset_predictions_total', { asset: 'other' }), N2);
  assert.deepEqual([...new Set(s.filter((x) => x.name === 'edge_agent_asset_predictions_total').map((x) => x.labels.asset))].sort(), ['m1', 'other']);
  // Every message went to the model's batches; every prediction has its latency; the store's rows wait for the target.
  assert.equal(sum(s, 'edge_agent_batch_rows_sum'), N1 + N2 + bad.length);
  assert.equal(sum(s, 'edge_agent_message_latency_seconds_count'), N1 + N2);
  assert.equal(sum(s, 'edge_agent_message_latency_seconds_bucket', { le: '+Inf' }), N1 + N2);
  assert.ok(sum(s, 'edge_agent_inference_seconds_count') >= 1);
  // (The run at start may have sent rows already: what waits and what went add up to what is stored.)
  const usb = (name: string, kind: string) => sum(s, name, { target: 'usb', kind });
  assert.equal(usb('edge_agent_sync_backlog_rows', 'predictions') + usb('edge_agent_sync_rows_sent_total', 'predictions'), N1 + N2);
  assert.equal(usb('edge_agent_sync_backlog_rows', 'dead_letters') + usb('edge_agent_sync_rows_sent_total', 'dead_letters'), bad.length);
  assert.equal(sum(s, 'edge_agent_model_info', { model: 'bearing-health', version: '1.0.0', role: 'active' }), 1);
  assert.equal(sum(s, 'edge_agent_broker_connected'), 1);
  assert.ok(sum(s, 'process_resident_memory_bytes') > 10e6);
  assert.ok(sum(s, 'edge_agent_store_used_bytes') > 0);
  // Served only while the checkpoint thread runs (the agent starts it with the store).
  assert.ok(s.some((x) => x.name === 'edge_agent_store_wal_behind_pages'), 'the WAL checkpoint thread reports');

  // promtool's lint prints nothing for a clean text.
  assert.deepEqual(await promtoolCheck(t, ['check', 'metrics'], text), { code: 0, out: '' });

  // The dashboard: importable, with its data-source input, and every metric its queries name is served.
  const dashboard = JSON.parse(readFileSync(join(repoRoot, 'systemd', 'monitoring', 'grafana-dashboard.json'), 'utf8')) as {
    __inputs: { name: string; type: string; pluginId: string }[]; panels: { title: string; targets?: { expr: string }[] }[]; templating: { list: { name: string }[] };
  };
  assert.ok(dashboard.__inputs.some((i) => i.name === 'DS_PROMETHEUS' && i.type === 'datasource' && i.pluginId === 'prometheus'));
  assert.ok(dashboard.templating.list.some((v) => v.name === 'instance'), 'an instance variable');
  const served = new Set(s.map((x) => x.name));
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((q) => q.expr));
  assert.ok(exprs.length >= 10, `${exprs.length} queries`);
  const named = new Set(exprs.flatMap((e) => e.match(/\b(?:edge_agent|process|nodejs)_[a-z0-9_]+/g) ?? []));
  for (const name of named) assert.ok(served.has(name), `the dashboard queries ${name}, which /metrics does not serve`);
});

test('a real Prometheus scrapes the agent with the bearer token: up is 1 and the predictions counter is what was sent; the scrape example passes promtool', { timeout: 120_000 }, async (t) => {
  assert.deepEqual(await promtoolCheck(t, ['check', 'config', join(repoRoot, 'systemd', 'monitoring', 'prometheus.yml')]).then((r) => r.code), 0);

  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const token = 'metrics-test-token';
  writeFileSync(join(dir, 'token'), token);
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), http: { port: 0, token: { file: join(dir, 'token') } } })));
  const url = await httpUrl(agent);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  const N = 150;
  await publishSequence(gateway, 'plant/m1/bearing', N).done;
  await waitFor(`${N} predictions`, () => countRows(join(dir, 'a.db')).predictions === N);

  const port = await freePort();
  const promDir = join(dir, 'prom');
  mkdirSync(promDir);
  writeFileSync(join(promDir, 'prometheus.yml'), stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: 'edge-agent-test', authorization: { type: 'Bearer', credentials_file: join(dir, 'token') }, static_configs: [{ targets: [new URL(url).host] }] }],
  }));
  const prom = spawnChild(t, 'prometheus', [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stopSignal: 'SIGTERM' });
  const query = async (q: string): Promise<number | null> => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
      const v = body.data?.result?.[0]?.value[1];
      return v === undefined ? null : Number(v);
    } catch {
      if (prom.proc.exitCode !== null) throw new Error(`prometheus exited: ${prom.stderr().slice(-1000)}`);
      return null;
    }
  };
  await waitFor('Prometheus to scrape the agent (up == 1)', async () => (await query('up{job="edge-agent-test"}')) === 1, 60_000, 250);
  await waitFor(`Prometheus to hold ${N} predictions`, async () => (await query('sum(edge_agent_predictions_total{job="edge-agent-test"})')) === N, 30_000, 250);
  assert.equal(await query('sum(edge_agent_messages_received_total{job="edge-agent-test",subscription="plant/+/bearing",qos="1"})'), N);
});

test('http.metrics.enabled false: no /metrics, the other paths serve', { timeout: 60_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), http: { port: 0, metrics: { enabled: false } } })));
  const url = await httpUrl(agent);
  await agent.waitForLog('agent ready');
  assert.equal((await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(15_000) })).status, 404);
  assert.equal((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(15_000) })).status, 200);
});
