// Releases pushed over the plant's broker: takes release announcements, retained, on this agent's own
// topic and on its groups' topics (an agent that was off gets them when it comes back); downloads each,
// hands it to the model lifecycle (verify, install, activate, probation), and publishes this agent's
// state, retained, on its status topic at every step, which `edge-agent model push` follows live.
// No server of our own: the plant's broker (one or a cluster) carries everything.

import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import type { Logger } from '../agent/log.js';
import type { ModelEvent, ModelManager } from '../models/activate.js';
import { writeFileAtomic } from '../models/versions.js';
import { announcementSchema, downloadRelease, type Announcement } from './download.js';
import { pullOptionsSchema } from './pull.js';

const ID = /^[A-Za-z0-9._-]{1,128}$/;

export const releasesOptionsSchema = z
  .strictObject({
    /** Listen for pushed releases on the broker. */
    enabled: z.boolean().default(true),
    /** This agent's name on the release and status topics. Default: mqtt.clientId. */
    agentId: z.string().regex(ID, 'letters, digits, . _ - (it stands in a topic)').optional(),
    /** Groups this agent belongs to, e.g. the line: a push to a group reaches all its agents. */
    groups: z.array(z.string().regex(ID, 'letters, digits, . _ - (it stands in a topic)')).default([]),
    topicPrefix: z.string().regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'topic levels of letters, digits, . _ -').default('edge-agent'),
    /** The largest release (all its files) the agent downloads. */
    maxDownloadBytes: z.number().int().positive().default(256 * 1024 * 1024),
    /** The whole download of one release must finish within this. */
    downloadTimeoutMs: z.number().int().min(100).default(120_000),
    /** Also pull releases from a registry on a schedule (see pull.ts). */
    registry: pullOptionsSchema.optional(),
  })
  .prefault({});

export type ReleasesOptions = z.infer<typeof releasesOptionsSchema>;

export const releaseTopic = (prefix: string, kind: 'agents' | 'groups', id: string) => `${prefix}/${kind}/${id}/releases`;
export const statusTopic = (prefix: string, agentId: string) => `${prefix}/agents/${agentId}/status`;

/** The state of a push under way or last finished, as an agent reports it. */
export interface ReleaseState { releaseId: string; version: string; state: string; reason: string; at: string }

/** One served model's part of the status: its versions, its last lifecycle event and its last push. */
export interface ModelStatus {
  active: string | null;
  previous: string | null;
  shadow: string | null;
  lastEvent: { version: string | null; event: string; reason: string; at: string } | null;
  release: ReleaseState | null;
}

/** What an agent publishes on its status topic (retained): per model it serves. */
export interface AgentStatus {
  agentId: string;
  groups: string[];
  at: string;
  models: Record<string, ModelStatus>;
}

/** Lifecycle events and the state a push reports for them; the last three end a push. */
const STATES: Record<string, string> = {
  installed: 'verified', activated: 'activated', 'on probation': 'on probation', committed: 'committed',
  refused: 'refused', 'probation failed': 'probation failed', 'rolled back': 'rolled back',
};
export const FINAL_STATES = new Set(['committed', 'refused', 'rolled back']);

export interface ReleaseListenerDeps {
  client: MqttClient;
  /** The manager of each model the agent serves, by name: a release goes to its model's. */
  managers: ReadonlyMap<string, ModelManager>;
  /** Where downloads are staged (on the disk the versions live on) and pushes already handled are kept. */
  versionsDir: string;
  agentId: string;
  log: Logger;
}

