#!/usr/bin/python3
"""Regenerate dist/herald.conf and dist/herald.1 from the option table of a
built herald (`herald --print-config`, `herald --help`), so both stay in
sync with proxy/options.c. Usage: dist/gen.py BUILD/proxy/herald [--check]
(--check: exit 1 when the committed files differ)."""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def roff(s):
    return s.replace("\\", "\\e").replace("-", "\\-").replace("'", "\\(aq")


def man(help_text):
    opts = re.findall(r"^  --([a-z0-9-]+)=VALUE\n      (.*)\n      default: (.*)$", help_text, re.M)
    out = [r'.TH HERALD 1 "" "herald 0.1.0" "User Commands"',
           ".SH NAME", r"herald \- HTTP/2 reverse proxy that learns and pushes page assets",
           ".SH SYNOPSIS",
           r".B herald \-\-origin=http://HOST:PORT",
           r"[\fB\-\-listen=\fIADDR:PORT\fR[\fB,tls\fR|\fB,h2c\fR]]... [\fIoptions\fR]",
           ".SH DESCRIPTION",
           "herald sits in front of a legacy HTTP/1.1 origin and serves clients over HTTP/2 "
           "(TLS with ALPN, or cleartext with prior knowledge) and HTTP/1.1. It learns which "
           "assets each page needs and delivers them on later visits by HTTP/2 server push "
           "or 103 Early Hints.",
           ".PP",
           "Every option may be given as a flag or as a "
           r"\fIname = value\fR line in the file named by \fB\-\-config\fR "
           r"(\fB#\fR starts a comment); flags override the file. Booleans take on|off; "
           "durations are seconds and may be fractional; sizes take k/m/g suffixes.",
           ".SH OPTIONS"]
    for name, help_, default in opts:
        out += [".TP", r"\fB\-\-%s\fR=\fIVALUE\fR" % roff(name),
                "%s (default: %s)" % (roff(help_), roff(default))]
    out += [".TP", r"\fB\-\-help\fR", "print the options with their defaults",
            ".TP", r"\fB\-\-version\fR", "print the version",
            ".TP", r"\fB\-\-print\-config\fR",
            "print a config file with every option commented out at its default",
            ".SH ADMIN API",
            r"With \fB\-\-admin\fR=\fIADDR:PORT\fR herald serves HTTP/1.1 on that address "
            "(loopback only unless a token is set; with a token every request but GET / "
            r"needs \fIAuthorization: Bearer TOKEN\fR). Page keys and asset URLs are "
            "percent-encoded query parameters.",
            ".TP", "GET /maps?offset=&limit=&q=", "learned pages (JSON)",
            ".TP", "GET /maps/page?page=KEY[&format=link]",
            "one page and its edges (JSON), or its plan as Link header lines",
            ".TP", "POST /maps/pin?page=KEY&asset=URL, POST /maps/ban?page=KEY&asset=URL",
            "pin an asset into the plan, or ban it forever (both persist)",
            ".TP", "DELETE /maps/page?page=KEY[&asset=URL]", "forget a page or one edge",
            ".TP", "GET /export, POST /import?mode=merge|replace",
            "the whole map as the versioned JSON snapshot document",
            ".TP", "GET /stats, GET /metrics, GET /healthz",
            "counters as JSON, Prometheus text; 200 while the origin accepts connections, "
            "else 503",
            ".TP", "GET /", "an HTML page listing pages and assets with pin/ban/forget buttons",
            ".SH SIGNALS",
            ".TP", "SIGTERM, SIGINT",
            r"stop accepting, drain for up to \fB\-\-drain\-timeout\fR seconds, save "
            r"\fB\-\-state\fR, exit 0; a second signal exits at once",
            ".TP", "SIGHUP",
            "re-read the config file and flags; apply log level, access log, timeouts, "
            "learning and push/hint settings and budgets, admin token, TLS certificate and key "
            "without dropping connections; log the options that need a restart (origin, "
            "listen, workers, max-pages, max-assets-per-page, admin, state, state-interval)",
            ".TP", "SIGUSR1", "reopen the access log (logrotate)",
            ".SH FILES",
            ".TP", r"\fB\-\-state\fR file",
            "the learned map, pins and bans as versioned JSON; written every "
            r"\fB\-\-state\-interval\fR seconds when changed and at shutdown (temp file, "
            "fsync, rename); a corrupt, truncated or future-version file is renamed "
            r"\fIFILE\fR.corrupt\-\fITIME\fR and herald starts empty",
            ".SH EXIT STATUS",
            "0 after a drain; 1 on a start-up failure (cannot listen, TLS); 2 on a bad option, "
            "config line, or a non-loopback --admin without a token.",
            ".SH SEE ALSO", r"\fBnghttp\fR(1), \fBsystemd.exec\fR(5)", ""]
    return "\n".join(out)


def main():
    herald = sys.argv[1]
    check = "--check" in sys.argv
    conf = subprocess.run([herald, "--print-config"], capture_output=True, text=True,
                          check=True).stdout
    help_text = subprocess.run([herald, "--help"], capture_output=True, text=True,
                               check=True).stdout
    want = {"herald.conf": conf, "herald.1": man(help_text)}
    bad = 0
    for name, text in want.items():
        path = os.path.join(HERE, name)
        if check:
            with open(path) as f:
                if f.read() != text:
                    print("%s is out of date: run dist/gen.py %s" % (path, herald))
                    bad = 1
        else:
            with open(path, "w") as f:
                f.write(text)
    sys.exit(bad)


if __name__ == "__main__":
    main()
