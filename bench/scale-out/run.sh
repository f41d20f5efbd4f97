#!/usr/bin/env bash
# Scale-out benchmark, the object-store half: see README.md beside this file.
#   bench/scale-out/run.sh [--size-mb 2000] [--smoke] [other large-message options]
# Runs bench/large-message (one secure message with a large attachment: ingest,
# sealing, download, SHA-256 check, the server's peak RSS) with the blobs on a
# moto S3 server on loopback instead of local files.
# --smoke: a debug build and a 1 MB attachment, every check, no timing (CI runs this).
# Env: MOTO_SERVER (default /opt/moto-venv/bin/moto_server, else moto_server on PATH),
#      and what bench/large-message/run.sh takes (BENCH_TIMEOUT, SKIP_BUILD, BENCH_BINARY, TMPDIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

moto="${MOTO_SERVER:-/opt/moto-venv/bin/moto_server}"
[ -x "$moto" ] || moto="$(command -v moto_server || true)"
[ -n "$moto" ] || { echo "moto_server is missing: python3 -m venv /opt/moto-venv && /opt/moto-venv/bin/pip install 'moto[server]'" >&2; exit 2; }

size=()
smoke=0
for arg in "$@"; do
    [ "$arg" = --smoke ] && smoke=1
    [ "$arg" = --size-mb ] && size=(x)
done
# 2 GB by default (the issue's figure); --smoke picks its own size.
[ "$smoke" = 1 ] || [ ${#size[@]} -gt 0 ] || set -- --size-mb 2000 "$@"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$moto" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
done
python3 - "$port" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/sealpost-bench", method="PUT")
urllib.request.urlopen(req, timeout=30).read()
PY

export SEALPOST_BLOBS_URL="s3://sealpost-bench/blobs?endpoint=http://127.0.0.1:$port&allow_http=true&region=us-east-1&access_key_id=bench&secret_access_key=bench"
echo "blobs on moto S3 at 127.0.0.1:$port (bucket sealpost-bench)"
"$root/bench/large-message/run.sh" "$@"
# The sealed blobs really are in the bucket.
python3 - "$port" <<'PY'
import re, sys, urllib.request
listing = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/sealpost-bench?list-type=2", timeout=30).read().decode()
keys = re.findall(r"<Key>([^<]+)</Key>", listing)
parts = [k for k in keys if k.startswith("blobs/messages/") and k.endswith("/part-0")]
if not parts:
    sys.exit(f"no attachment blob in the bucket: {keys}")
print(f"bucket holds {len(keys)} objects, the attachment as {parts[0]}")
PY
