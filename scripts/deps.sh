#!/bin/sh
# Install the Debian 12 packages herald needs, and nothing when all are there.
# Usage: scripts/deps.sh [build|test|bench|demo|learning]...   (default: build)
# Idempotent; quiet when everything is present; needs root only to install.
set -eu

build="meson ninja-build pkg-config gcc libc6-dev libuv1-dev libnghttp2-dev libssl-dev
libgumbo-dev liburiparser-dev zlib1g-dev libbrotli-dev libjansson-dev node-llhttp"
test="clang libclang-rt-14-dev nghttp2-client curl nodejs python3 python3-h2
nginx-light openssl procps util-linux chromium chromium-driver python3-websocket
python3-selenium"
bench="nghttp2-proxy nghttp2-client h2o nginx-light util-linux procps python3-matplotlib"
demo="nghttp2-client python3 openssl curl"
# bench/learning: real web applications behind herald.  php8.2-fpm comes
# first so that apt meets wordpress's "libapache2-mod-php | php" with FPM.
learning="php8.2-fpm php-fpm php php-mysql php-gd mariadb-server wordpress
wordpress-theme-twentytwentythree phpmyadmin roundcube roundcube-sqlite3 gitweb
fcgiwrap spawn-fcgi git nodejs-doc sphinx-doc nginx-light nghttp2-client openssl
chromium chromium-driver python3-selenium"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case "$group" in
    build) want="$want $build" ;;
    test) want="$want $build $test" ;;
    bench) want="$want $build $bench" ;;
    demo) want="$want $build $demo" ;;
    learning) want="$want $build $learning" ;;
    *) echo "deps.sh: unknown group '$group' (build|test|bench|demo|learning)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    # nodejs may come from elsewhere than Debian; a working node >= 18 is enough.
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1 &&
        [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge 18 ]; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# phpmyadmin and roundcube would otherwise create their databases through
# dbconfig-common; bench/learning runs them on private databases of its own.
if command -v debconf-set-selections >/dev/null 2>&1; then
    debconf-set-selections <<'EOF'
phpmyadmin phpmyadmin/dbconfig-install boolean false
phpmyadmin phpmyadmin/reconfigure-webserver multiselect
roundcube-core roundcube/dbconfig-install boolean false
EOF
fi
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts these services on install; herald's tests and benches run
# their own, privately.
for svc in nginx h2o mariadb php8.2-fpm fcgiwrap; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
