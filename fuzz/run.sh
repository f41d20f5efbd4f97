#!/usr/bin/env bash
# Runs the fuzz targets on stable Rust, without a sanitizer (`-s none`).
# Needs cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`).
#
#   fuzz/run.sh                      every target, 60 s each (a campaign: run longer by hand)
#   fuzz/run.sh --seconds 600 smtp_session
#   fuzz/run.sh --ci                 what CI runs: every target for 30 s with a fixed
#                                    seed (-seed=1), starting from the seeds in the repo
#
# Targets: mime_ingest (store::ingest::fuzz), imap_command (gateway::imap::fuzzing),
# smtp_session (gateway::smtp::fuzzing: command and DATA streams), portal_forms
# (portal::fuzzing: form bodies and query strings through the real router).
# Crashes land in fuzz/artifacts/<target>/ and fail the run; the corpus grows in
# fuzz/corpus/<target>/, seeded from fuzz/seeds/<target>/.
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
[ ${#targets[@]} -gt 0 ] || targets=(mime_ingest imap_command smtp_session portal_forms)
# Start from the main workspace's versions (they build on the project's Rust).
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock

# The targets keep their stores in the temp folder (hundreds of MB in a long run):
# one of our own, removed at the end, also after a crash or an interrupt.
fuzz_tmp=$(mktemp -d /tmp/sealpost-fuzz-run.XXXXXX)
trap 'rm -rf "$fuzz_tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
export TMPDIR=$fuzz_tmp

# One build of every target before the clocks start.
cargo fuzz build -s none

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  if [ -n "$ci" ]; then
    # A fixed seed; the time bound makes the run count depend on the machine
    # (about 8,000 inputs/s for mime_ingest, tens to hundreds for the session
    # targets here). Only the end of libFuzzer's output is shown: the summary,
    # or the crash and its input (pipefail keeps cargo fuzz's exit status).
    echo "== [${SECONDS}s] fuzz $target: 30 s, seed 1"
    cargo fuzz run "$target" -s none "corpus/$target" -- \
      -seed=1 -max_total_time=30 -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 40
  else
    echo "== fuzz $target: $seconds s"
    cargo fuzz run "$target" -s none "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1
  fi
done
