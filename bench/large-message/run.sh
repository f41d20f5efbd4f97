#!/usr/bin/env bash
# Large-message benchmark: see README.md beside this file.
#   bench/large-message/run.sh [--size-mb N] [--no-nginx] [--strict-rss] [--smoke]
# --smoke: a debug build and a 1 MB attachment, every check, no timing (CI runs this).
# Env: BENCH_TIMEOUT (seconds, default 1200), SKIP_BUILD=1, BENCH_BINARY (a sealpost
#      binary to use instead of building), KEEP_WORKDIR=1,
#      TMPDIR (where the temp dir goes; needs ~4.5x the attachment size free).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# Peers: Postfix's smtp-sink (required), nginx (optional second download peer).
if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "smtp-sink (Postfix) is missing; install postfix as root" >&2
        exit 2
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix; }
    install || { apt-get update && install; } || { dpkg --configure -a && install; }
fi
export PATH="$PATH:/usr/sbin:/sbin"

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done
profile=release
[ "$smoke" = 1 ] && profile=debug
if [ -n "${BENCH_BINARY:-}" ]; then
    bin="$BENCH_BINARY"
else
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        echo "building sealpost ($profile); may wait for the cargo lock…"
        if [ "$profile" = release ]; then
            cargo build --release --bin sealpost
        else
            cargo build --bin sealpost
        fi
    fi
    bin="$root/target/$profile/sealpost"
fi
[ -x "$bin" ] || { echo "no $bin" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sealpost-bench.XXXXXX")"
cleanup() {
    status=$?
    # Kill only what the bench started, by pid (bench.py records them).
    if [ -f "$work/pids" ]; then
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$work/pids"
        sleep 1
        while read -r pid; do
            kill -9 "$pid" 2>/dev/null || true
        done <"$work/pids"
    fi
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

timeout --foreground --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-1200}" \
    python3 "$here/bench.py" --binary "$bin" --workdir "$work" "$@"
