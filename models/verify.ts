// Verification of a candidate version, in a child process: takes a version folder and the agent's trust
// policy; gives the candidate's identity and measured latency, or the reason it is refused. The child
// (verify-child.ts) checks files, sizes, hashes and the signature, then loads the model in onnxruntime,
// checks it against its manifest, runs its golden vectors and times a full batch against the latency
// budget. A malformed file that crashes onnxruntime crashes the child, never the agent.

import { spawn } from 'node:child_process';
import { EdgeError, type ErrorCode } from '../agent/errors.js';

export interface VerifyRequest {
  dir: string;
  /** Trusted public keys (PEM); their key ids are computed from them. */
  keys: string[];
  allowUnsigned: boolean;
  highestTrusted: string | null;
  clockSlackMs: number;
  maxModelBytes: number;
  /** Rows in the batch timed against the manifest's latency budget. */
  batchRows: number;
}

export interface Verified {
  name: string;
  version: string;
  signedBy: string | null;
  latencyP99Ms: number;
}

export type ChildReply = { ok: true; verified: Verified } | { ok: false; code: ErrorCode; message: string };

export async function verifyInChild(req: VerifyRequest, deadlineMs: number): Promise<Verified> {
  const child = spawn(process.execPath, [new URL('./verify-child.js', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  child.stdin.end(JSON.stringify(req));
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => (timer = setTimeout(() => resolve('overrun'), deadlineMs)));
  const first = await Promise.race([exited, overrun]);
  clearTimeout(timer);
  if (first === 'overrun') {
    child.kill('SIGKILL');
    await exited;
    throw new EdgeError('EDGE_ERR_MODEL_VERIFY', `${req.dir}: verification did not finish within ${deadlineMs} ms`);
  }
  let reply: ChildReply | null = null;
  try {
    reply = JSON.parse(out.trim().split('\n').pop() ?? '') as ChildReply;
  } catch {
    reply = null;
  }
  if (!reply) {
    const how = first.signal ? `was killed by ${first.signal}` : `exited with ${String(first.code)}`;
    throw new EdgeError('EDGE_ERR_MODEL_VERIFY', `${req.dir}: the verification process ${how} without an answer (a crash in onnxruntime?): ${err.trim().slice(-500)}`);
  }
  if (!reply.ok) throw new EdgeError(reply.code, reply.message);
  return reply.verified;
}
