// Ingest, Sparkplug B host application: takes each message on spBv1.0/<group>/# (and the host's own STATE
// topic) in arrival order; gives the mapped metrics' values as Samples for the join, births to persist,
// rebirth requests (NCMD) to publish, and the assets a death made stale. Pure and synchronous: the caller
// passes `now`, publishes, persists and calls tick(now) on a period.
//
// Rules (the README's "Sparkplug B" section is written from them):
// - A node is online from its NBIRTH until an NDEATH whose bdSeq matches that birth's; an NDEATH with
//   another bdSeq (the Will of an older connection arriving late) is ignored. A device is online from its
//   DBIRTH until its DDEATH or its node's death/rebirth. DATA from an offline or unknown node/device, or
//   with an alias (or name) its birth did not declare, is rejected whole (REJECT_SPARKPLUG_NO_BIRTH) and a
//   rebirth is asked: the birth the agent holds is out of date, so the message's other aliases are suspect too.
// - Values are used in arrival order, whatever their seq: the join orders them by timestamp. A seq gap
//   starts the reorder timeout for the skipped numbers; those still missing at its end are counted lost and a
//   rebirth is asked. A duplicate seq, or one older than the window, is dropped (`ignored`).
// - A birth or DATA that cannot be decoded (or a seq outside 0-255) is rejected (REJECT_SPARKPLUG_PAYLOAD) and a
//   rebirth is asked too: what the node holds now is unknown.
// - Rebirths (NCMD 'Node Control/Rebirth') go out at most once per rebirthMinIntervalMs per node; a request
//   inside the interval is remembered and sent by tick() when the interval is over, unless a birth came first.
// - Births persist (BirthRecord, JSON); at start `saved` gives back the alias maps. A node known only from
//   `saved` gets one rebirth request at its first DATA: messages lost while the agent was down cannot be seen.
// - restore: true (a replay of a message already consumed) rebuilds the state; no birth, no rebirth, no counts.

import type { Sample } from './samples.js';
import { topicLevelProblem } from './topic.js';
import {
  aliasKey, bdSeqOf, decodePayload, globRegExp, metricName, metricTimestamp, metricValue, parseTopic, rebirthCommand,
  type DecodedPayload,
} from './sparkplug-decode.js';
import { createHostState } from './sparkplug-state.js';
import { expireSeq, newSeqTracker, resetSeq, takeSeq, type SeqTracker } from './sparkplug-seq.js';
import {
  MAX_ASSET_CHARS, sparkplugOptionsSchema, type BirthRecord, type Command, type SparkplugOptions, type SparkplugOutcome,
  type SparkplugRejectCode, type SparkplugStatus,
} from './sparkplug-types.js';

export * from './sparkplug-types.js';

interface Def { feature: string | null; datatype: number }
interface Scope { device: string; asset: string; online: boolean; byAlias: Map<number | string, Def>; byName: Map<string, Def>; size: number }
interface NodeState {
  group: string; node: string; key: string;
  online: boolean; confirmed: boolean; bdSeq: number | null; birthAt: number;
  scope: Scope | null; devices: Map<string, Scope>;
  seq: SeqTracker;
  lastRebirthAt: number; rebirthPending: boolean; births: number; rebirths: number; suppressed: number;
}

