#!/usr/bin/env bash
# IMAP FETCH benchmark: see README.md beside this file.
#   bench/imap/run.sh [--smoke] [--messages N] [--size OCTETS] [--runs N]
# --smoke: a debug build, 5 messages, bodies checked, no timing (CI runs this).
# Env: BENCH_TIMEOUT (seconds, default 900), SKIP_BUILD=1, KEEP_WORKDIR=1, TMPDIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done

# The peer: Dovecot's IMAP server.
if ! command -v dovecot >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "Dovecot is missing; install dovecot-core dovecot-imapd as root" >&2
        exit 2
    fi
    install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-core dovecot-imapd; }
    install || { apt-get update && install; } || { dpkg --configure -a && install; }
fi
export PATH="$PATH:/usr/sbin:/sbin"

profile=release
[ "$smoke" = 1 ] && profile=debug
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building sealpost ($profile); may wait for the cargo lock…"
    if [ "$profile" = release ]; then
        cargo build --release --bin sealpost
    else
        cargo build --bin sealpost
    fi
fi
bin="$root/target/$profile/sealpost"
[ -x "$bin" ] || { echo "no $bin" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sealpost-imap-bench.XXXXXX")"
cleanup() {
    status=$?
    # Stop only what the bench started, by pid (bench.py records them).
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

timeout --foreground --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-900}" \
    python3 "$here/bench.py" --binary "$bin" --workdir "$work" "$@"
