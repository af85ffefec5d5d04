// `edge-agent model push`: takes a signed version folder, the plant's broker and a target (a group of
// agents or one agent); publishes the release announcement, retained, on the target's topic, then follows
// each target agent's status topic and prints its progress (downloading, verified, activated, on
// probation, committed, refused or rolled back, with the reason) until every one has finished or the
// timeout passes. Which agents belong to a group, their own retained statuses say.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { EdgeError } from '../agent/errors.js';
import { readManifest } from '../models/manifest.js';
import { FINAL_STATES, releaseTopic, type AgentStatus, type ModelStatus } from './push.js';
import type { Announcement } from './download.js';

export interface PushOptions {
  dir: string;
  broker: string;
  /** "group:NAME" or "agent:ID" (a bare NAME is a group). */
  target: string;
  /** Base URL the agents fetch the files from; absent: the files travel inline. */
  url?: string;
  timeoutMs: number;
  topicPrefix: string;
  username?: string;
  password?: string;
  /** How long the retained statuses may take to arrive before the push is published. */
  settleMs?: number;
}

/** Releases up to this size travel inside the announcement. */
export const MAX_INLINE_BYTES = 512 * 1024;

export async function pushRelease(o: PushOptions, out: (s: string) => void): Promise<void> {
  const manifest = readManifest(o.dir);
  if (!manifest.release) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${o.dir}: seal it first with 'edge-agent model sign'`);
  const [kind, id] = o.target.includes(':') ? (o.target.split(':', 2) as [string, string]) : ['group', o.target];
  if ((kind !== 'group' && kind !== 'agent') || !/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    throw new EdgeError('EDGE_ERR_CLI_USAGE', `--target: got "${o.target}", expected group:NAME or agent:ID (letters, digits, . _ -)`);
  }
  const announcement: Announcement = { releaseId: `${manifest.name}@${manifest.version}-${randomBytes(4).toString('hex')}`, model: manifest.name, version: manifest.version };
  if (o.url) announcement.url = o.url;
  else {
    const names = ['manifest.json', 'signature.json', ...manifest.release.files.map((f) => f.name)];
    const total = manifest.release.files.reduce((n, f) => n + f.bytes, 0);
    if (total > MAX_INLINE_BYTES) throw new EdgeError('EDGE_ERR_CLI_USAGE', `the release is ${total} bytes, more than the ${MAX_INLINE_BYTES} that travel inline: serve the folder over HTTP and give --url`);
    announcement.files = Object.fromEntries(names.map((n) => [n, readFileSync(join(o.dir, n)).toString('base64')]));
  }

  let client: mqtt.MqttClient;
  try {
    client = await mqtt.connectAsync(o.broker, { reconnectPeriod: 0, connectTimeout: 10_000, ...(o.username ? { username: o.username } : {}), ...(o.password ? { password: o.password } : {}) });
  } catch (err) {
    throw new EdgeError('EDGE_ERR_BROKER', `cannot reach ${o.broker.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  }
  try {
    const statuses = new Map<string, AgentStatus>();
    const shown = new Map<string, string>();
    // The agents of the target that serve this model; each one's state of this push.
    const members = () =>
      [...statuses.values()].filter((s) => (kind === 'group' ? s.groups.includes(id) : s.agentId === id) && Object.hasOwn(s.models, manifest.name)).sort((a, b) => (a.agentId < b.agentId ? -1 : 1));
    const pushOf = (s: AgentStatus) => {
      const r = s.models[manifest.name]?.release;
      return r?.releaseId === announcement.releaseId ? r : null;
    };
    let wake: () => void = () => undefined;
    client.on('message', (_topic, payload) => {
      try {
        const s = statusOf(JSON.parse(payload.toString()));
        if (!s) return;
        statuses.set(s.agentId, s);
        const r = pushOf(s);
        if (r && shown.get(s.agentId) !== r.state) {
          shown.set(s.agentId, r.state);
          out(`${s.agentId}: ${r.state} ${r.version}${r.reason ? ` — ${r.reason.split('\n')[0]}` : ''}\n`);
        }
        wake();
      } catch {
        // not a status: ignore
      }
    });
    await client.subscribeAsync(`${o.topicPrefix}/agents/+/status`, { qos: 1 });
    // Retained statuses arrive right after the SUBACK: they tell which agents are in the target.
    await new Promise((r) => setTimeout(r, o.settleMs ?? 1500));
    const expected = members().map((s) => s.agentId);
    out(`pushing ${manifest.name} ${manifest.version} (${announcement.url ? `from ${announcement.url}` : 'inline'}) to ${kind} ${id}: ${expected.length ? expected.join(', ') : 'no agent of it has reported yet'}\n`);
    await client.publishAsync(releaseTopic(o.topicPrefix, kind === 'group' ? 'groups' : 'agents', id), JSON.stringify(announcement), { qos: 1, retain: true });

    const end = Date.now() + o.timeoutMs;
    const finished = () => {
      const m = members();
      return m.length > 0 && m.every((s) => FINAL_STATES.has(pushOf(s)?.state ?? ''));
    };
    while (!finished() && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, Math.min(1000, end - Date.now())));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const m = members();
    const states = m.map((s) => ({ agent: s.agentId, state: pushOf(s)?.state ?? 'no answer' }));
    out(`${states.map((s) => `${s.agent} ${s.state}`).join(', ') || 'no agent answered'}\n`);
    if (!finished()) throw new EdgeError('EDGE_ERR_PUSH_TIMEOUT', `not every agent of ${kind} ${id} finished within ${o.timeoutMs} ms: ${states.filter((s) => !FINAL_STATES.has(s.state)).map((s) => `${s.agent} ${s.state}`).join(', ') || 'none answered'}`);
    const failed = states.filter((s) => s.state !== 'committed');
    if (failed.length) throw new EdgeError('EDGE_ERR_PUSH_FAILED', `${failed.length} of ${states.length} agents did not commit ${manifest.version}: ${failed.map((s) => `${s.agent} ${s.state}`).join(', ')}`);
  } finally {
    await client.endAsync();
  }
}

/**
 * A status as this version reads it, or null when it is not one. Agents before several models per agent
 * published one model at the top level ({ model, active, previous, release }): read as that one model.
 */
function statusOf(v: unknown): AgentStatus | null {
  if (v === null || typeof v !== 'object') return null;
  const s = v as Partial<AgentStatus> & { model?: unknown; active?: string | null; previous?: string | null; release?: ModelStatus['release'] };
  if (typeof s.agentId !== 'string' || !Array.isArray(s.groups)) return null;
  if (s.models !== null && typeof s.models === 'object') return s as AgentStatus;
  if (typeof s.model !== 'string') return null;
  return { agentId: s.agentId, groups: s.groups, at: String(s.at), models: { [s.model]: { active: s.active ?? null, previous: s.previous ?? null, shadow: null, lastEvent: null, release: s.release ?? null } } };
}
