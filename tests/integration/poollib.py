"""Helpers for the origin pool tests: h2load runs, what the origin saw
(its conn_open/conn_close/refused log lines, see tests/origin.py), and
herald's descriptors, CPU time and memory from /proc."""

import os
import re
import time


def h2load(T, url, conns, streams, n=None, duration=None, extra=(), timeout=60):
    """Runs h2load; returns a dict: done, succeeded, failed, errored, s2xx ..
    s5xx (status classes), raw (the output)."""
    argv = ["h2load", "-c", str(conns), "-m", str(streams)]
    argv += ["-n", str(n)] if n is not None else ["-D", str(duration)]
    r = T.run(argv + list(extra) + [url], timeout=timeout)
    out = {"raw": r.stdout + r.stderr, "rc": r.returncode}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", r.stdout)
    if m:
        out.update(total=int(m.group(1)), done=int(m.group(3)), succeeded=int(m.group(4)),
                   failed=int(m.group(5)), errored=int(m.group(6)))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
    if m:
        out.update(s2xx=int(m.group(1)), s3xx=int(m.group(2)), s4xx=int(m.group(3)),
                   s5xx=int(m.group(4)))
    return out


def origin_conns(o):
    """What the origin saw: opened (conn_open lines), peak (most open at
    once), refused (connections beyond --max-conns), open (now)."""
    ev = o.events()
    opened = [e for e in ev if e.get("event") == "conn_open"]
    closes = [e for e in ev if e.get("event") in ("conn_open", "conn_close")]
    return {"opened": len(opened),
            "peak": max([e["open"] for e in opened] or [0]),
            "refused": len([e for e in ev if e.get("event") == "refused"]),
            "open": closes[-1]["open"] if closes else 0}


def fds(pid):
    """Descriptors pid has open now."""
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_s(pid):
    """User + system CPU seconds pid used so far."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(cond, timeout, step=0.05):
    """Polls cond() until it is true (returns True) or timeout (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
