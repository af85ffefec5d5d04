// Release download: takes a release announcement (files inline, or a base URL to fetch them from) and a
// staging folder; gives the release's files on disk, ready for verification. Nothing here is trusted:
// sizes are capped before and while reading, every request has a deadline, and the disk must have twice
// the release's size free before the first byte is written. The signature is checked later (install.ts).

import { statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeError } from '../agent/errors.js';
import { PLAIN_FILE_NAME } from '../models/read.js';

export const announcementSchema = z.strictObject({
  /** Names this push; the agents' status reports progress under it. */
  releaseId: z.string().min(1).max(200),
  model: z.string().min(1).max(256),
  version: z.string().min(1).max(256),
  /** Small releases travel inside the announcement: file name → base64. */
  files: z.record(z.string().regex(PLAIN_FILE_NAME), z.string()).optional(),
  /** Larger ones are fetched: GET url/manifest.json, url/signature.json, then url/<file> for each listed file. */
  url: z.url({ protocol: /^https?$/ }).optional(),
}).refine((a) => (a.files ? 1 : 0) + (a.url ? 1 : 0) === 1, 'either files (inline) or url, not both');

export type Announcement = z.infer<typeof announcementSchema>;

export interface DownloadLimits {
  maxBytes: number;
  timeoutMs: number;
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

function needSpace(dir: string, bytes: number): void {
  const free = freeBytes(dir);
  if (free < 2 * bytes) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `the release takes ${bytes} bytes and needs twice that free; ${dir} has ${free} bytes free`);
}

/** GETs `url` into memory, refusing more than `max` bytes (by Content-Length and while reading) or a response past the deadline. */
async function fetchCapped(url: string, max: number, deadline: AbortSignal, optional = false): Promise<Buffer | null> {
  let res: Response;
  try {
    res = await fetch(url, { signal: deadline, redirect: 'error' });
  } catch (err) {
    throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${url}: ${deadline.aborted ? 'the download deadline passed' : (err as Error).message}`);
  }
  if (optional && res.status === 404) return null;
  if (!res.ok || !res.body) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${url}: HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${url}: ${declared} bytes, more than the ${max} expected`);
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      got += chunk.length;
      if (got > max) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${url}: more than the ${max} bytes expected`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof EdgeError) throw err;
    throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${url}: ${deadline.aborted ? 'the download deadline passed' : (err as Error).message} after ${got} bytes`);
  }
  return Buffer.concat(chunks);
}

/** Writes the announced release's files into `dir` (empty, on the disk the versions live on). */
export async function downloadRelease(a: Announcement, dir: string, limits: DownloadLimits): Promise<void> {
  if (a.files) {
    const files = Object.entries(a.files).map(([name, b64]) => [name, Buffer.from(b64, 'base64')] as const);
    const total = files.reduce((n, [, b]) => n + b.length, 0);
    if (total > limits.maxBytes) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `the inline release is ${total} bytes; the limit is ${limits.maxBytes}`);
    needSpace(dir, total);
    for (const [name, data] of files) writeFileSync(join(dir, name), data);
    return;
  }
  const base = (a.url as string).replace(/\/?$/, '/');
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const manifestBytes = (await fetchCapped(new URL('manifest.json', base).href, 4 * 1024 * 1024, deadline)) as Buffer;
  let listed: { name: string; bytes: number }[];
  try {
    const m = JSON.parse(manifestBytes.toString('utf8')) as { release?: { files?: { name: string; bytes: number }[] } };
    listed = (m.release?.files ?? []).filter((f) => typeof f.name === 'string' && PLAIN_FILE_NAME.test(f.name) && Number.isInteger(f.bytes) && f.bytes >= 0);
  } catch (err) {
    throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `GET ${base}manifest.json: not JSON (${(err as Error).message})`);
  }
  if (!listed.length) throw new EdgeError('EDGE_ERR_RELEASE_FILES', `${base}manifest.json lists no files in its release block (seal it with 'edge-agent model sign')`);
  const total = listed.reduce((n, f) => n + f.bytes, 0);
  if (total > limits.maxBytes) throw new EdgeError('EDGE_ERR_RELEASE_DOWNLOAD', `the release lists ${total} bytes; the limit is ${limits.maxBytes}`);
  needSpace(dir, total);
  writeFileSync(join(dir, 'manifest.json'), manifestBytes);
  const signature = await fetchCapped(new URL('signature.json', base).href, 64 * 1024, deadline, true);
  if (signature) writeFileSync(join(dir, 'signature.json'), signature);
  for (const f of listed) {
    const data = (await fetchCapped(new URL(f.name, base).href, f.bytes, deadline)) as Buffer;
    writeFileSync(join(dir, f.name), data);
  }
}
