// Node's http2 client for herald's integration tests.
// usage: node h2client.js URL [METHOD] [BODY_FILE]
// Prints one JSON line: status, headers (raw pairs), informational statuses,
// body length and sha256, body text when small, or error.
'use strict';
const http2 = require('http2');
const fs = require('fs');
const crypto = require('crypto');

const [url, method = 'GET', bodyFile] = process.argv.slice(2);
const u = new URL(url);
const session = http2.connect(u.origin, { rejectUnauthorized: false });
const out = { informational: [] };
const done = (code) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  session.close();
  process.exitCode = code;
};
session.on('error', (e) => { out.error = String(e); done(1); });
// herald may push a learned page's assets: accept and drain them like a
// browser would, so closing the session early does not fault them.
out.pushed = [];
session.on('stream', (s, h) => {
  out.pushed.push(h[':path']);
  s.on('error', () => {});
  s.resume();
});
const req = session.request({ ':method': method, ':path': u.pathname + u.search,
  'x-client': 'node-http2' });
req.on('headers', (h) => out.informational.push(h[':status']));
req.on('response', (h, flags) => {
  out.status = h[':status'];
  out.headers = h;
});
const hash = crypto.createHash('sha256');
const chunks = [];
let len = 0;
req.on('data', (d) => { len += d.length; hash.update(d); if (len <= 65536) chunks.push(d); });
req.on('end', () => {
  out.body_len = len;
  out.body_sha256 = hash.digest('hex');
  if (len <= 65536) out.body = Buffer.concat(chunks).toString('utf8');
  done(0);
});
req.on('error', (e) => { out.error = String(e); done(1); });
if (bodyFile) fs.createReadStream(bodyFile).pipe(req); else req.end();
