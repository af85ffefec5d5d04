// The status page in a real browser (Debian's chromium driven by playwright-core) against a real agent
// child process and a real mosquitto: it counts what a publisher sent and keeps counting without a reload,
// draws its charts, asks nothing of any host but the agent's, logs no error, says so when the agent stops
// answering (keeping the last figures), and with http.token the browser needs the token as its password.
// EDGE_AGENT_UPDATE_SCREENSHOT=1 rewrites the README's screenshot (agent/observe/status-page.png).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { reading } from '../../agent/simulate.js';
import { agentConfig, freePort, mqttClient, repoRoot, spawnAgent, startMosquitto, stopChild, teardown, tempDir, waitFor, writeConfig, type Teardown } from '../helpers/parts.js';

const STEP_MS = 30_000;

async function launch(t: Teardown): Promise<Browser> {
  // Never a downloaded browser: the distribution's chromium, with nothing that phones home.
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: STEP_MS,
  });
  teardown(t, () => browser.close());
  return browser;
}

/** The figure the page shows in a tile (its data-value), or null before the first answer. */
const shown = (page: Page, tile: string) => page.locator(`#${tile} .v`).getAttribute('data-value', { timeout: STEP_MS });

async function waitShown(page: Page, tile: string, value: number): Promise<void> {
  // Polled from here: the page's policy forbids the eval that page.waitForFunction would need.
  await waitFor(`the page to show ${value} in ${tile}`, async () => (await shown(page, tile)) === String(value), STEP_MS, 100);
}

/** The page is not shown: chromium either shows the 401 or gives up on the credentials it has (both seen here). */
async function refusedInBrowser(page: Page, url: string): Promise<void> {
  const answer = await page.goto(`${url}/`, { timeout: STEP_MS }).then((r) => r?.status(), (err: Error) => err.message);
  assert.ok(answer === 401 || /ERR_INVALID_AUTH_CREDENTIALS/.test(String(answer)), String(answer));
  assert.equal(await page.locator('#t-predictions').count(), 0, 'no status page without the token');
}

