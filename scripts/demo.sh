#!/bin/sh
# Command 1 of the README (until learning exists): build herald, start the
# demo origin (tests/origin.py serving examples/demo), put herald in front of
# it, and fetch the page and its assets over HTTP/2 with `nghttp -ans`.
# Exits 0 only if nghttp succeeded.
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3

sh scripts/deps.sh demo

echo "== building herald"
[ -f build/build.ninja ] || meson setup build >build.setup.log 2>&1 || { cat build.setup.log; exit 1; }
ninja -C build >build.ninja.log 2>&1 || { tail -n 40 build.ninja.log; exit 1; }

tmp=$(mktemp -d)
origin_pid=""
herald_pid=""
cleanup() {
    rc=$?
    set +e
    if [ -n "$herald_pid" ]; then kill "$herald_pid" 2>/dev/null; wait "$herald_pid" 2>/dev/null; fi
    if [ -n "$origin_pid" ]; then kill "$origin_pid" 2>/dev/null; wait "$origin_pid" 2>/dev/null; fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
    $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port: up to 5 s
    $PY - "$1" <<'PY'
import socket, sys, time
end = time.time() + 5
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

echo "== starting the demo origin (HTTP/1.1, examples/demo, 50 ms think time for pages)"
$PY tests/origin.py --root examples/demo --id demo --think '/=50' --think '/item/*=50' \
    >"$tmp/origin.out" 2>"$tmp/origin.err" &
origin_pid=$!
i=0
until grep -q '^PORT ' "$tmp/origin.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "origin did not start:"; cat "$tmp/origin.err"; exit 1; fi
    sleep 0.05
done
origin_port=$(sed -n 's/^PORT //p' "$tmp/origin.out")
echo "   origin on http://127.0.0.1:$origin_port"

port=$(free_port)
echo "== starting herald on http://127.0.0.1:$port (HTTP/2 and HTTP/1.1, cleartext)"
./build/proxy/herald --origin="http://127.0.0.1:$origin_port" --listen="127.0.0.1:$port" \
    --workers=1 --log-level=warn 2>"$tmp/herald.err" &
herald_pid=$!
if ! wait_port "$port"; then echo "herald did not start:"; cat "$tmp/herald.err"; exit 1; fi

echo "== nghttp -ans http://127.0.0.1:$port/   (page + every asset, over HTTP/2)"
echo
status=0
nghttp -ans "http://127.0.0.1:$port/" || status=$?
echo
if [ $status -eq 0 ]; then
    echo "== done: the page and its assets were served over HTTP/2 by herald"
else
    echo "== nghttp failed (exit $status); herald's log:"
    tail -n 20 "$tmp/herald.err"
fi
exit $status
