#!/bin/sh
# Discovery speed: html_scanner end to end against gumbo_parse alone (its
# floor) on the golden pages, and css_scan on their CSS concatenated.
# Targets: discovery <= 1.15x gumbo time, CSS >= 200 MB/s.
# Raw output goes to bench/results/parse-<date>.txt; the table in
# bench/README.md between the parse markers is rewritten.
# usage: bench/parse.sh [REPS]   (CC and CFLAGS are honoured)
set -eu
cd "$(dirname "$0")/.."
reps=${1:-25}
cc=${CC:-cc}
exe=$(mktemp /tmp/herald-bench-parse.XXXXXX)
trap 'rm -f "$exe"' EXIT INT TERM
# Built here with -O2 and no sanitizer, whatever the build dirs hold.
# shellcheck disable=SC2086
$cc -std=gnu11 -D_GNU_SOURCE -O2 -DNDEBUG ${CFLAGS:-} -I. -o "$exe" bench/parse.c \
    parser/html.c parser/charset.c parser/asset.c parser/css.c parser/url.c parser/error.c \
    $(pkg-config --cflags --libs gumbo liburiparser) -lm

g=tests/golden
pages="$g/libxslt-home/index.html $g/nodejs-path/index.html $g/swagger-ui/index.html
       $g/valgrind-quickstart/index.html"
css="$g/swagger-ui/swagger-ui.css $g/swagger-ui/index.css $g/nodejs-path/assets/style.css
     $g/nodejs-path/assets/hljs.css $g/valgrind-quickstart/vg_basic.css"
date=$(date -u +%Y-%m-%d)
mkdir -p bench/results
raw=bench/results/parse-$date.txt
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
    echo "# bench/parse.sh $date $(uname -m) $cpu, $(nproc) cores, best of $reps"
    # shellcheck disable=SC2086
    "$exe" --reps "$reps" $pages --css $css
} | tee "$raw"

table=$(awk -v date="$date" -v arch="$(uname -m)" -v cpu="$cpu" '
/^page / {
    n = split($2, p, "/"); name = p[n - 1]
    rows = rows sprintf("| %s | %d | %s | %s | %s |\n", name, $4, $6, $8, $10)
}
/^total / { total = sprintf("| **all pages** | %d | %s | %s | **%s** |\n", $3, $5, $7, $9) }
/^css / { css = sprintf("css_scan on the golden CSS concatenated (%d bytes): **%s MB/s** (target >= 200).\n", $3, $5) }
END {
    printf "Measured %s on %s (%s) by `bench/parse.sh`: thread CPU time, best of N samples of >= 20 ms, discovery and gumbo alternating.\n\n", date, arch, cpu
    printf "| page | bytes | discovery MB/s | gumbo_parse MB/s | time ratio (target <= 1.15) |\n"
    printf "| --- | ---: | ---: | ---: | ---: |\n%s%s\n%s", rows, total, css
    printf "\nDiscovery = html_scanner create/feed/finish (charset sniff, depth pre-pass, gumbo, tree walk, URL resolution, inline CSS); gumbo_parse = the same bytes, same options, parse + destroy only. A tiny page (swagger-ui, 734 bytes) shows the fixed cost per document (a few microseconds: scanner, URL resolution); the target holds on the total.\n"
}' "$raw")

readme=bench/README.md
[ -f "$readme" ] || printf '# herald benchmarks\n' >"$readme"
section=$(printf '<!-- parse:begin -->\n## Discovery speed (bench/parse.sh)\n\n%s\n<!-- parse:end -->' "$table")
tmp=$(mktemp)
# Replace the section where it stands (other scripts own the other sections);
# append it the first time.
awk -v section="$section" '
/<!-- parse:begin -->/ { print section; skip = 1; done = 1; next }
/<!-- parse:end -->/ { skip = 0; next }
!skip { print }
END { if (!done) print "\n" section }
' "$readme" >"$tmp"
cat "$tmp" >"$readme"
rm -f "$tmp"
