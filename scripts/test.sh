#!/bin/sh
# Command 2 of the README: install what is missing, build, run the whole suite
# (unit, golden, integration; again under ASan/UBSan; short libFuzzer runs)
# and end with one line "N passed, N failed, N skipped".
# Under CI=true a skipped test fails the run: CI installs every tool.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

sh scripts/deps.sh test || exit 1

status=0
builds=""
run_build() { # dir, meson test args..., -- setup args...
    dir=$1; shift
    setup=""
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do setup="$setup $1"; shift; done
    [ $# -gt 0 ] && shift
    echo "== $dir: build" >&2
    if [ ! -f "$dir/build.ninja" ]; then
        # shellcheck disable=SC2086
        cc=cc; [ "$dir" = build-fuzz ] && cc=clang
        CC=$cc meson setup "$dir" $setup >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; status=1; return; }
    fi
    ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { tail -n 60 "$dir.ninja.log" >&2; status=1; return; }
    echo "== $dir: test" >&2
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs "$@" >&2 || status=1
    builds="$builds $dir"
}

run_build build -Dwerror=true --
run_build build-san -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -- \
    --timeout-multiplier=3 --no-suite=slow
if command -v clang >/dev/null 2>&1; then
    run_build build-fuzz -Dfuzz=true -Db_sanitize=address -Db_lundef=false \
        -Dbuildtype=debugoptimized -- --suite=fuzz
else
    echo "clang missing: fuzz targets not built" >&2
    status=1
fi

/usr/bin/python3 - "$top" $builds <<'PY' || status=1
import json, os, sys
top, builds = sys.argv[1], sys.argv[2:]
p = f = s = 0
for b in builds:
    path = os.path.join(top, b, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif r == "SKIP":
            s += 1
        else:
            f += 1
print(f"{p} passed, {f} failed, {s} skipped")
ci = os.environ.get("CI", "") == "true"
sys.exit(1 if f or (ci and s) or p == 0 else 0)
PY
exit $status
