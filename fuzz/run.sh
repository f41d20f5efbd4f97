#!/usr/bin/env bash
# Runs the fuzz targets on stable Rust, without a sanitizer (`-s none`).
# Needs cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`).
#
#   fuzz/run.sh                      both targets, 60 s each (a campaign: run longer by hand)
#   fuzz/run.sh --seconds 600 mime_ingest
#   fuzz/run.sh --ci                 what CI runs: a fixed seed and a fixed number of
#                                    runs per target, so a pass here is a pass there
#
# Crashes land in fuzz/artifacts/<target>/ and fail the run; the corpus grows in
# fuzz/corpus/<target>/ (mime_ingest is seeded from fuzz/seeds/).
set -euo pipefail
cd "$(dirname "$0")"
seconds=60
ci=
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --ci) ci=1; shift ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(mime_ingest imap_command)
# Start from the main workspace's versions (they build on the project's Rust).
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  [ "$target" = mime_ingest ] && cp -n seeds/* "corpus/$target/" 2>/dev/null || true
  if [ -n "$ci" ]; then
    # mime_ingest runs ~8,000 inputs/s, imap_command (a whole signed-in session
    # per input) ~65/s here: a fixed count keeps each to about half a minute.
    case "$target" in
      mime_ingest) runs=200000 ;;
      imap_command) runs=2000 ;;
      *) runs=10000 ;;
    esac
    echo "== fuzz $target: $runs runs, seed 1"
    # Only the end of libFuzzer's progress lines: the summary, or the crash and
    # its input (pipefail keeps cargo fuzz's exit status).
    cargo fuzz run "$target" -s none "corpus/$target" -- \
      -seed=1 -runs="$runs" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 40
  else
    echo "== fuzz $target: $seconds s"
    cargo fuzz run "$target" -s none "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1
  fi
done
