"""Shared helpers of bench/scrape, bench/memory and bench/soak: processes
started here and stopped by PID, free ports, an nginx origin, herald's
admin /stats, /proc readings, percentiles and the README sections.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
procs = []  # Popen objects we started, stopped by PID on exit


def die(msg, name="bench"):
    print("%s: %s" % (name, msg), file=sys.stderr, flush=True)
    cleanup()
    sys.exit(2)


def cleanup(*_):
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in procs:
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    procs.clear()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def install_signals():
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)


def raise_priority():
    """nice -10 for the bench and everything it starts when allowed (root):
    other work on the box then takes less of the CPUs measured."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass


def priority():
    return "nice %d" % os.getpriority(os.PRIO_PROCESS, 0)


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            die("%s is not installed (sh scripts/deps.sh bench)" % t)


def herald_bin(arg=None):
    for b in (arg, os.environ.get("HERALD_BIN"),
              os.path.join(ROOT, "build-bench", "proxy", "herald"),
              os.path.join(ROOT, "build", "proxy", "herald")):
        if b and os.path.exists(b):
            return os.path.abspath(b)
    die("no herald binary: build it (meson setup build && ninja -C build) or pass its path")


def free_ports(k):
    """k distinct free loopback ports (bound at once: no port handed out twice)."""
    socks = []
    for _ in range(k):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def spawn(cmd, logfile, name, env=None):
    f = open(logfile, "w")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env)
    p.name = name
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=15):
    """Stops one process we started; returns its exit status."""
    if p.poll() is None:
        os.kill(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    if p in procs:
        procs.remove(p)
    return p.returncode


def wait_port(port, proc, name, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            die("%s exited with status %s while starting" % (name, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    die("%s did not listen on port %d within %ds" % (name, port, timeout))


def nginx_origin(tmp, port, extra_locations=""):
    """nginx (one worker) on port serving tmp/www, plus extra location blocks."""
    os.makedirs(os.path.join(tmp, "www"), exist_ok=True)
    os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
worker_processes 1;
pid %(t)s/nginx.pid;
error_log %(t)s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    sendfile on;
    client_body_temp_path %(t)s/body;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fastcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    types { text/html html; text/css css; application/octet-stream bin; }
    server {
        listen 127.0.0.1:%(p)d;
        root %(t)s/www;
%(x)s
    }
}
""" % {"t": tmp, "p": port, "x": extra_locations})
    cmd = ["nginx", "-p", tmp + "/", "-c", conf]
    p = spawn(cmd, os.path.join(tmp, "nginx.out"), "nginx")
    wait_port(port, p, "nginx")
    return p, cmd


def stats(admin_port, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin_port, timeout=timeout) as r:
        return json.loads(r.read())


def wait_idle(admin_port, timeout=120):
    """Waits until herald counts no client connection (admin /stats)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stats(admin_port)["active_connections"] == 0:
            return True
        time.sleep(0.05)
    return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def pct(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def herald_version(binary):
    """The git tree the binary's build directory belongs to, and when it was built."""
    src = os.path.dirname(os.path.dirname(os.path.dirname(binary)))  # SRC/BUILD/proxy/herald
    tree = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(binary)))
    return "tree %s, binary built %s" % (tree, built)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, Linux %s" % (model, os.cpu_count(), os.uname().release)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_section(name, text):
    """Replaces the <!-- name:begin --> ... <!-- name:end --> section of
    bench/README.md (appended when missing)."""
    begin, end = "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name
    path = os.path.join(ROOT, "bench", "README.md")
    with open(path) as f:
        doc = f.read()
    block = "%s\n%s\n%s" % (begin, text.strip(), end)
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)
