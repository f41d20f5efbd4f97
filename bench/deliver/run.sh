#!/usr/bin/env bash
# Delivery benchmark: see README.md beside this file.
#   bench/deliver/run.sh [--smoke] [--debug] [--messages N] [--size BYTES] [--pool N] [--before BINARY]
# A release build by default; --smoke (20 small messages, correctness only) and
# --debug use the debug build the tests already made.
#   bench/deliver/run.sh --client [--debug] [--messages N] [--size BYTES] [--pool N]
# The SMTP client alone into smtp-sink: one connection per message vs the pool.
# Env: BENCH_TIMEOUT (seconds, default 1200), SKIP_BUILD=1, KEEP_WORKDIR=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
    echo "smtp-sink and smtp-source (Postfix) are missing: install postfix (see .ci/run)" >&2
    exit 2
fi
export PATH="$PATH:/usr/sbin:/sbin"

if [ "${1:-}" = --client ]; then
    shift
    messages=2000 size=10240 pool=10 release=--release
    while [ $# -gt 0 ]; do
        case "$1" in
            --debug) release=""; shift ;;
            --messages) messages="$2"; shift 2 ;;
            --size) size="$2"; shift 2 ;;
            --pool) pool="$2"; shift 2 ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
    done
    sinkdir="$(mktemp -d)"
    chmod 777 "$sinkdir"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    (cd "$sinkdir" && exec smtp-sink -u nobody "127.0.0.1:$port" 256) &
    sink=$!
    trap 'kill "$sink" 2>/dev/null || true; rm -rf "$sinkdir"' EXIT
    SMTP_SINK_PORT="$port" BENCH_MESSAGES="$messages" BENCH_SIZE="$size" BENCH_POOL="$pool" \
        cargo test -p gateway $release --lib bench_connection_per_message_vs_pool -- --ignored --nocapture
    exit
fi

profile=release
args=()
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug ;;
        --smoke) profile=debug; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building sealpost ($profile); may wait for the cargo lock…"
    if [ "$profile" = release ]; then cargo build --release --bin sealpost; else cargo build --bin sealpost; fi
fi
bin="$root/target/$profile/sealpost"
[ -x "$bin" ] || { echo "no $bin" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sealpost-deliver.XXXXXX")"
chmod 755 "$work"
cleanup() {
    status=$?
    # Kill only what the bench started, by pid (bench.py records them).
    if [ -f "$work/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$work/pids"
    fi
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

timeout --foreground --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-1200}" \
    python3 "$here/bench.py" --binary "$bin" --workdir "$work" ${args[@]+"${args[@]}"}
