// Observe, the status page: takes nothing but the uPlot files in node_modules (found at start); gives the
// HTTP routes of one self-contained page (`/`, its script and style, uPlot) that polls /api/status and
// draws it. No front-end build step and no request beyond this agent: no CDN, no web fonts.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';
import type { Reply, Route } from './http.js';
import { PAGE_SCRIPT } from './page-script.js';

// The browser may load only from this agent: the policy enforces what the page promises.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-agent status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/uplot.min.css">
<link rel="stylesheet" href="/assets/status.css">
</head>
<body>
<header>
  <div><h1>edge-agent</h1> <span id="agent">connecting…</span></div>
  <div id="ready" class="badge">…</div>
</header>
<div id="link" class="banner" hidden></div>
<main>
  <section class="tiles">
    <div class="tile" id="t-rate"><div class="k">messages / s</div><div class="v">–</div><div class="s"></div></div>
    <div class="tile" id="t-predictions"><div class="k">predictions</div><div class="v">–</div><div class="s"></div></div>
    <div class="tile" id="t-latency"><div class="k">latency p50 / p99</div><div class="v">–</div><div class="s"></div></div>
    <div class="tile" id="t-dead"><div class="k">dead letters</div><div class="v">–</div><div class="s"></div></div>
    <div class="tile" id="t-backlog"><div class="k">sync backlog</div><div class="v">–</div><div class="s"></div></div>
    <div class="tile" id="t-store"><div class="k">store</div><div class="v">–</div><div class="s"></div><div class="bar"><div></div></div></div>
  </section>
  <section class="charts">
    <div class="panel"><h2>Messages per second</h2><div class="chart" id="c-rate"></div></div>
    <div class="panel"><h2>Latency (ms)</h2><div class="chart" id="c-latency"></div></div>
    <div class="panel"><h2>Predictions per second by label (stacked)</h2><div class="chart" id="c-labels"></div></div>
  </section>
  <section class="grid">
    <div class="panel"><h2>Readiness</h2><div id="checks"></div></div>
    <div class="panel wide"><h2>Models</h2><div id="models"></div></div>
    <div class="panel wide"><h2>Drift and data quality</h2><div id="drift"></div></div>
    <div class="panel"><h2>Ground truth</h2><div id="truth"></div></div>
    <div class="panel wide"><h2>Payload styles and the data-quality gate</h2><div id="ingest"></div></div>
    <div class="panel"><h2>Dead letters by reason</h2><div id="rejects"></div></div>
    <div class="panel wide"><h2>Upstream sync</h2><div id="sync"></div></div>
    <div class="panel"><h2>Store</h2><div id="store"></div></div>
    <div class="panel wide"><h2>Lifecycle events</h2><div id="events"></div></div>
  </section>
</main>
<footer id="updated"></footer>
<script src="/assets/uplot.min.js"></script>
<script src="/assets/status.js"></script>
</body>
</html>
`;

const CSS = `
:root { --ok: #1b7f3b; --bad: #b3261e; --warn: #a15c00; --mute: #5f6368; --line: #dadce0; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #202124; background: var(--bg); }
header { display: flex; justify-content: space-between; align-items: center; padding: 10px 18px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { display: inline; font-size: 18px; margin: 0 8px 0 0; }
#agent { color: var(--mute); }
.badge { font-weight: 700; padding: 4px 12px; border-radius: 4px; color: #fff; background: var(--mute); }
.badge.ok { background: var(--ok); color: #fff; } .badge.bad { background: var(--bad); color: #fff; }
.banner { padding: 8px 18px; background: var(--bad); color: #fff; font-weight: 600; }
main { padding: 12px 18px; }
main.stale { opacity: .55; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(185px, 1fr)); gap: 10px; margin-bottom: 12px; }
.tile, .panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.tile .k { color: var(--mute); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile .v { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile .s { color: var(--mute); font-size: 12px; min-height: 1.4em; }
.tile.bad .v { color: var(--bad); } .tile.warn .v { color: var(--warn); }
.bar { height: 6px; background: var(--line); border-radius: 3px; margin-top: 4px; }
.bar div { height: 6px; background: var(--ok); border-radius: 3px; width: 0; }
.bar.warn div { background: var(--warn); } .bar.bad div { background: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 10px; margin-bottom: 12px; }
.chart { min-height: 200px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 10px; }
.panel.wide { grid-column: span 2; }
@media (max-width: 800px) { .panel.wide { grid-column: auto; } }
h2 { font-size: 13px; margin: 0 0 6px; text-transform: uppercase; letter-spacing: .04em; color: var(--mute); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
td { white-space: nowrap; } td:last-child { white-space: normal; word-break: break-word; }
th { font-weight: 600; color: var(--mute); font-size: 12px; }
td.n { text-align: right; }
tr.bad td, span.bad, td.bad { color: var(--bad); font-weight: 600; }
.ok { color: var(--ok); } .mute { color: var(--mute); }
.na { color: var(--mute); font-style: italic; }
.note { color: var(--mute); font-size: 0.85em; margin: 0.3em 0; }
dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
dt { color: var(--mute); } dd { margin: 0; }
footer { padding: 6px 18px 18px; color: var(--mute); font-size: 12px; }
`;

/** uPlot's files from node_modules (a production dependency, so the packaged tarball has them too). */
function readUplot(): { js: Buffer; css: Buffer } | { problem: string } {
  try {
    const require = createRequire(import.meta.url);
    return { js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')), css: readFileSync(require.resolve('uplot/dist/uPlot.min.css')) };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

/** The page's routes. Without uPlot the page still shows every figure, only the charts are missing (and it says so). */
export function statusPageRoutes(log: Logger): Record<string, Route> {
  const uplot = readUplot();
  if ('problem' in uplot) log.warn({ problem: uplot.problem }, 'status page charts unavailable: uplot not found');
  const file = (type: string, body: string | Buffer | undefined): Route => () =>
    body === undefined ? { status: 404, type: 'text/plain; charset=utf-8', body: 'uplot is not installed beside the agent\n' } : { status: 200, type, body };
  const page: Reply = { status: 200, type: 'text/html; charset=utf-8', body: HTML, headers: { 'Content-Security-Policy': CSP, 'Referrer-Policy': 'no-referrer' } };
  return {
    '/': () => page,
    '/assets/status.js': file('text/javascript; charset=utf-8', PAGE_SCRIPT),
    '/assets/status.css': file('text/css; charset=utf-8', CSS),
    '/assets/uplot.min.js': file('text/javascript; charset=utf-8', 'js' in uplot ? uplot.js : undefined),
    '/assets/uplot.min.css': file('text/css; charset=utf-8', 'css' in uplot ? uplot.css : undefined),
  };
}
