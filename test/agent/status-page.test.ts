// The status page (in Debian's chromium) drawing a given snapshot: drift and ground truth as tables, with a
// feature over its threshold in red; a model's previous version,
// shadow and last event; the failing readiness check; a sync error. The page is served by the agent's own
// HTTP server and routes; only /api/status is a fixed answer here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { createLogger } from '../../agent/log.js';
import { json, startHttp } from '../../agent/observe/http.js';
import { statusPageRoutes } from '../../agent/observe/page.js';
import { statusFixture } from '../helpers/status-fixture.js';
import { teardown, waitFor } from '../helpers/parts.js';

test('the page shows drift, ground truth, payload styles and the gate, models, checks and sync from the snapshot', { timeout: 90_000 }, async (t) => {
  const log = createLogger({ level: 'silent' });
  let answering = true;
  const server = await startHttp({ enabled: true, host: '127.0.0.1', port: 0, maxSyncLagSec: 0, metrics: { enabled: false, perAsset: 0 } }, {
    ...statusPageRoutes(log),
    '/api/status': () => (answering ? json(200, statusFixture()) : json(503, { error: 'stopping' })),
  }, log);
  teardown(t, () => server.close());
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'], timeout: 30_000 });
  teardown(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/`, { timeout: 30_000 });
  await waitFor('the first answer drawn', async () => (await page.locator('#t-predictions .v').getAttribute('data-value')) === '1200', 30_000, 100);

  assert.equal(await page.locator('#ready').textContent(), 'NOT READY: broker');
  assert.match(await page.locator('#checks tr.bad').innerText(), /broker\s+not connected to mqtt:\/\/10\.0\.3\.5:1883/);
  const models = await page.locator('#models').innerText();
  assert.match(models, /bearing-health\s+1\.1\.0\s+1\.0\.0\s+1\.0\.0, 1\.1\.0, 1\.2\.0\s+1\.2\.0 \(agrees 99 % of 400\)\s+alive\s+committed 1\.1\.0/);
  // Drift: the model's features as a table, the one over its threshold in red.
  assert.match(await page.locator('#drift').innerText(), /bearing-health@1\.1\.0/);
  // Its PSI, mean now, training mean and share outside the training range.
  assert.match(await page.locator('#drift tr.bad').innerText(), /^rms_g\s+0\.310\s+2\.400\s+1\.100\s+2 %$/);
  assert.equal(await page.locator('#drift tr.bad').count(), 1, 'only rms_g is over');
  assert.match(await page.locator('#truth').innerText(), /labels 260 received, 250 joined, 6 unmatched, 4 bad, 0 waiting/);
  assert.match(await page.locator('#truth').innerText(), /bearing-health@1\.1\.0\s+250\s+accuracy 96\.4 %\s+500 labels/);
  assert.match(await page.locator('#sync tr.bad').innerText(), /plant-server\s+predictions\s+150\s+1 min\s.*connect ECONNREFUSED 10\.0\.9\.9:443/);
  assert.match(await page.locator('#rejects').innerText(), /REJECT_OUT_OF_RANGE\s+2/);
  // Payload styles and the gate: the model's style row (10 rejected: bad), the failed checks, the Sparkplug B node offline.
  assert.match(await page.locator('#ingest tr.bad').first().innerText(), /^bearing-health\s+sparkplug\s+4\s+0\s+900\s+2 \/ 1\s+5\s+880\s+12\s+8\s+10$/);
  assert.match(await page.locator('#ingest').innerText(), /temperature_c\s+stale\s+10\s+0\s+0/);
  assert.match(await page.locator('#ingest').innerText(), /speed_rpm\s+missing\s+0\s+12\s+0/);
  assert.match(await page.locator('#ingest').innerText(), /Plant1\/press-gw\s+offline\s+3\s+4\s+2\s+1\s+0 \/ 1/);
  assert.match(await page.locator('#t-store .s').innerText(), /of 2\.0 GiB budget \(4\.9 %\)/);

  assert.deepEqual(errors, []);

  // The agent answers 503: the page says so and keeps the figures (chromium itself logs the failed request).
  answering = false;
  await page.locator('#link').filter({ hasText: 'HTTP 503' }).waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(await page.locator('#t-predictions .v').getAttribute('data-value'), '1200');
  answering = true;
  await page.locator('#link').waitFor({ state: 'hidden', timeout: 30_000 });
  assert.deepEqual(errors.filter((e) => !/Failed to load resource: .* 503/.test(e)), [], 'a 503 from the agent is said on the page, not thrown');
});
