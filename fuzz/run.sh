#!/usr/bin/env bash
# Runs the MIME ingest fuzz target for N seconds (default 60) on stable Rust,
# without a sanitizer (`-s none`). Needs `cargo install cargo-fuzz`.
# Usage: fuzz/run.sh [seconds]
# Crashes land in fuzz/artifacts/mime_ingest/; the corpus grows in
# fuzz/corpus/mime_ingest/ (seeded from fuzz/seeds/).
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
# Start from the main workspace's versions (they build on the project's Rust).
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock
mkdir -p corpus/mime_ingest
cp -n seeds/* corpus/mime_ingest/ 2>/dev/null || true
exec cargo fuzz run mime_ingest -s none corpus/mime_ingest -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=1024
