#!/usr/bin/python3
"""Run tests/unit/learn/fleetredis_test against a real redis-server.

Starts redis-server on a private unix socket in a temporary directory (no
TCP port: --port 0), with appendonly yes; runs the test's phase 1; stops
Redis by its PID (SIGTERM: it writes its append-only file and exits);
starts it again on the same directory and runs phase 2, which checks that
the shared map survived the restart. Exits 77 (skipped) when redis-server
or hiredis (the test binary is then "-") is missing.

Usage: redis_run.py TEST_BINARY|-
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def start(tmp, sock):
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
         "--dir", tmp, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
         "--daemonize", "no", "--loglevel", "warning", "--logfile", os.path.join(tmp, "log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(sock)
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                s.close()
                return proc
            s.close()
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    sys.stderr.write(open(os.path.join(tmp, "log")).read() if os.path.exists(
        os.path.join(tmp, "log")) else "")
    sys.exit("redis-server did not start")


def stop(proc):
    if proc.poll() is None:
        proc.terminate()  # by PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    if binary == "-":
        print("skipped: herald was built without hiredis (apt-get install libhiredis-dev)")
        sys.exit(77)
    if shutil.which("redis-server") is None:
        print("skipped: redis-server missing (apt-get install redis-server)")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="herald-redis-") as tmp:
        sock = os.path.join(tmp, "redis.sock")
        for phase in ("phase1", "phase2"):
            proc = start(tmp, sock)
            try:
                rc = subprocess.run([binary, sock, phase], timeout=100).returncode
            finally:
                stop(proc)
            if rc != 0:
                sys.exit(f"{phase} failed ({rc})")
    sys.exit(0)


if __name__ == "__main__":
    main()
