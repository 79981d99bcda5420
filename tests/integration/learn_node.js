// Node's http2 client accepting server push, for tests/integration/learn_node.py.
// usage: node learn_node.js URL [--cancel PATH]... [--cancel-after MS] [--get PATH]...
// Requests URL's page; every pushed stream is read to its end (its bytes
// hashed) unless its path is named by --cancel, in which case it is reset
// with RST_STREAM(CANCEL) MS milliseconds (default 0) after it is promised.  After the page (and its
// pushes), each --get PATH is requested on the same session unless it was
// pushed.  Prints one JSON line: status, headers, pushes [{path, status,
// len, sha256, cancelled, ended}], gets [{path, status, len}].
'use strict';
const http2 = require('http2');
const crypto = require('crypto');

const args = process.argv.slice(2);
const url = new URL(args[0]);
const cancel = new Set();
const gets = [];
let cancelAfter = 0;
for (let i = 1; i < args.length; i += 2) {
  if (args[i] === '--cancel') cancel.add(args[i + 1]);
  else if (args[i] === '--cancel-after') cancelAfter = Number(args[i + 1]);
  else if (args[i] === '--get') gets.push(args[i + 1]);
}
const session = http2.connect(url.origin, { rejectUnauthorized: false, settings: { enablePush: true } });
const out = { pushes: [], gets: [] };
const open = new Set();
let finished = false;
const finish = (code) => {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(out) + '\n');
  session.destroy();
  process.exitCode = code;
};
setTimeout(() => { out.error = 'timeout'; finish(1); }, 20000).unref();
session.on('error', (e) => { out.error = String(e); finish(1); });

session.on('stream', (stream, headers) => {
  const p = { path: headers[':path'], status: null, len: 0, cancelled: false, ended: false,
    t_promise: Date.now() };
  out.pushes.push(p);
  if (cancel.has(p.path)) {
    p.cancelled = true;
    stream.on('data', (d) => { p.len += d.length; });
    stream.on('error', () => {});
    open.add(stream);
    setTimeout(() => {
      p.t_cancel = Date.now();
      stream.close(http2.constants.NGHTTP2_CANCEL, () => { open.delete(stream); check(); });
    }, cancelAfter);
    return;
  }
  open.add(stream);
  const h = crypto.createHash('sha256');
  stream.on('push', (rh) => { p.status = Number(rh[':status']); });
  stream.on('data', (d) => { p.len += d.length; h.update(d); });
  stream.on('end', () => { p.ended = true; p.sha256 = h.digest('hex'); open.delete(stream); check(); });
  stream.on('error', (e) => { p.error = String(e); open.delete(stream); check(); });
  stream.on('close', () => { open.delete(stream); check(); });
});

let pageDone = false;
function check() {
  if (!pageDone || open.size) return;
  pageDone = false; // once
  next(0);
}
function next(i) {
  if (i >= gets.length) return setTimeout(() => finish(0), 100);
  const path = gets[i];
  if (out.pushes.some((p) => p.path === path)) return next(i + 1);
  const g = { path, status: null, len: 0 };
  out.gets.push(g);
  const r = session.request({ ':path': path, referer: url.href, 'sec-fetch-mode': 'no-cors' });
  r.on('response', (h) => { g.status = Number(h[':status']); });
  r.on('data', (d) => { g.len += d.length; });
  r.on('end', () => next(i + 1));
  r.on('error', (e) => { g.error = String(e); next(i + 1); });
  r.end();
}

const req = session.request({ ':path': url.pathname + url.search, accept: 'text/html',
  'sec-fetch-mode': 'navigate' });
req.on('response', (h) => { out.status = Number(h[':status']); out.headers = h; });
let n = 0;
req.on('data', (d) => { n += d.length; });
req.on('end', () => {
  out.body_len = n;
  // pushes promised before the page's end are open by now; give late ones a moment
  setTimeout(() => { pageDone = true; check(); }, 300);
});
req.on('error', (e) => { out.error = String(e); finish(1); });
req.end();
