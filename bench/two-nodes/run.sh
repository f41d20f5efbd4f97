#!/usr/bin/env bash
# Two nodes against one: see README.md beside this file.
#   bench/two-nodes/run.sh [--messages 1000] [--connections 20] [--rounds 2] [--smoke]
# Relay throughput of secure mail (10 KB, sealed into S3, one notification each into
# Postfix's smtp-sink) with one `sealpost serve` node, then with two nodes sharing one
# PostgreSQL database and one S3 bucket (moto on loopback); msgs/s and the ratio.
# --smoke: a debug build, a few messages spread over both nodes, each notified
# exactly once across the two (no timing; test.sh runs this).
# Env: BENCH_POSTGRES_URL (a PostgreSQL server to make throwaway databases on, e.g.
#      postgres://postgres@127.0.0.1:55432/postgres; without it the bench starts its
#      own cluster with Debian's initdb, as test.sh does), MOTO_SERVER (default
#      /opt/moto-venv/bin/moto_server), BENCH_BINARY (a sealpost binary to use),
#      SKIP_BUILD=1, BENCH_TIMEOUT (default 1200 s), KEEP_WORKDIR=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export PATH="$PATH:/usr/sbin:/sbin"

command -v smtp-sink >/dev/null 2>&1 || { echo "smtp-sink and smtp-source (Postfix) are missing" >&2; exit 2; }
moto="${MOTO_SERVER:-/opt/moto-venv/bin/moto_server}"
[ -x "$moto" ] || moto="$(command -v moto_server || true)"
[ -n "$moto" ] || { echo "moto_server is missing: python3 -m venv /opt/moto-venv && /opt/moto-venv/bin/pip install 'moto[server]'" >&2; exit 2; }
command -v psql >/dev/null 2>&1 || { echo "psql (PostgreSQL client) is missing" >&2; exit 2; }

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done
profile=release
[ "$smoke" = 1 ] && profile=debug
if [ -n "${BENCH_BINARY:-}" ]; then
    bin="$BENCH_BINARY"
else
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        echo "building sealpost ($profile); may wait for the cargo lock…"
        if [ "$profile" = release ]; then cargo build --release --bin sealpost; else cargo build --bin sealpost; fi
    fi
    bin="$root/target/$profile/sealpost"
fi
[ -x "$bin" ] || { echo "no $bin" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sealpost-two-nodes.XXXXXX")"
chmod 755 "$work"
as_pg=()
pg_bin=""
cleanup() {
    status=$?
    # Kill only what the bench started, by pid (bench.py records them).
    if [ -f "$work/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$work/pids"
        sleep 1
        while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$work/pids"
    fi
    # The PostgreSQL cluster this bench started (its own data folder only).
    if [ -n "$pg_bin" ] && [ -f "$work/pg/data/postmaster.pid" ]; then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_url="${BENCH_POSTGRES_URL:-}"
if [ -z "$pg_url" ]; then
    # As test.sh's PostgreSQL half: a throwaway cluster on a free port, fsync off.
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
        echo "PostgreSQL server binaries not found (Debian's postgresql), and no BENCH_POSTGRES_URL" >&2
        exit 2
    fi
    mkdir -p "$work/pg"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$work/pg"
        as_pg=(runuser -u postgres --)
    fi
    pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust >/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$work/pg -c fsync=off -c max_connections=200" \
        start >/dev/null
    pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
fi

timeout --foreground --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-1200}" \
    python3 "$here/bench.py" --binary "$bin" --workdir "$work" --postgres "$pg_url" --moto "$moto" "$@"