export function createSparkplugHost(input: SparkplugOptions, deps: { saved: readonly BirthRecord[] }) {
  const options = sparkplugOptionsSchema.parse(input);
  const rules = options.metrics.map((r) => ({
    group: globRegExp(r.group ?? '*'), node: globRegExp(r.node ?? '*'), device: globRegExp(r.device ?? '*'), metric: r.metric, feature: r.feature,
  }));
  const nodes = new Map<string, NodeState>();
  const watch = new Set<NodeState>(); // nodes with missing seqs or a rebirth waiting: all tick() looks at
  const counters = { messages: 0, samples: 0, historical: 0, rejected: 0, ignored: 0, refusedNodes: 0 };
  const hostState = options.hostId === undefined ? null : createHostState(options.hostId);

  const featureOf = (group: string, node: string, device: string, name: string): string | null => {
    for (const r of rules) if (r.metric === name && r.group.test(group) && r.node.test(node) && r.device.test(device)) return r.feature;
    return null;
  };
  const assetOf = (group: string, node: string, device: string) =>
    (device === '' ? options.asset.node : options.asset.device).replaceAll('{group}', group).replaceAll('{node}', node).replaceAll('{device}', device);

  function nodeFor(group: string, node: string, create: boolean): NodeState | null {
    const key = `${group}/${node}`;
    let n = nodes.get(key);
    if (n || !create) return n ?? null;
    if (nodes.size >= options.maxNodes) return null;
    n = {
      group, node, key, online: false, confirmed: true, bdSeq: null, birthAt: 0, scope: null, devices: new Map(), seq: newSeqTracker(),
      lastRebirthAt: -Infinity, rebirthPending: false, births: 0, rebirths: 0, suppressed: 0,
    };
    nodes.set(key, n);
    return n;
  }

  /** A rebirth for `n` now, or remembered for tick() when inside the interval (tck-id-operational-behavior-host-reordering-rebirth). */
  function askRebirth(n: NodeState, now: number, restore: boolean): Command | undefined {
    if (restore) return undefined;
    if (now - n.lastRebirthAt >= options.rebirthMinIntervalMs) {
      n.lastRebirthAt = now;
      n.rebirthPending = false;
      n.rebirths++;
      return rebirthCommand(n.group, n.node, now);
    }
    if (!n.rebirthPending) n.suppressed++;
    n.rebirthPending = true;
    watch.add(n);
    return undefined;
  }

  /** Builds a scope from birth metrics; a string names why the birth is refused. */
  function buildScope(group: string, node: string, device: string, metrics: readonly { name: string; alias: number | string | null; datatype: number }[]): Scope | string {
    const asset = assetOf(group, node, device);
    const problem = topicLevelProblem(asset, MAX_ASSET_CHARS);
    if (problem) return `asset ${JSON.stringify(asset)} ${problem}`;
    const scope: Scope = { device, asset, online: true, byAlias: new Map(), byName: new Map(), size: Math.max(1, metrics.length) };
    for (const m of metrics) {
      const def: Def = { feature: featureOf(group, node, device, m.name), datatype: m.datatype };
      if (m.alias !== null) {
        if (scope.byAlias.has(m.alias)) return `alias ${m.alias} is declared twice (tck-id-payloads-alias-uniqueness)`;
        scope.byAlias.set(m.alias, def);
      }
      scope.byName.set(m.name, def);
    }
    return scope;
  }

  const metricsTotal = (n: NodeState, without: string | null) => {
    let total = n.scope?.size ?? 0;
    for (const [d, s] of n.devices) if (d !== without) total += s.size;
    return total;
  };

  function birthMetrics(p: DecodedPayload): BirthRecord['metrics'] | string {
    const out: BirthRecord['metrics'] = [];
    for (let i = 0; i < p.metrics.length; i++) {
      const m = p.metrics[i]!;
      const name = metricName(m);
      if (name === null) return `birth metric #${i} has no name (tck-id-payloads-alias-birth-requirement)`;
      out.push({ name, alias: aliasKey(m), datatype: m.datatype });
    }
    return out;
  }

  /** Values of a DATA or BIRTH message's metrics, through the scope's definitions; a string names an undeclared metric. */
  function read(scope: Scope, p: DecodedPayload, now: number, out: SparkplugOutcome): string | null {
    const ts0 = p.timestamp ?? now;
    for (const m of p.metrics) {
      const alias = aliasKey(m);
      const def = alias !== null ? scope.byAlias.get(alias) : scope.byName.get(m.name);
      if (def === undefined) return alias !== null ? `alias ${alias} was not declared by the birth` : `metric ${JSON.stringify(m.name)} was not declared by the birth`;
      if (def.feature === null) continue;
      const sample: Sample = { asset: scope.asset, feature: def.feature, value: metricValue(m, m.datatype || def.datatype), ts: metricTimestamp(m) ?? ts0 };
      (m.isHistorical ? out.historical : out.samples).push(sample);
    }
    return null;
  }

  function deviceRecord(n: NodeState, device: string, metrics: BirthRecord['metrics'], now: number): BirthRecord {
    return { key: `${n.key}/${device}`, group: n.group, node: n.node, device, bdSeq: null, receivedAt: now, nodeBirthAt: n.birthAt, metrics };
  }

  function reject(out: SparkplugOutcome, code: SparkplugRejectCode, detail: string, restore: boolean): SparkplugOutcome {
    out.reject = { code, detail };
    if (!restore) counters.rejected++;
    return out;
  }
  function ignore(out: SparkplugOutcome, why: string, restore: boolean): SparkplugOutcome {
    out.ignored = why;
    if (!restore) counters.ignored++;
    return out;
  }

  function take(topic: string, payload: Buffer, now: number, restore = false): SparkplugOutcome {
    const out: SparkplugOutcome = { samples: [], historical: [] };
    if (!restore) counters.messages++;
    const t = parseTopic(topic);
    if (typeof t === 'string') return reject(out, 'REJECT_SPARKPLUG_PAYLOAD', t, restore);
    if (t.kind === 'state') return takeState(t.hostId, payload, out, restore);
    if (t.type === 'NCMD' || t.type === 'DCMD') return ignore(out, `${t.type} is a command to the edge node`, restore);
    const decoded = decodePayload(payload);
    const problem = typeof decoded === 'string' ? decoded : decoded.seq === -1 ? 'seq is not 0-255' : null;
    if (problem !== null || typeof decoded === 'string') {
      // A malformed birth or DATA: what the node holds now is unknown, so its state is asked again (rate-limited
      // per node like every rebirth). A malformed death asks nothing: the node is going away.
      const n = t.type === 'NDEATH' || t.type === 'DDEATH' ? null : nodeFor(t.group, t.node, true);
      if (n) out.rebirth = askRebirth(n, now, restore);
      return reject(out, 'REJECT_SPARKPLUG_PAYLOAD', `${t.type} from ${t.group}/${t.node}: ${problem ?? 'cannot be decoded'}`, restore);
    }
    const p = decoded;
    const who = t.device ? `${t.group}/${t.node}/${t.device}` : `${t.group}/${t.node}`;

    if (t.type === 'NDEATH' || t.type === 'DDEATH') {
      const n = nodeFor(t.group, t.node, false);
      if (!n || !n.online) return ignore(out, `${t.type} for ${who}, which is not online`, restore);
      if (t.type === 'NDEATH') {
        const bdSeq = bdSeqOf(p.metrics);
        // tck-id-operational-behavior-edge-node-termination-host-action-ndeath-node-offline (and -devices-offline):
        // only the death of the current birth counts (tck-id-payloads-ndeath-bdseq).
        if (n.bdSeq !== null && bdSeq !== n.bdSeq) return ignore(out, `NDEATH for ${who} has bdSeq ${bdSeq}, the current birth ${n.bdSeq}`, restore);
        out.offline = offlineAssets(n);
        n.online = false;
        n.rebirthPending = false;
        resetSeq(n.seq, -1, !restore);
        return out;
      }
      if (!seqInOrder(n, p, now, restore, out)) return ignore(out, `DDEATH from ${who}: seq ${p.seq} is a duplicate or came after its reorder timeout`, restore);
      const d = n.devices.get(t.device);
      if (!d || !d.online) return ignore(out, `DDEATH for ${who}, which is not online`, restore);
      d.online = false; // tck-id-operational-behavior-edge-node-termination-host-action-ddeath-devices-offline
      out.offline = [d.asset];
      return out;
    }

    const n = nodeFor(t.group, t.node, true);
    if (!n) {
      if (!restore) counters.refusedNodes++;
      return reject(out, 'REJECT_LIMIT', `${t.type} from ${who}: already tracking sparkplug.maxNodes (${options.maxNodes}) edge nodes`, restore);
    }

    if (t.type === 'NBIRTH') {
      const metrics = birthMetrics(p);
      if (typeof metrics === 'string') return reject(out, 'REJECT_SPARKPLUG_PAYLOAD', `NBIRTH from ${who}: ${metrics}`, restore);
      if (metrics.length > options.maxMetricsPerNode) {
        return reject(out, 'REJECT_LIMIT', `NBIRTH from ${who} declares ${metrics.length} metrics; sparkplug.maxMetricsPerNode is ${options.maxMetricsPerNode}`, restore);
      }
      const scope = buildScope(t.group, t.node, '', metrics);
      if (typeof scope === 'string') return reject(out, scope.startsWith('asset') ? 'REJECT_BAD_ASSET' : 'REJECT_SPARKPLUG_PAYLOAD', `NBIRTH from ${who}: ${scope}`, restore);
      // A birth starts a new session: its devices must be born again after it (tck-id-payloads-dbirth-order).
      n.scope = scope;
      n.devices.clear();
      n.online = true;
      n.confirmed = !restore;
      n.bdSeq = bdSeqOf(p.metrics);
      n.birthAt = now;
      n.rebirthPending = false;
      resetSeq(n.seq, p.seq ?? -1, !restore);
      if (!restore) {
        n.births++;
        out.birth = { key: n.key, group: n.group, node: n.node, device: '', bdSeq: n.bdSeq, receivedAt: now, nodeBirthAt: now, metrics };
      }
      read(scope, p, now, out);
      return counted(out, restore);
    }

    if (!n.online || !n.scope) {
      // Data or a device birth before the node's birth (Sparkplug 3.0 section 5.17: a reason to ask a rebirth)
      out.rebirth = askRebirth(n, now, restore);
      return reject(out, 'REJECT_SPARKPLUG_NO_BIRTH', `${t.type} from ${who}: the agent has not seen the node's birth`, restore);
    }
    if (!seqInOrder(n, p, now, restore, out)) return ignore(out, `${t.type} from ${who}: seq ${p.seq} is a duplicate or came after its reorder timeout`, restore);

    if (t.type === 'DBIRTH') {
      const metrics = birthMetrics(p);
      if (typeof metrics === 'string') return reject(out, 'REJECT_SPARKPLUG_PAYLOAD', `DBIRTH from ${who}: ${metrics}`, restore);
      if (metricsTotal(n, t.device) + Math.max(1, metrics.length) > options.maxMetricsPerNode) {
        return reject(out, 'REJECT_LIMIT', `DBIRTH from ${who}: the node would have more than sparkplug.maxMetricsPerNode (${options.maxMetricsPerNode}) metrics`, restore);
      }
      const scope = buildScope(t.group, t.node, t.device, metrics);
      if (typeof scope === 'string') return reject(out, scope.startsWith('asset') ? 'REJECT_BAD_ASSET' : 'REJECT_SPARKPLUG_PAYLOAD', `DBIRTH from ${who}: ${scope}`, restore);
      n.devices.set(t.device, scope);
      if (!restore) out.birth = deviceRecord(n, t.device, metrics, now);
      read(scope, p, now, out);
      return counted(out, restore);
    }

    // NDATA / DDATA: the hot path.
    const scope = t.device ? n.devices.get(t.device) : n.scope;
    if (!scope || !scope.online) {
      out.rebirth ??= askRebirth(n, now, restore);
      return reject(out, 'REJECT_SPARKPLUG_NO_BIRTH', `DDATA from ${who}: the agent has not seen the device's birth`, restore);
    }
    if (!n.confirmed && !restore) {
      n.confirmed = true; // its birth came from before a restart: ask once for a fresh one
      out.rebirth ??= askRebirth(n, now, restore);
    }
    const undeclared = read(scope, p, now, out);
    if (undeclared !== null) {
      out.samples = [];
      out.historical = [];
      out.rebirth ??= askRebirth(n, now, restore);
      return reject(out, 'REJECT_SPARKPLUG_NO_BIRTH', `${t.type} from ${who}: ${undeclared}`, restore);
    }
    return counted(out, restore);
  }

  /** Tracks the message's seq; false when it is a duplicate or too late. A timeout that ran out asks a rebirth. */
  function seqInOrder(n: NodeState, p: DecodedPayload, now: number, restore: boolean, out: SparkplugOutcome): boolean {
    if (p.seq === null) return true; // a node that sends none (tck-id-payloads-sequence-num-always-included says it must): nothing to prove
    if (takeSeq(n.seq, p.seq, now, options.reorderTimeoutMs, !restore) === 'late') return false;
    if (expireSeq(n.seq, now, !restore) > 0) out.rebirth = askRebirth(n, now, restore);
    if (n.seq.missingCount > 0) watch.add(n);
    return true;
  }

  function counted(out: SparkplugOutcome, restore: boolean): SparkplugOutcome {
    if (!restore) {
      counters.samples += out.samples.length;
      counters.historical += out.historical.length;
    }
    return out;
  }

  function offlineAssets(n: NodeState): string[] {
    const assets = new Set<string>();
    if (n.scope) assets.add(n.scope.asset);
    for (const d of n.devices.values()) {
      if (d.online) assets.add(d.asset);
      d.online = false;
    }
    return [...assets];
  }

  function takeState(hostId: string, payload: Buffer, out: SparkplugOutcome, restore: boolean): SparkplugOutcome {
    if (!hostState || hostState.topic !== `spBv1.0/STATE/${hostId}`) return ignore(out, `STATE of host ${hostId}`, restore);
    const again = restore ? null : hostState.answer(payload);
    if (again) out.state = again;
    return again ? out : ignore(out, 'our own STATE', restore);
  }

  // Saved births: node records first, then the device records of that same node session.
  for (const r of deps.saved) {
    if (r.device !== '') continue;
    const n = nodeFor(r.group, r.node, true);
    if (!n) continue;
    const scope = buildScope(r.group, r.node, '', r.metrics);
    if (typeof scope === 'string') continue;
    Object.assign(n, { scope, online: true, confirmed: false, bdSeq: r.bdSeq, birthAt: r.receivedAt });
  }
  for (const r of deps.saved) {
    if (r.device === '') continue;
    const n = nodes.get(`${r.group}/${r.node}`);
    if (!n || n.birthAt !== r.nodeBirthAt || metricsTotal(n, r.device) + Math.max(1, r.metrics.length) > options.maxMetricsPerNode) continue;
    const scope = buildScope(r.group, r.node, r.device, r.metrics);
    if (typeof scope !== 'string') n.devices.set(r.device, scope);
  }

  return {
    take,
    /** Reorder timeouts that ran out (their seqs counted lost, a rebirth asked) and rebirths whose interval is over. */
    tick(now: number): { rebirths: Command[] } {
      const rebirths: Command[] = [];
      for (const n of watch) {
        const due = expireSeq(n.seq, now, true) > 0 || (n.rebirthPending && now - n.lastRebirthAt >= options.rebirthMinIntervalMs);
        const c = due ? askRebirth(n, now, false) : undefined;
        if (c) rebirths.push(c);
        if (!n.rebirthPending && n.seq.missingCount === 0) watch.delete(n);
      }
      return { rebirths };
    },
    status(): SparkplugStatus {
      return {
        counters: { ...counters },
        nodes: [...nodes.values()].map((n) => ({
          group: n.group, node: n.node, online: n.online, confirmed: n.confirmed, bdSeq: n.bdSeq, lastSeq: n.seq.last < 0 ? null : n.seq.last,
          births: n.births, gaps: n.seq.gaps, reordered: n.seq.reordered, late: n.seq.late, lost: n.seq.lost,
          rebirths: n.rebirths, rebirthsSuppressed: n.suppressed, rebirthPending: n.rebirthPending,
          devices: [...n.devices.values()].map((d) => ({ device: d.device, online: d.online })),
        })),
      };
    },
    /** STATE birth and the Will for the next CONNECT (call it before each CONNECT; publish `payload` once the
     *  subscriptions are acknowledged); null without hostId. */
    stateBirth: (now: number) => hostState?.birth(now) ?? null,
    /** The STATE death to publish before a clean DISCONNECT; our own offline STATE is no longer answered after it. */
    stateDeath: (now: number) => hostState?.death(now) ?? null,
    get nodes() { return nodes.size; },
  };
}

export type SparkplugHost = ReturnType<typeof createSparkplugHost>;
