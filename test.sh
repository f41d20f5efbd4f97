#!/usr/bin/env bash
# The test command: the whole suite on SQLite, then the end-to-end suite again on
# a throwaway PostgreSQL cluster (needs Debian's postgresql package: see .ci/run).
# The browser tests need Debian's chromium and Node.js (npm ci below).
set -euo pipefail
cd "$(dirname "$0")"
# Each step is printed with the seconds since the start, so a CI log shows where
# the time went.
step() { echo "== [${SECONDS}s] $*"; }

step "Outlook add-in: manifest schema validation and script tests"
addin-manifest/validate.sh
node --test addin-manifest/test/*.test.js
# The browser tests drive Chromium through playwright-core (no browser download)
# and check every page with axe-core.
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  step "npm ci in tests/browser"
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

# clippy.toml's disallowed-methods (time comes from a store::Clock; no thread::sleep).
# Only that lint fails the build here: pedantic warnings stay advice. Check builds
# (metadata only) can't reuse the test build below; about 3 min of CPU cold, seconds warm.
step "clippy: disallowed methods"
cargo clippy --workspace --all-targets --locked -- -A clippy::all -A clippy::pedantic -D clippy::disallowed_methods

# The peak_rss_ tests measure this process's peak memory, so they run apart and
# one at a time: any test beside them would add its own allocations.
step "unit and end-to-end tests (SQLite)"
cargo test --workspace --locked -- --skip peak_rss_
step "peak memory tests (SQLite), one at a time"
cargo test --locked --test e2e peak_rss_ -- --test-threads=1

step "imaptest: compliance scripts and a bounded stress run against sealpost serve"
tests/imaptest/run.sh

step "benches: every bench/*/run.sh --smoke (debug build, tiny sizes, correctness only, no timing)"
for bench in bench/*/run.sh; do
  echo "-- $bench --smoke"
  "$bench" --smoke
done

step "testssl.sh: portal, SMTP STARTTLS and IMAPS with a Pebble-issued certificate (no HIGH or CRITICAL)"
tests/tls/testssl.sh

step "Debian package: build (from the debug binary), dpkg -i, /healthz from the unit's ExecStart, purge"
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "cargo-deb not found: cargo install cargo-deb --version 3.8.0 --locked (see .ci/run)" >&2
  exit 1
fi
packaging/deb-check.sh

step "fuzzing: MIME ingest, IMAP commands, SMTP sessions, portal forms: 30 s each, fixed seed (fuzz/run.sh --ci)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz not found: cargo install cargo-fuzz --version 0.13.2 --locked (see .ci/run)" >&2
  exit 1
fi
fuzz/run.sh --ci

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "PostgreSQL server binaries not found: install Debian's postgresql package (see .ci/run)" >&2
  exit 1
fi

# The cluster lives in memory when /dev/shm can hold it (fsync is off anyway):
# removing a gigabyte of test databases from this disk took over 3 minutes.
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 4194304 ]; then
  pg_dir=$(mktemp -d /dev/shm/sealpost-pg.XXXXXX)
else
  pg_dir=$(mktemp -d /tmp/sealpost-pg.XXXXXX)
fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c fsync=off" start >/dev/null

# The browser tests (browser_*) check how pages look and read (Chromium and axe);
# they ran on SQLite above, and the routes behind them have PostgreSQL tests of
# their own here, so this half leaves them out (a few minutes of CI).
step "end-to-end tests (PostgreSQL on 127.0.0.1:$pg_port), without the browser tests"
export SEALPOST_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
cargo test --locked --test e2e -- --skip peak_rss_ --skip browser_
cargo test --locked --test e2e peak_rss_ -- --test-threads=1
step "done"
