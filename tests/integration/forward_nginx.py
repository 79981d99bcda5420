#!/usr/bin/python3
"""The core cases against a real nginx origin, so herald is proven
against a server nobody here wrote: GET, HEAD, POST body (nginx's DAV PUT
writes it to disk, where its sha256 is checked), multiple Set-Cookie,
100 MiB download, and spaced requests across nginx's keep-alive limits."""

import hashlib
import os
import shutil
import subprocess
import time

import harness
from harness import header

NGINX = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else shutil.which("nginx")
T = harness.Tests("forward_nginx", need=["curl", "nghttp"])
if not NGINX:
    T.skip_all("nginx not installed (nginx-light)")

BIG = 100 << 20
D = T.dir
www = os.path.join(D, "www")
shutil.copytree(os.path.join(harness.SRC, "examples", "demo"), www)
os.makedirs(os.path.join(www, "upload"))
import origin as _origin  # noqa: E402  (pattern of /_bytes, reused for the big file)
with open(os.path.join(www, "big.bin"), "wb") as f:
    for b in _origin.pattern(BIG):
        f.write(b)
BIG_SHA = harness.pattern_sha256(BIG)
INDEX = open(os.path.join(www, "index.html"), "rb").read()
port = harness.free_port()
for sub in ("tmp", "logs"):
    os.makedirs(os.path.join(D, sub))
conf = os.path.join(D, "nginx.conf")
with open(conf, "w") as f:
    # As root, nginx's worker would run as nobody, who cannot enter the 0700 temp dir.
    f.write("user root;\n" if os.geteuid() == 0 else "")
    f.write("""
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log %(d)s/logs/access.log;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    keepalive_timeout 1s;
    keepalive_requests 5;
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
        add_header X-Origin-Id nginx-%(pid)d;
        location = /cookies {
            add_header X-Origin-Id nginx-%(pid)d;
            add_header Set-Cookie "a=1; Path=/";
            add_header Set-Cookie "b=2; Path=/; HttpOnly";
            add_header Set-Cookie "c=3; Max-Age=60";
            return 200 "cookies\\n";
        }
        location /upload/ {
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }
    }
}
""" % {"d": D, "port": port, "www": www, "pid": os.getpid()})

ng = T.spawn("nginx", [NGINX, "-p", D, "-c", conf, "-e", os.path.join(D, "logs", "error.log")])
if not harness.wait_listen(port, proc=ng.p):
    print("not ok 1 - setup: nginx did not start: " + ng.stderr_tail())
    T.failed = 1
    T.finish()
OID = "nginx-%d" % os.getpid()


class NginxOrigin:
    id = OID
    probe = "/index.html"


h = T.herald(origin_url="http://127.0.0.1:%d" % port, check=False)
T.check_identity(h, NginxOrigin)


@T.case("GET via h2c (curl, nghttp) and HTTP/1.1")
def _():
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args, h.url + "/index.html")
        T.eq((r.returncode, r.status, r.body), (0, 200, INDEX), args[0])
        T.eq(header(r.headers, "x-origin-id"), [OID], "x-origin-id")
    # --no-push: the curl GET above taught herald the page, and
    # nghttp prints pushed bodies after the page's; this case checks forwarding.
    r = T.run(["nghttp", "--no-push", h.url + "/index.html"])
    T.eq((r.returncode, r.stdout.encode()), (0, INDEX), "nghttp")


@T.case("HEAD via h2c and HTTP/1.1")
def _():
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args + ["-I"], h.url + "/index.html")
        T.eq((r.returncode, r.status, r.body), (0, 200, b""), args[0])
        T.eq(header(r.headers, "content-length"), [str(len(INDEX))], "content-length")


@T.case("PUT body (h2c, and chunked HTTP/1.1) stored by nginx intact")
def _():
    body = os.urandom(3 << 20)
    src = os.path.join(D, "put.bin")
    with open(src, "wb") as f:
        f.write(body)
    want = hashlib.sha256(body).hexdigest()
    for name, args in (("h2.bin", ["--http2-prior-knowledge"]),
                       ("h1.bin", ["--http1.1", "-H", "Transfer-Encoding: chunked"])):
        r = T.curl(args + ["-T", src], h.url + "/upload/" + name)
        T.check(r.status in (201, 204), "%s: PUT status %d" % (name, r.status))
        got = hashlib.sha256(open(os.path.join(www, "upload", name), "rb").read()).hexdigest()
        T.eq(got, want, name + " sha256 on disk")


@T.case("multiple Set-Cookie preserved (h2c and HTTP/1.1)")
def _():
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args, h.url + "/cookies")
        T.eq(r.status, 200, "status")
        T.eq(header(r.headers, "set-cookie"), ["a=1; Path=/", "b=2; Path=/; HttpOnly",
                                               "c=3; Max-Age=60"], "Set-Cookie " + args[0])


@T.case("100 MiB download (h2c) intact")
def _():
    p = subprocess.Popen(["curl", "-sS", "--max-time", "60", "--http2-prior-knowledge",
                          h.url + "/big.bin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    hsh, n = hashlib.sha256(), 0
    while True:
        d = p.stdout.read(1 << 16)
        if not d:
            break
        n += len(d)
        hsh.update(d)
    p.wait()
    T.eq((p.returncode, n, hsh.hexdigest()), (0, BIG, BIG_SHA), "rc, bytes, sha256")


@T.case("requests spaced across nginx keep-alive limits: no 502")
def _():
    bad = []
    for i, gap in enumerate([0.0, 0.1, 0.9, 1.0, 1.05, 0.0, 0.0, 0.0, 1.1, 0.0]):
        time.sleep(gap)
        r = T.curl(["--http2-prior-knowledge"], h.url + "/css/site.css")
        if r.status != 200:
            bad.append((i, gap, r.status))
    T.check(not bad, "failed (i, gap, status): %r" % bad)


T.finish()
