// The operators' HTTP server on a real socket: with a token, a request passes with it as a bearer token
// or as the password of Basic auth (any user name), and is refused (401, with a Basic challenge so that a
// browser asks) without it, with a wrong one, or with the token in the user name.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '../../agent/log.js';
import { startHttp, tokenMatches } from '../../agent/observe/http.js';
import { teardown } from '../helpers/parts.js';

const basic = (userPass: string) => `Basic ${Buffer.from(userPass).toString('base64')}`;

test('the token guards every path: as a bearer token or as the Basic auth password', { timeout: 30_000 }, async (t) => {
  const token = 'tök:en-42';
  const log = createLogger({ level: 'silent' });
  const server = await startHttp({ enabled: true, host: '127.0.0.1', port: 0, token, maxSyncLagSec: 0, metrics: { enabled: false, perAsset: 0 } }, { '/': () => ({ status: 200, type: 'text/plain', body: 'page' }) }, log);
  teardown(t, () => server.close());
  const get = async (authorization?: string) => {
    const res = await fetch(`${server.url}/`, { headers: authorization ? { Authorization: authorization } : {}, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.text() };
  };

  const none = await get();
  assert.equal(none.status, 401);
  assert.match(none.challenge ?? '', /^Basic realm="edge-agent"/, 'a Basic challenge, so that a browser asks');
  assert.match(none.challenge ?? '', /Bearer/);
  assert.deepEqual(await get(`Bearer ${token}`).then((r) => [r.status, r.body]), [200, 'page']);
  assert.equal((await get(basic(`operator:${token}`))).status, 200);
  assert.equal((await get(basic(`:${token}`))).status, 200, 'the user name is not checked');
  assert.equal((await get(`basic ${Buffer.from(`x:${token}`).toString('base64')}`)).status, 200, 'the scheme is case-insensitive');

  for (const wrong of [basic('operator:wrong'), basic(`${token}:`), basic(token), basic(`operator:${token}x`), basic(`operator:${token.slice(0, -1)}`),
    `Bearer ${token.slice(0, -1)}`, `Bearer ${token} `.padEnd(40, 'x'), `Token ${token}`, token, 'Basic', 'Basic !!!', basic(`operator:${token}`).replace('Basic', 'Bearer')]) {
    assert.equal((await get(wrong)).status, 401, wrong);
  }
});

test('tokenMatches compares digests (no early exit on length or content)', { timeout: 10_000 }, () => {
  const expected = createHash('sha256').update('s3cret').digest();
  assert.equal(tokenMatches('Bearer s3cret', expected), true);
  assert.equal(tokenMatches(basic('u:s3cret'), expected), true);
  assert.equal(tokenMatches(undefined, expected), false);
  assert.equal(tokenMatches('Bearer ', expected), false);
  assert.equal(tokenMatches('Bearer s3cret-and-more', expected), false);
});
