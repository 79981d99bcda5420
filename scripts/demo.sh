#!/bin/sh
# Command 1 of the README: build herald, start the demo origin
# (tests/origin.py serving examples/demo), put herald in front of it, and
# visit the page three times over HTTP/2 with nghttp: the first visit
# (`nghttp -ans`, page + assets) teaches herald the page; the second (a new
# connection) shows what herald pushed before the page's HEADERS (the
# PUSH_PROMISE paths and the x-herald header); the third, with --no-push,
# shows the 103 Early Hints Link lines sent instead.
# Exits 0 only if every nghttp run succeeded.
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
    --workers=1 --log-level=warn --x-herald-header=on 2>"$tmp/herald.err" &
herald_pid=$!
if ! wait_port "$port"; then echo "herald did not start:"; cat "$tmp/herald.err"; exit 1; fi

url="http://127.0.0.1:$port/"
status=0
echo "== visit 1: nghttp -ans $url   (page + every asset; herald learns the page)"
echo
nghttp -ans "$url" || status=$?
sleep 0.5 # the visit is committed when its connection closes

echo
echo "== visit 2, new connection: nghttp -nav $url   (what herald pushed)"
nghttp -nav "$url" >"$tmp/visit2.txt" || status=$?
# Promised requests are the header blocks carrying :path the client received.
sed -n 's/^.*recv (stream_id=[0-9]*) x-herald: /   x-herald: /p' "$tmp/visit2.txt" | head -n 1
echo "   pushed (PUSH_PROMISE before the page's HEADERS):"
sed -n 's/^.*recv (stream_id=[0-9]*) :path: /     /p' "$tmp/visit2.txt"

echo
echo "== visit 3, new connection: nghttp -nv --no-push $url   (Early Hints instead)"
nghttp -nv --no-push "$url" >"$tmp/visit3.txt" || status=$?
awk '/recv \(stream_id=[0-9]+\) :status: 103/ { on = 1 }
     on && /recv \(stream_id=[0-9]+\) link: / { sub(/^.*link: /, "   link: "); print }
     on && /recv HEADERS frame/ { exit }' "$tmp/visit3.txt"
echo
if [ $status -eq 0 ]; then
    echo "== done: herald learned the page on visit 1 and delivered it on visits 2 and 3"
else
    echo "== nghttp failed (exit $status); herald's log:"
    tail -n 20 "$tmp/herald.err"
fi
exit $status