test('the status page shows what was sent, live, asking only this agent', { timeout: 180_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  // Two sync targets for the sync table: a folder that takes every row, and a server that is not there.
  const archive = join(dir, 'archive');
  mkdirSync(archive);
  const sync = { targets: [{ type: 'dir', name: 'usb-archive', path: archive }, { type: 'http', name: 'plant-server', url: `http://127.0.0.1:${await freePort()}/ingest`, timeoutMs: 2000 }] };
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), sync })));
  const url = String((await agent.waitForLog('http listening')).url);
  await agent.waitForLog('agent ready');
  const gateway = await mqttClient(t, broker.url);
  // Healthy, worn and failing bearings (so the chart has several labels), and payloads no model can read.
  let seq = 0;
  let rand = 1;
  const next = () => ((rand = (rand * 16807) % 2147483647) / 2147483647);
  const send = async (n: number, bad = 0, healths = [0.05, 0.55, 0.95]) => {
    for (let i = 0; i < n; i++) {
      const health = healths[i % healths.length] as number;
      await gateway.publishAsync(`plant/press-${i % 3}/bearing`, JSON.stringify(reading(i % 3, ++seq, health, next)), { qos: 1 });
    }
    for (let i = 0; i < bad; i++) await gateway.publishAsync('plant/press-9/bearing', '{"vibration": {', { qos: 1 });
  };

  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  const errors: string[] = [];
  let navigations = 0;
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);

  const N = 90;
  const BAD = 4;
  await send(N, BAD);
  const res = await page.goto(`${url}/`, { timeout: STEP_MS });
  assert.equal(res?.status(), 200);
  await waitShown(page, 't-predictions', N);
  await waitShown(page, 't-dead', BAD);
  assert.equal(await page.locator('#ready').textContent(), 'READY');
  assert.match(await page.locator('#models').innerText(), /bearing-health\s+1\.0\.0/);
  assert.match(await page.locator('#rejects').innerText(), /REJECT_MALFORMED_JSON\s+4/);
  assert.match(await page.locator('#drift').innerText(), /bearing-health@1\.0\.0/, 'drift of the serving version shown');
  await waitFor('the sync table', async () => /usb-archive\s+predictions/.test(await page.locator('#sync').innerText()) && /plant-server/.test(await page.locator('#sync').innerText()), STEP_MS, 200);

  // Live: more readings show up without a reload (the page polls), and the charts are drawn.
  const M = 60;
  await send(M);
  await waitShown(page, 't-predictions', N + M);
  assert.equal(navigations, 1, 'one page load: the figures came by polling');
  for (const c of ['c-rate', 'c-latency', 'c-labels']) assert.ok(await page.locator(`#${c} canvas`).count() >= 1, `${c} has a canvas`);

  // Only the agent was asked: every request went to 127.0.0.1 (the icon is an inline data: URL).
  const network = requests.filter((u) => !u.startsWith('data:'));
  assert.ok(network.some((u) => u.includes('/assets/uplot.min.js')) && network.some((u) => u.includes('/api/status')), network.join('\n'));
  for (const u of network) assert.equal(new URL(u).hostname, '127.0.0.1', u);
  assert.deepEqual(errors, []);

  if (process.env.EDGE_AGENT_UPDATE_SCREENSHOT === '1') {
    // A few more seconds of traffic so the charts have a shape worth showing.
    for (let i = 0; i < 12; i++) {
      await send(30 + 20 * (i % 3), i % 4 === 0 ? 1 : 0, i < 6 ? [0.05, 0.05, 0.05, 0.05, 0.55] : [0.05, 0.05, 0.55, 0.95]);
      await page.waitForTimeout(700);
    }
    await page.waitForTimeout(2500);
    await page.screenshot({ path: join(repoRoot, 'agent', 'observe', 'status-page.png'), fullPage: true });
  }

  // The agent stops answering: the page says so and keeps the last figures.
  const before = await shown(page, 't-predictions');
  await stopChild(agent);
  await page.locator('#link').filter({ hasText: 'not answering' }).waitFor({ state: 'visible', timeout: STEP_MS });
  assert.match(await page.locator('#link').innerText(), /last received/);
  assert.equal(await shown(page, 't-predictions'), before);
  assert.match((await page.locator('main').getAttribute('class')) ?? '', /stale/);
});

test('with http.token the page asks for Basic auth and takes the token as the password', { timeout: 120_000 }, async (t) => {
  const broker = await startMosquitto(t);
  const dir = tempDir(t);
  const token = 'line3-page-token';
  const agent = spawnAgent(t, writeConfig(dir, agentConfig({ url: broker.url, dbPath: join(dir, 'a.db'), http: { port: 0, token: { env: 'EDGE_TEST_HTTP_TOKEN' } } })), { EDGE_TEST_HTTP_TOKEN: token });
  const url = String((await agent.waitForLog('http listening')).url);
  await agent.waitForLog('agent ready');
  const browser = await launch(t);

  // Without the token: 401 with a Basic challenge (so a browser asks); a headless browser cannot answer it.
  const r401 = await fetch(`${url}/`, { signal: AbortSignal.timeout(STEP_MS) });
  assert.equal(r401.status, 401);
  assert.match(r401.headers.get('www-authenticate') ?? '', /Basic realm="edge-agent"/);
  await refusedInBrowser(await (await browser.newContext()).newPage(), url);
  // A wrong password: the agent answers 401 again.
  await refusedInBrowser(await (await browser.newContext({ httpCredentials: { username: 'operator', password: 'not-the-token' } })).newPage(), url);

  const operator = await browser.newContext({ httpCredentials: { username: 'operator', password: token } });
  const page = await operator.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  assert.equal((await page.goto(`${url}/`, { timeout: STEP_MS }))?.status(), 200);
  // The page's own requests (script, uPlot, /api/status) carry the credentials too.
  await waitShown(page, 't-predictions', 0);
  assert.equal(await page.locator('#ready').textContent(), 'READY');
  assert.ok((await page.locator('#c-rate canvas').count()) >= 1);
  assert.deepEqual(errors, []);
});
