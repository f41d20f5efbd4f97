#!/usr/bin/env bash
# Download-all benchmark: see README.md beside this file.
#   bench/download-all/run.sh [--smoke] [--size BYTES] [--files N] [--verify]
# Env: BENCH_TIMEOUT (seconds, default 1800), SKIP_BUILD=1, KEEP_WORKDIR=1,
#      BENCH_BIN (a built binary; default target/release/sealpost, or
#      target/debug/sealpost with --smoke), TMPDIR (needs ~3x the total size free).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done
profile=release
[ "$smoke" = 1 ] && profile=debug
if [ -z "${BENCH_BIN:-}" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building sealpost ($profile); may wait for the cargo lock…"
    if [ "$profile" = release ]; then cargo build --release --bin sealpost; else cargo build --bin sealpost; fi
fi
bin="${BENCH_BIN:-$root/target/$profile/sealpost}"
[ -x "$bin" ] || { echo "no $bin" >&2; exit 2; }
if [ "$smoke" = 0 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "nginx (the peer) is missing: apt-get install nginx; measuring Sealpost alone" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sealpost-download-all-bench.XXXXXX")"
cleanup() {
    status=$?
    # End only what the bench started, by pid (bench.py records them).
    if [ -f "$work/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$work/pids"
    fi
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

timeout --foreground --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-1800}" \
    python3 "$here/bench.py" --binary "$bin" --workdir "$work" "$@"
