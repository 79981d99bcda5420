#!/usr/bin/python3
"""dist/ files: herald.conf and herald.1 are in sync
with the option table (dist/gen.py --check), herald.conf parses as a config
file, and the systemd unit has the required settings."""

import os

import harness

T = harness.Tests("admin_dist")
DIST = os.path.join(harness.SRC, "dist")


@T.case("dist/herald.conf and dist/herald.1 match the option table")
def _():
    r = T.run([harness.PY, os.path.join(DIST, "gen.py"), harness.herald_bin(), "--check"])
    T.eq(r.returncode, 0, r.stdout + r.stderr)


@T.case("every option of --help is in herald.conf and the man page")
def _():
    import re
    r = T.run([harness.herald_bin(), "--help"])
    names = re.findall(r"^  --([a-z0-9-]+)=VALUE", r.stdout, re.M)
    conf = open(os.path.join(DIST, "herald.conf")).read()
    man = open(os.path.join(DIST, "herald.1")).read()
    for n in names:
        if n != "config":
            T.check("# %s =" % n in conf, "%s missing from herald.conf" % n)
        T.check("\\-\\-%s" % n.replace("-", "\\-") in man, "%s missing from herald.1" % n)


@T.case("herald.conf loads: herald accepts it (uncommented origin added)")
def _():
    p = os.path.join(T.dir, "c.conf")
    with open(p, "w") as f:
        f.write(open(os.path.join(DIST, "herald.conf")).read() + "\norigin = http://127.0.0.1:1\n")
    r = T.run([harness.herald_bin(), "--config=" + p, "--version"])
    T.eq(r.returncode, 0, r.stderr)
    port = harness.free_port()
    pr = T.spawn("herald", [harness.herald_bin(), "--config=" + p,
                            "--listen=127.0.0.1:%d" % port])
    T.check(harness.wait_listen(port, proc=pr.p), "did not start: " + pr.stderr_tail())
    T.eq(pr.stop(), 0, "exit")


@T.case("herald.service: DynamicUser, StateDirectory, ExecReload, hardening")
def _():
    unit = open(os.path.join(DIST, "herald.service")).read()
    for need in ("DynamicUser=yes", "StateDirectory=herald", "ExecReload=/bin/kill -HUP $MAINPID",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "PrivateDevices=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet=\n",
                 "SystemCallFilter=@system-service"):
        T.check(need in unit, "missing %r" % need)


T.finish()