export function createReleaseListener(o: Readonly<Omit<ReleasesOptions, 'groups'>> & { readonly groups: readonly string[] }, deps: ReleaseListenerDeps) {
  const { client, managers, log, agentId } = deps;
  const topics = [releaseTopic(o.topicPrefix, 'agents', agentId), ...o.groups.map((g) => releaseTopic(o.topicPrefix, 'groups', g))];
  const seenPath = join(deps.versionsDir, 'pushes-seen.json');
  // Pushes already handled (retained announcements come again at every reconnect): never twice.
  const seen: string[] = existsSync(seenPath) ? (JSON.parse(readFileSync(seenPath, 'utf8')) as string[]) : [];
  // Per model: the push under way, its last reported state, and the model's last lifecycle event.
  const current = new Map<string, { releaseId: string; version: string }>();
  const release = new Map<string, ReleaseState>();
  const lastEvent = new Map<string, ModelStatus['lastEvent']>();

  function publishStatus(): void {
    const models: Record<string, ModelStatus> = {};
    for (const [name, manager] of managers) {
      const { state } = manager.list();
      models[name] = { active: state.active, previous: state.previous, shadow: state.shadow ?? null, lastEvent: lastEvent.get(name) ?? null, release: release.get(name) ?? null };
    }
    const status: AgentStatus = { agentId, groups: [...o.groups], at: new Date().toISOString(), models };
    client.publish(statusTopic(o.topicPrefix, agentId), JSON.stringify(status), { qos: 1, retain: true }, (err) => {
      if (err) log.warn({ err: err.message }, 'status not published');
    });
  }

  function report(model: string, state: string, reason: string): void {
    const push = current.get(model);
    if (!push) return;
    release.set(model, { releaseId: push.releaseId, version: push.version, state, reason, at: new Date().toISOString() });
    if (FINAL_STATES.has(state)) current.delete(model);
  }

  async function handle(a: Announcement, manager: ModelManager): Promise<void> {
    current.set(a.model, { releaseId: a.releaseId, version: a.version });
    report(a.model, 'downloading', a.url ? `from ${a.url}` : 'inline');
    publishStatus();
    const dir = join(deps.versionsDir, '.incoming', `push-${randomBytes(6).toString('hex')}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      await downloadRelease(a, dir, { maxBytes: o.maxDownloadBytes, timeoutMs: o.downloadTimeoutMs });
      report(a.model, 'downloaded', '');
      publishStatus();
      await manager.install(dir, `push ${a.releaseId}`); // its events report verified, activated, on probation, committed
    } catch (err) {
      log.warn({ releaseId: a.releaseId, model: a.model, version: a.version, err: (err as Error).message }, 'pushed release refused');
      report(a.model, 'refused', (err as Error).message);
      publishStatus();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  let queue: Promise<void> = Promise.resolve();
  /** An announcement from the broker or the registry: handled in order, never twice. */
  function offer(a: Announcement, from: string): void {
    const manager = managers.get(a.model);
    if (!manager) return void log.debug({ from, model: a.model }, 'release for a model this agent does not serve');
    // Marked seen when it arrives, not when its turn comes: an agent coming back gets the same release twice
    // (queued in its session, and retained when it subscribes again), and the second must not queue behind the first.
    if (seen.includes(a.releaseId)) return;
    seen.push(a.releaseId);
    writeFileAtomic(seenPath, JSON.stringify(seen.slice(-200)));
    queue = queue.then(() => handle(a, manager));
  }
  return {
    offer,
    topics,
    handles: (topic: string) => topics.includes(topic),
    /** One announcement; handled in order, never twice. Bad ones are logged, never thrown. */
    receive(topic: string, payload: Buffer): void {
      if (payload.length === 0) return; // a cleared retained message
      let a: Announcement;
      try {
        a = announcementSchema.parse(JSON.parse(payload.toString('utf8')));
      } catch (err) {
        log.warn({ topic, err: (err as Error).message.slice(0, 300) }, 'release announcement ignored: not one');
        return;
      }
      offer(a, topic);
    },
    /** Lifecycle events (the managers' record): each model's last event, and the state of its push under way. */
    onEvent(e: ModelEvent): void {
      lastEvent.set(e.model, { version: e.version, event: e.event, reason: e.reason, at: new Date().toISOString() });
      const state = STATES[e.event];
      const push = current.get(e.model);
      // 'rolled back' names the version it went back to: it ends the push of the version that failed.
      if (state && push && (e.version === push.version || e.event === 'rolled back' || e.event === 'refused')) report(e.model, state, e.reason);
      publishStatus();
    },
    publishStatus,
  };
}
