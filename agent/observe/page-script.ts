// Observe, the status page's script (served as /assets/status.js): takes /api/status every 2 s; gives the
// page's figures, tables and uPlot charts. Plain browser JavaScript in a string: the page needs no build step.
// (No backticks or dollar-brace in it: it lives inside a template literal.)

export const PAGE_SCRIPT = String.raw`
// The status page's script: polls /api/status every 2 s and draws it; keeps the last figures when the agent
// stops answering, and says so. Text from the agent is set as text, never as HTML.
'use strict';
(function () {
  var POLL_MS = 2000, TIMEOUT_MS = 5000, KEEP_SEC = 600;
  var COLORS = ['#1a73e8', '#e8710a', '#188038', '#d93025', '#9334e6', '#007b83', '#b06000', '#c5221f', '#3c4043', '#f538a0'];
  var OVER = /^(over|overthreshold|alert|alerting|exceeded|drifting|breached)$/i;
  var history = [];
  var last = null, lastOkAt = 0, failingSince = 0, polls = 0;
  var charts = {};
  var hasUplot = typeof window.uPlot === 'function';

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, kids) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    (kids || []).forEach(function (k) { if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k)); });
    return e;
  }
  function put(id, node) { var p = $(id); p.replaceChildren(node); }
  function na(text) { return el('div', 'na', [text || 'not available']); }
  function num(n, digits) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    if (Number.isInteger(n)) return n.toLocaleString('en-US');
    var d = digits === undefined ? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : Math.abs(n) >= 1 ? 2 : 3) : digits;
    return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  function ms(n) { return num(n, n >= 10 ? 0 : 1); }
  function bytes(n) {
    if (typeof n !== 'number') return '–';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n >= 100 ? 0 : 1) : String(n)) + ' ' + u[i];
  }
  function clock(t) { return t ? new Date(t).toLocaleTimeString('en-GB', { hour12: false }) : '–'; }
  function stamp(t) { if (!t) return 'never'; var d = new Date(t); return d.toLocaleDateString('en-CA') + ' ' + clock(d.getTime()); }
  function duration(sec) {
    if (typeof sec !== 'number') return '–';
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min';
    if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
    return Math.floor(sec / 86400) + ' d ' + Math.floor((sec % 86400) / 3600) + ' h';
  }
  function scalar(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'number') return num(v);
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    return String(v);
  }
  function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
  function flat(o) { return Object.values(o).every(function (x) { return x === null || typeof x !== 'object' || (Array.isArray(x) && x.every(function (y) { return typeof y !== 'object'; })); }); }
  function overIn(o) { return Object.keys(o).some(function (k) { return OVER.test(k) && o[k] === true; }); }

  function table(head, rows, numeric) {
    var t = el('table');
    t.append(el('tr', null, head.map(function (h) { return el('th', null, [h]); })));
    rows.forEach(function (r) {
      var tr = el('tr', r.bad ? 'bad' : null, r.cells.map(function (c, i) { return el('td', numeric && numeric[i] ? 'n' : null, [c]); }));
      t.append(tr);
    });
    return t;
  }

  // Drift and ground truth come from observers whose shape may grow: any object is shown as a table where
  // its members are alike (rows of figures), otherwise as a list of keys, nested. A row flagged over its
  // threshold (over, alert, exceeded: true) is shown in red.
  // An item of a list is named by its model or name (and version) when it has one.
  function rowName(x, i) {
    if (!isObj(x)) return String(i + 1);
    var n = x.model || x.name;
    return typeof n === 'string' ? n + (typeof x.version === 'string' ? '@' + x.version : '') : String(i + 1);
  }
  function generic(v, depth) {
    if (!isObj(v) && !Array.isArray(v)) return document.createTextNode(scalar(v));
    if (depth > 5) return document.createTextNode(JSON.stringify(v));
    var entries = Array.isArray(v) ? v.map(function (x, i) { return [rowName(x, i), x]; }) : Object.entries(v);
    if (!entries.length) return na('none yet');
    if (Array.isArray(v) && v.every(function (x) { return typeof x !== 'object' || x === null; })) return document.createTextNode(v.map(scalar).join(', '));
    if (entries.every(function (e) { return isObj(e[1]) && flat(e[1]); })) {
      var cols = [];
      // A list's items named by model (and version) need not repeat them in columns.
      var named = Array.isArray(v) && entries.every(function (e) { return !/^\d+$/.test(e[0]); });
      entries.forEach(function (e) { Object.keys(e[1]).forEach(function (k) { if (cols.indexOf(k) < 0 && !(named && /^(model|name|version)$/.test(k))) cols.push(k); }); });
      return table([''].concat(cols), entries.map(function (e) {
        return { bad: overIn(e[1]), cells: [e[0]].concat(cols.map(function (c) { var x = e[1][c]; return Array.isArray(x) ? x.map(scalar).join(', ') : scalar(x); })) };
      }), [false].concat(cols.map(function (c) { return entries.some(function (e) { return typeof e[1][c] === 'number'; }); })));
    }
    var dl = el('dl');
    entries.forEach(function (e) {
      var bad = OVER.test(e[0]) && e[1] === true;
      dl.append(el('dt', bad ? 'bad' : null, [e[0]]), el('dd', bad ? 'bad' : null, [generic(e[1], depth + 1)]));
    });
    return dl;
  }

  // Drift (agent/observe/drift.ts DriftStatus): per model version, each feature's PSI against the training
  // baseline, its mean against the baseline's, its share outside the training range; the predicted labels' PSI.
  function driftView(d) {
    if (!d || !d.enabled) return na('drift is off (drift.enabled: false)');
    if (!d.models.length) return na('no predictions yet');
    var box = el('div');
    d.models.forEach(function (m) {
      var head = m.name + '@' + m.version + ': ' + num(m.rows) + ' of ' + num(m.windowRows) + ' rows in the window' +
        (m.rows < d.thresholds.minRows ? ' (judged from ' + num(d.thresholds.minRows) + ')' : '') +
        '; dead letters ' + num(100 * m.deadLetters.share, 1) + ' % of ' + num(m.deadLetters.messages) + ' messages';
      box.append(el('p', m.over.features.length || m.over.predictions ? 'bad' : null, [head]));
      if (!m.available) { box.append(na('no training baseline in this version\'s manifest')); return; }
      var rows = m.features.map(function (f) {
        return { bad: f.over, cells: [f.name, f.psi === null ? '–' : num(f.psi, 3), num(f.mean, 3), num(f.baselineMean, 3), num(100 * f.outOfRangeShare, 1) + ' %'] };
      });
      var p = m.predictions;
      if (p) rows.push({ bad: p.over, cells: ['predicted labels', p.psi === null ? '–' : num(p.psi, 3), '', '', ''] });
      box.append(table(['feature', 'PSI', 'mean', 'training mean', 'outside training range'], rows, [false, true, true, true, true]));
      var shares = function (o) { return Object.keys(o).map(function (k) { return k + ' ' + num(100 * o[k], 0) + ' %'; }).join(', '); };
      if (p) box.append(el('p', 'note', ['labels now: ' + shares(p.shares) + '; in training: ' + shares(p.baseline)]));
      box.append(el('p', 'note', ['PSI warns above ' + d.thresholds.psiWarn + ' and clears below ' + d.thresholds.psiClear + ' (labels: ' + d.thresholds.predictionPsiWarn + ' / ' + d.thresholds.predictionPsiClear + ')']));
    });
    return box;
  }
  // Ground truth (agent/observe/truth.ts TruthStatus): labels joined, rolling accuracy or MAE per model version.
  function truthView(t) {
    if (!t || !t.enabled) return na('no labels topic configured (truth.enabled: false)');
    var c = t.counters;
    var box = el('div');
    box.append(el('p', null, ['labels ' + num(c.received) + ' received, ' + num(c.joined) + ' joined, ' + num(c.unmatched) + ' unmatched, ' + num(c.bad) + ' bad, ' + num(c.pending) + ' waiting']));
    box.append(t.models.length ? table(['model@version', 'joined', 'rolling', 'over the last'], t.models.map(function (m) {
      return { cells: [m.model + '@' + m.version, num(m.joined), m.kind === 'regression' ? 'MAE ' + num(m.mae, 3) : 'accuracy ' + num(100 * m.accuracy, 1) + ' %', num(m.window) + ' labels'] };
    }), [false, true, false, true]) : na('no label joined yet'));
    return box;
  }

  // Payload styles and the data-quality gate (/api/status ingest: one entry per model): the style's state and
  // counts, Sparkplug B nodes, and what the gate did per feature, reason and action.
  function ingestView(list) {
    if (!list || !list.length) return na();
    var box = el('div');
    var sum = function (o) { return Object.keys(o || {}).reduce(function (a, k) { return a + (Number(o[k]) || 0); }, 0); };
    box.append(table(['model', 'style', 'assets', 'held msgs', 'rows made', 'late / dup.', 'unused values', 'rows: passed', 'imputed', 'flagged', 'rejected'], list.map(function (m) {
      var q = m.quality || {};
      var rejected = sum(q.rejected);
      return { bad: rejected > 0, cells: [m.model, m.style, num(m.assets), num(m.held), num(m.rows !== undefined ? m.rows : m.windows),
        m.late !== undefined || m.duplicates !== undefined ? num(m.late || m.outOfOrder || 0) + ' / ' + num(m.duplicates || 0) : '–',
        m.supersededUnused ? num(sum(m.supersededUnused)) : m.unusedSamples !== undefined ? num(m.unusedSamples) : '–',
        num(q.passed), num(q.rowsWithImputed), num(q.rowsWithFlagged), num(rejected)] };
    }), [false, false, true, true, true, false, true, true, true, true, true]));
    var checks = [];
    list.forEach(function (m) {
      var f = (m.quality && m.quality.features) || {};
      Object.keys(f).forEach(function (feature) {
        Object.keys(f[feature] || {}).forEach(function (reason) {
          var a = f[feature][reason] || {};
          if (a.rejected || a.imputed || a.flagged) checks.push({ bad: a.rejected > 0, cells: [m.model, feature, reason, num(a.rejected || 0), num(a.imputed || 0), num(a.flagged || 0)] });
        });
      });
    });
    if (checks.length) box.append(table(['model', 'feature', 'check failed', 'rejected', 'imputed', 'flagged'], checks, [false, false, false, true, true, true]));
    var nodes = [];
    list.forEach(function (m) {
      ((m.sparkplug && m.sparkplug.nodes) || []).forEach(function (n) {
        nodes.push({ bad: !n.online || n.lost > 0, cells: [m.model, n.group + '/' + n.node, n.online ? 'online' : 'offline', scalar(n.bdSeq), num(n.lost), num(n.gaps), num(n.rebirths), (n.devices || []).filter(function (d) { return d.online; }).length + ' / ' + (n.devices || []).length] });
      });
    });
    if (nodes.length) box.append(table(['model', 'Sparkplug B node', 'state', 'bdSeq', 'seq lost', 'gaps', 'rebirths asked', 'devices online'], nodes, [false, false, false, true, true, true, true, false]));
    return box;
  }

  function tile(id, value, sub, state, dataValue) {
    var t = $(id);
    t.classList.remove('bad', 'warn');
    if (state) t.classList.add(state);
    var v = t.querySelector('.v');
    v.textContent = value;
    if (dataValue !== undefined) v.dataset.value = String(dataValue);
    t.querySelector('.s').textContent = sub || '';
  }

  // The history arrives cumulative, one point a second; rates are the differences between points.
  function merge(points) {
    var lastT = history.length ? history[history.length - 1].t : 0;
    points.forEach(function (p) { if (p.t > lastT) history.push(p); });
    if (history.length > KEEP_SEC) history.splice(0, history.length - KEEP_SEC);
  }
  function series() {
    var xs = [], rec = [], pred = [], dead = [], p50 = [], p99 = [], byLabel = {};
    var models = {};
    history.forEach(function (p) { Object.keys(p.labels || {}).forEach(function (m) { Object.keys(p.labels[m]).forEach(function (l) { models[m + '\u0000' + l] = true; }); }); });
    var keys = Object.keys(models).sort();
    var oneModel = new Set(keys.map(function (k) { return k.split('\u0000')[0]; })).size <= 1;
    keys.forEach(function (k) { byLabel[k] = []; });
    for (var i = 1; i < history.length; i++) {
      var a = history[i - 1], b = history[i], dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      xs.push(b.t / 1000);
      rec.push((b.received - a.received) / dt);
      pred.push((b.predictions - a.predictions) / dt);
      dead.push((b.deadLetters - a.deadLetters) / dt);
      p50.push(b.latencyP50Ms);
      p99.push(b.latencyP99Ms);
      keys.forEach(function (k) {
        var m = k.split('\u0000')[0], l = k.split('\u0000')[1];
        var va = ((a.labels || {})[m] || {})[l] || 0, vb = ((b.labels || {})[m] || {})[l] || 0;
        byLabel[k].push((vb - va) / dt);
      });
    }
    return {
      rate: { names: ['received', 'predicted', 'dead letters'], data: [xs, rec, pred, dead] },
      latency: { names: ['p50', 'p99'], data: [xs, p50, p99] },
      labels: stacked(xs, keys.map(function (k) { var p = k.split('\u0000'); return oneModel ? (p[1] || '(value)') : p[0] + ': ' + (p[1] || '(value)'); }), keys.map(function (k) { return byLabel[k]; })),
    };
  }
  // Stacked by label: each series is the sum of itself and those below it, drawn largest first and filled,
  // so the top line is all predictions a second and each band one label's share.
  function stacked(xs, names, rows) {
    var sums = [], acc = xs.map(function () { return 0; });
    rows.forEach(function (r) { acc = acc.map(function (v, i) { return v + r[i]; }); sums.push(acc); });
    return { names: names.slice().reverse(), data: [xs].concat(sums.slice().reverse()), fill: true };
  }
  function draw(id, s) {
    var box = $(id);
    if (!hasUplot) { if (!box.dataset.na) { box.dataset.na = '1'; box.replaceChildren(na('charts not available: uplot is not installed beside the agent')); } return; }
    var width = Math.max(280, box.clientWidth);
    var sig = s.names.join('|') + (s.fill ? '|stacked' : '');
    var c = charts[id];
    if (!c || c.sig !== sig) {
      if (c) c.plot.destroy();
      box.replaceChildren();
      var opts = {
        width: width, height: 200,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
        series: [{ value: function (u, v) { return v === null ? '–' : clock(v * 1000); } }].concat(s.names.map(function (n, i) {
          var color = COLORS[(s.fill ? s.names.length - 1 - i : i) % COLORS.length];
          return { label: n, stroke: color, fill: s.fill ? color + '99' : undefined, width: s.fill ? 1 : 2, points: { show: false } };
        })),
        axes: [{ values: function (u, splits) { return splits.map(function (v) { return clock(v * 1000); }); } }, { size: 56 }],
        legend: { live: false },
      };
      charts[id] = c = { sig: sig, plot: new window.uPlot(opts, s.data, box), width: width };
    } else {
      c.plot.setData(s.data);
      if (Math.abs(c.width - width) > 4) { c.plot.setSize({ width: width, height: 200 }); c.width = width; }
    }
  }

  function render(s) {
    var a = s.agent, r = s.rates;
    $('agent').textContent = a.id + ' · v' + a.version + ' · up ' + duration(a.uptimeSec) + ' · started ' + stamp(Date.parse(a.startedAt));
    var failing = a.checks.filter(function (c) { return !c.ok; });
    var badge = $('ready');
    badge.className = 'badge ' + (a.ready ? 'ok' : 'bad');
    badge.textContent = a.ready ? 'READY' : 'NOT READY: ' + failing.map(function (c) { return c.name; }).join(', ');

    tile('t-rate', num(r.receivedPerSec, 1), num(r.received) + ' received since start');
    var models = Object.keys(s.history.length ? s.history[s.history.length - 1].labels || {} : {});
    tile('t-predictions', num(r.predictions), num(r.predictionsPerSec, 1) + ' / s' + (models.length > 1 ? ' · ' + models.length + ' models' : ''), null, r.predictions);
    tile('t-latency', ms(r.latencyP50Ms) + ' / ' + ms(r.latencyP99Ms) + ' ms', 'event loop p99 ' + num(r.eventLoopDelayP99Ms, 1) + ' ms');
    var reasons = Object.keys(r.rejects || {});
    tile('t-dead', num(r.deadLetters), reasons.length ? reasons.length + ' reason' + (reasons.length > 1 ? 's' : '') : 'none', r.deadLetters ? 'warn' : null, r.deadLetters);
    var backlog = 0, syncErr = false;
    ((s.sync && s.sync.targets) || []).forEach(function (t) { t.kinds.forEach(function (k) { backlog += k.backlog; if (k.lastError) syncErr = true; }); });
    tile('t-backlog', s.sync ? num(backlog) : '–', !s.sync ? 'sync not running yet' : s.sync.targets.length ? s.sync.targets.length + ' target' + (s.sync.targets.length > 1 ? 's' : '') + (syncErr ? ' · last run had errors' : '') : 'no target configured', syncErr ? 'warn' : null);
    var st = s.store, share = st.maxBytes ? st.usedBytes / st.maxBytes : 0;
    tile('t-store', bytes(st.usedBytes), 'of ' + bytes(st.maxBytes) + ' budget (' + num(share * 100, 1) + ' %)' + (st.freeDiskBytes !== null && st.freeDiskBytes !== undefined ? ' · ' + bytes(st.freeDiskBytes) + ' free on disk' : ''), st.full ? 'bad' : share > 0.8 ? 'warn' : null);
    var bar = $('t-store').querySelector('.bar');
    bar.className = 'bar' + (st.full ? ' bad' : share > 0.8 ? ' warn' : '');
    bar.firstElementChild.style.width = Math.min(100, share * 100).toFixed(1) + '%';

    var sr = series();
    draw('c-rate', sr.rate);
    draw('c-latency', sr.latency);
    if (sr.labels.names.length) draw('c-labels', sr.labels);
    else if (!charts['c-labels']) put('c-labels', na('no predictions yet'));

    put('checks', table(['check', 'state'], a.checks.map(function (c) { return { bad: !c.ok, cells: [c.name, c.ok ? 'ok' : c.problem || 'failing'] }; })));

    var lastEvent = {};
    s.events.forEach(function (e) { if (!lastEvent[e.model]) lastEvent[e.model] = e; });
    put('models', table(['model', 'serving', 'previous', 'on disk', 'shadow', 'worker', 'last event'], s.models.map(function (m) {
      var sh = m.shadow, st = m.state || {}, ev = lastEvent[m.name];
      return {
        bad: !m.workerAlive,
        cells: [m.name, m.serving, st.previous || '–', m.versions.join(', ') || '–',
          sh ? sh.version + ' (agrees ' + (sh.compared ? num(100 * sh.agreed / sh.compared, 1) + ' % of ' + num(sh.compared) : 'on none yet') + (sh.dropped ? ', ' + num(sh.dropped) + ' batches skipped' : '') + ')' : '–',
          m.workerAlive ? 'alive' : 'gone',
          ev ? ev.event + ' ' + (ev.version || '') + ' at ' + stamp(ev.at) : '–'],
      };
    })));
    put('events', s.events.length ? table(['time', 'model', 'version', 'event', 'reason'], s.events.slice(0, 20).map(function (e) {
      return { bad: /fail|refused|rolled|rollback/i.test(e.event), cells: [stamp(e.at), e.model, e.version || '–', e.event, e.reason] };
    })) : na('no lifecycle events yet'));

    put('drift', driftView(s.drift));
    put('truth', truthView(s.truth));
    put('ingest', ingestView(s.ingest));
    put('rejects', reasons.length ? table(['reason', 'dead letters'], reasons.sort(function (x, y) { return r.rejects[y] - r.rejects[x]; }).map(function (k) { return { cells: [k, num(r.rejects[k])] }; }), [false, true]) : na('none since start'));

    if (!s.sync) put('sync', na('sync starts once the agent is ready'));
    else if (!s.sync.targets.length) put('sync', na('no sync target configured'));
    else {
      var rows = [];
      s.sync.targets.forEach(function (t) {
        t.kinds.forEach(function (k) {
          rows.push({ bad: !!k.lastError && (!k.lastSuccess || k.lastErrorAt > k.lastSuccess), cells: [t.target, k.kind, num(k.backlog), k.oldestUnsyncedSec === null ? '–' : duration(k.oldestUnsyncedSec), k.lastSuccess ? stamp(Date.parse(k.lastSuccess)) : 'never', k.lastError ? stamp(Date.parse(k.lastErrorAt)) + ': ' + k.lastError : '–'] });
        });
      });
      var box = el('div', null, [table(['target', 'kind', 'backlog', 'oldest', 'last success', 'last error'], rows, [false, false, true, true, false, false])]);
      box.append(el('div', 'mute', ['schedule ' + s.sync.schedule + (s.sync.running ? ' · a run is under way' : '') + ' · last run ' + (s.sync.lastRun ? stamp(Date.parse(s.sync.lastRun.startedAt)) + ' (' + s.sync.lastRun.reason + ')' : 'none yet')]));
      put('sync', box);
    }
    var sd = el('dl');
    [['used', bytes(st.usedBytes) + ' of ' + bytes(st.maxBytes)], ['when full', st.onFull + (st.full ? ' — FULL now' : '')], ['free on disk', bytes(st.freeDiskBytes)],
      ['expired (past age)', num(st.expired)], ['trimmed (synced, for room)', num(st.trimmed)], ['dropped unsynced', num(st.dropped) + (st.gaps ? ' in ' + num(st.gaps) + ' gaps' : '')]]
      .forEach(function (p) { sd.append(el('dt', null, [p[0]]), el('dd', p[0] === 'dropped unsynced' && st.dropped ? 'bad' : null, [p[1]])); });
    put('store', sd);
  }

  function setLink(ok, err) {
    var b = $('link');
    document.querySelector('main').classList.toggle('stale', !ok);
    if (ok) {
      b.hidden = true;
      $('updated').textContent = 'updated ' + clock(lastOkAt) + ' · every ' + POLL_MS / 1000 + ' s from /api/status';
      return;
    }
    b.hidden = false;
    b.textContent = 'The agent is not answering since ' + clock(failingSince) + ' (' + (err && err.message ? err.message : 'no answer') + ')' +
      (last ? '. The figures below are the last received, at ' + clock(lastOkAt) + '.' : '.');
  }

  function poll() {
    polls++;
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    fetch('/api/status?historySec=' + (history.length ? 10 : KEEP_SEC), { cache: 'no-store', signal: ctl.signal })
      .then(function (res) { if (!res.ok) throw new Error('it answered HTTP ' + res.status); return res.json(); })
      .then(function (s) {
        // A restarted agent counts afresh: its history replaces the old one.
        if (last && s.agent.startedAt !== last.agent.startedAt) history = [];
        merge(s.history);
        last = s; lastOkAt = Date.now(); failingSince = 0;
        render(s);
        setLink(true);
      })
      .catch(function (err) {
        if (!failingSince) failingSince = Date.now();
        setLink(false, err.name === 'AbortError' ? new Error('no answer within ' + TIMEOUT_MS / 1000 + ' s') : err);
      })
      .finally(function () { clearTimeout(timer); window.statusPolls = polls; setTimeout(poll, POLL_MS); });
  }
  window.addEventListener('resize', function () { if (last) render(last); });
  poll();
})();
`;
