#!/bin/sh
# ThreadSanitizer run, by hand (not part of scripts/test.sh: the build and the
# run take about as long as the rest of the suite together). Builds
# build-tsan, runs the unit and integration suites with every herald on two
# workers (HERALD_WORKERS=2, so workers really share the map, the counters and
# the logs), and ends with the races ThreadSanitizer reported, one summary
# line each; exit status 1 when there is any (or a test failed).
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

sh scripts/deps.sh test || exit 1
if [ ! -f build-tsan/build.ninja ]; then
    CC=cc meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false \
        -Dbuildtype=debugoptimized >build-tsan.setup.log 2>&1 ||
        { cat build-tsan.setup.log >&2; exit 1; }
fi
ninja -C build-tsan >build-tsan.ninja.log 2>&1 || { tail -n 60 build-tsan.ninja.log >&2; exit 1; }

reports="$top/build-tsan/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
# Reports go to files (one per process), so a race in a herald that a test
# stops with SIGTERM is not lost in its stderr. No suppressions are needed:
# libuv, nghttp2 and OpenSSL raised no report in these runs.
TSAN_OPTIONS="log_path=$reports/tsan second_deadlock_stack=1" \
HERALD_WORKERS=2 meson test -C build-tsan --print-errorlogs --timeout-multiplier=3 \
    --suite=unit --suite=integration >&2
status=$?

n=$(cat "$reports"/tsan* 2>/dev/null | grep -c '^SUMMARY: ThreadSanitizer')
echo "ThreadSanitizer: $n report(s) in $reports" >&2
cat "$reports"/tsan* 2>/dev/null | grep '^SUMMARY: ThreadSanitizer' | sort | uniq -c | sort -rn >&2
[ "$n" -eq 0 ] || status=1
exit $status
