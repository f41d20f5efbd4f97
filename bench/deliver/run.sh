#!/usr/bin/env bash
# Delivery benchmark: see README.md beside this file.
#   bench/deliver/run.sh [--smoke] [--debug] [--messages N] [--size BYTES] [--pool N] [--before BINARY]
# A release build by default; --smoke (20 small messages, correctness only) and
# --debug use the debug build the tests already made.
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
