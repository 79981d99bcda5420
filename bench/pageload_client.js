#!/usr/bin/env node
// bench/pageload_client.js: a push-capable HTTP/2 client that loads a page the
// way a browser does, for bench/pageload.
//
//   node pageload_client.js URL [--critical=/a.css,/b.js,...] [--no-push] [--use-hints] [--timeout-ms=N]
//
// One cold connection (TLS, ALPN h2, certificate not checked; or h2c for
// http://), browser-like windows (stream 6 MiB, connection 15 MiB, as
// Chromium) and headers (sec-fetch-mode: navigate ...).  While the HTML
// streams in, new <link rel=stylesheet href>, <script src> and <img src> are
// requested at once (a preload scanner); each CSS body, when complete, is
// scanned for @import and url(), and those are requested.  Nothing is
// requested that was already pushed (PUSH_PROMISE seen for that path); a
// pushed stream counts as arrived when its body ends.  Prints one JSON line:
// times in ms from the moment the page request is sent (connection already
// up): html_headers, html (last byte), each asset's arrival, done = the HTML
// and every critical asset arrived.  --use-hints: on a 103, request its
// Link rel=preload URLs at once (as a browser does; off by default).
'use strict';
const http2 = require('http2');
const { performance } = require('perf_hooks');

const args = process.argv.slice(2);
const url = new URL(args.find(a => !a.startsWith('--')));
const opt = k => { const a = args.find(x => x.startsWith('--' + k + '=')); return a && a.split('=').slice(1).join('='); };
const noPush = args.includes('--no-push');
const useHints = args.includes('--use-hints');
const critical = (opt('critical') || '').split(',').filter(Boolean);
const timeoutMs = +(opt('timeout-ms') || 15000);

const out = { url: url.href, push_enabled: !noPush, assets: {}, pushed: [], requested: [], hints: [] };
const assets = new Map();  // path -> {t, pushed, bytes}
const known = new Set();   // paths requested or promised
let t0 = 0, finished = false, htmlDone = false;
const ms = () => +(performance.now() - t0).toFixed(3);

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 herald-bench';
const common = { 'user-agent': UA, 'accept-encoding': 'gzip, deflate, br', 'accept-language': 'en-US,en;q=0.9' };

const session = http2.connect(url.origin, {
  rejectUnauthorized: false,
  settings: { enablePush: !noPush, initialWindowSize: 6 * 1024 * 1024, maxConcurrentStreams: 100 },
});
session.on('error', e => finish('session error: ' + e.message));
const timer = setTimeout(() => finish('timeout'), timeoutMs);

function finish(err) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (err) out.error = err;
  out.done = (!err && htmlDone && critical.every(p => assets.get(p) && assets.get(p).t != null))
    ? Math.max(out.html, ...critical.map(p => assets.get(p).t)) : null;
  for (const [p, a] of assets) out.assets[p] = a;
  out.pushed_count = out.pushed.length;
  process.stdout.write(JSON.stringify(out) + '\n');
  session.destroy();
  setImmediate(() => process.exit(err ? 1 : 0));
}

function check() {
  if (htmlDone && critical.every(p => assets.get(p) && assets.get(p).t != null)) finish();
}

function kindOf(p) { return /\.css(\?|$)/.test(p) ? 'css' : 'other'; }

function onBody(path, body) {
  if (kindOf(path) === 'css') {
    const s = body.toString('utf8');
    const re = /@import\s+(?:url\()?\s*["']?([^"')\s;]+)["']?\s*\)?|url\(\s*["']?([^"')]+)["']?\s*\)/g;
    let m;
    while ((m = re.exec(s))) fetchAsset(new URL(m[1] || m[2], url.origin + path).pathname);
  }
}

function track(stream, path, pushed) {
  const rec = assets.get(path) || { t: null, pushed, bytes: 0 };
  assets.set(path, rec);
  const chunks = [];
  let status = 0;
  stream.on('response', h => { status = h[':status']; });
  stream.on('push', h => { status = h[':status']; });
  stream.on('data', d => { chunks.push(d); });
  stream.on('end', () => {
    if (rec.t != null) return;  // already arrived the other way
    rec.t = ms(); rec.pushed = pushed; rec.status = status;
    const body = Buffer.concat(chunks); rec.bytes = body.length;
    onBody(path, body);
    check();
  });
  stream.on('error', () => {});
}

function fetchAsset(path) {
  if (known.has(path)) return;
  known.add(path);
  out.requested.push([path, ms()]);
  const s = session.request({ ':path': path, ...common, accept: '*/*', referer: url.href,
                              'sec-fetch-mode': 'no-cors', 'sec-fetch-site': 'same-origin' });
  s.end();
  track(s, path, false);
}

session.on('stream', (stream, headers) => {  // a pushed stream
  const path = headers[':path'];
  out.pushed.push([path, ms()]);
  if (known.has(path) && assets.get(path)) { stream.on('data', () => {}); stream.on('error', () => {}); return; }
  known.add(path);
  track(stream, path, true);
});

session.on('connect', () => {
  session.setLocalWindowSize(15 * 1024 * 1024);
  t0 = performance.now();
  const req = session.request({
    ':path': url.pathname + url.search, ...common,
    accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-site': 'none',
    'sec-fetch-user': '?1', 'upgrade-insecure-requests': '1',
  });
  req.end();
  req.on('headers', h => {
    if (h[':status'] !== 103) return;
    out.hints.push({ t: ms(), link: h.link });
    if (!useHints || !h.link) return;
    for (const l of [].concat(h.link).join(',').split(',')) {
      const m = /<([^>]+)>.*rel="?preload/.exec(l);
      if (m) fetchAsset(new URL(m[1], url.href).pathname);
    }
  });
  req.on('response', h => {
    out.html_headers = ms(); out.status = h[':status'];
    if (h['x-herald']) out.x_herald = h['x-herald'];
  });
  let html = '', scanned = 0, bytes = 0;
  req.setEncoding('utf8');
  req.on('data', d => {
    html += d; bytes += Buffer.byteLength(d);
    // preload scanner: tags complete so far
    const end = html.lastIndexOf('>') + 1;
    if (end <= scanned) return;
    const part = html.slice(scanned, end); scanned = end;
    const re = /<link\b[^>]*\brel=["']?stylesheet["']?[^>]*>|<script\b[^>]*\bsrc=[^>]*>|<img\b[^>]*\bsrc=[^>]*>/gi;
    let m;
    while ((m = re.exec(part))) {
      const u = /\b(?:href|src)=["']?([^"'\s>]+)/i.exec(m[0]);
      if (u) fetchAsset(new URL(u[1], url.href).pathname);
    }
  });
  req.on('end', () => { out.html = ms(); out.html_bytes = bytes; htmlDone = true; check(); });
  req.on('error', e => finish('page error: ' + e.message));
});
