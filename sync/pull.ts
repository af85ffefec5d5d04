// Registry pull: takes a registry URL and a node-cron schedule; gives, once at start and then on the
// schedule, the registry's latest release of each served model, handed to the same path as a push
// (download, verify, install, activate, probation). The registry is any HTTP server: GET
// <url>/<model>/latest.json answers an announcement, the JSON `edge-agent model push` publishes.
// node-cron's pitfalls are guarded: the schedule runs in UTC (no DST skips or doubles), one pull at a
// time by a flag of our own, every request has a deadline, and the start pull catches up what a
// machine that was off missed.

import cron from 'node-cron';
import { z } from 'zod';
import type { Logger } from '../agent/log.js';
import { announcementSchema, type Announcement } from './download.js';

export const pullOptionsSchema = z.strictObject({
  /** Base URL of the registry: GET <url>/<model>/latest.json. */
  url: z.url({ protocol: /^https?$/ }),
  /** When to look, in UTC: a cron expression of 5 fields (or 6 with seconds first). */
  schedule: z.string().refine((s) => cron.validate(s), 'a cron expression such as "*/15 * * * *" (evaluated in UTC)').default('*/15 * * * *'),
  /** Each look must answer within this. */
  timeoutMs: z.number().int().min(100).default(30_000),
});

export type PullOptions = z.infer<typeof pullOptionsSchema>;

export interface PullDeps {
  /** The models the agent serves: each one's latest release is looked up. */
  modelNames(): readonly string[];
  /** The release path: the same as a pushed announcement (handled once per release id). */
  offer(a: Announcement, from: string): void;
  log: Logger;
}

export function startRegistryPull(o: PullOptions, deps: PullDeps) {
  let running = false;
  async function look(): Promise<void> {
    if (running) return void deps.log.warn({ url: o.url }, 'registry pull still running; this one skipped');
    running = true;
    try {
      for (const name of deps.modelNames()) await lookFor(name);
    } finally {
      running = false;
    }
  }
  async function lookFor(name: string): Promise<void> {
    const url = new URL(`${encodeURIComponent(name)}/latest.json`, o.url.replace(/\/?$/, '/')).href;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs), redirect: 'error' });
      if (res.status === 404) return void deps.log.debug({ url }, 'no release in the registry');
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > 8 * 1024 * 1024) throw new Error(`an answer of ${text.length} characters`);
      const a = announcementSchema.parse(JSON.parse(text));
      deps.offer(a, url);
    } catch (err) {
      deps.log.warn({ url, err: (err as Error).message.slice(0, 300) }, 'registry pull failed');
    }
  }
  void look(); // at start: catches up whatever was published while the agent was off
  const task = cron.schedule(o.schedule, look, { timezone: 'UTC', noOverlap: true, name: 'registry-pull' });
  return {
    look,
    close: async () => {
      await task.destroy();
    },
  };
}
