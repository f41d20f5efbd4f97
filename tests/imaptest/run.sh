#!/usr/bin/env bash
# Runs Dovecot's imaptest against a real `sealpost serve`: its scripted compliance
# tests, then a bounded stress run, over implicit TLS (imaptest has no STARTTLS).
# Prints the numbers; fails only on a server crash, a hang, or protocol errors the
# stress run reports. Known failures are described in tests/imaptest/README.md.
# Needs: apt dovecot-core dovecot-dev autoconf automake libtool make gcc pkg-config
# libssl-dev (see .ci/run). imaptest is built once into target/imaptest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

imaptest_dir=${IMAPTEST_DIR:-$repo/target/imaptest}
if [ ! -x "$imaptest_dir/src/imaptest" ]; then
  # imaptest's source and build script are kept beside the project, in
  # ../shared/tools/imaptest/ (not part of the project itself).
  tools=${IMAPTEST_TOOLS:-$repo/../shared/tools/imaptest}
  [ -n "${IMAPTEST_TOOLS:-}" ] || [ -x "$tools/build.sh" ] || tools=/work/shared/tools/imaptest
  if [ ! -x "$tools/build.sh" ]; then
    echo "imaptest's source not found: set IMAPTEST_TOOLS to the folder with build.sh and imaptest-2.3.tar.gz" >&2
    exit 1
  fi
  echo "building imaptest into $imaptest_dir"
  "$tools/build.sh" "$imaptest_dir"
fi
imaptest=("$imaptest_dir/src/imaptest")
export LD_LIBRARY_PATH=/usr/lib/dovecot

cargo build --locked --bin sealpost -q
work=$(mktemp -d /tmp/sealpost-imaptest.XXXXXX)
cp "${CARGO_TARGET_DIR:-$repo/target}/debug/sealpost" "$work/sealpost"
server_pid=
# Stops the server this script started (by its pid, never by name): SIGTERM, a
# graceful stop (server.shutdown_grace is 5 s below), then SIGKILL if it is still
# there after 15 s. Runs on every exit, also a failed one or an interrupted one.
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
  server_pid=
  if [ -n "${IMAPTEST_KEEP:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap runs then too.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
relay=$(free_port) submission=$(free_port) portal=$(free_port) imap=$(free_port) imaps=$(free_port)
cat >"$work/sealpost.toml" <<EOF
public_url = "https://localhost:$portal"
data_dir = "$work/data"
[smtp]
relay_listen = "127.0.0.1:$relay"
submission_listen = "127.0.0.1:$submission"
[imap]
listen = "127.0.0.1:$imap"
tls_listen = "127.0.0.1:$imaps"
[portal]
listen = "127.0.0.1:$portal"
[server]
shutdown_grace = 5
EOF
export SEALPOST_CONFIG=$work/sealpost.toml SEALPOST_LOG=warn
sp() { "$work/sealpost" "$@"; }
sp migrate >/dev/null
sp practice add --name "Imaptest Dental" --domain imaptest.example >/dev/null
sp user add --email doc@imaptest.example --name "Dr Test" --role doctor --practice imaptest.example --paid >/dev/null
sp user add --email staff@imaptest.example --name "Staff Test" --role staff --practice imaptest.example >/dev/null
user=staff@imaptest.example
pass=$(sp user app-password --email "$user" --label imaptest | tail -n 1)

# Started directly, not through the sp function: a function in the background runs in
# a subshell, and $! would then be the subshell, not the server the trap must stop.
"$work/sealpost" serve >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $imaps), 1)" 2>/dev/null && break
  sleep 0.1
done

# A few secure messages from the doctor, so the mailbox is not empty.
seeded=5
python3 - "$relay" "$imaps" "$user" "$pass" "$seeded" <<'EOF'
import imaplib, smtplib, ssl, sys, time
from email.message import EmailMessage
relay, imaps, user, password, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for i in range(count):
    m = EmailMessage()
    m["From"] = "Dr Test <doc@imaptest.example>"; m["To"] = user
    m["Subject"] = f"[secure] imaptest seed {i}"
    m.set_content(f"Seed message {i}.\n" * (i + 1))
    m.add_attachment(b"%PDF-1.4 seed" * (i + 1), maintype="application", subtype="pdf", filename=f"seed{i}.pdf")
    with smtplib.SMTP("127.0.0.1", int(relay), timeout=30) as s:
        s.starttls(context=ctx); s.send_message(m)
for _ in range(100):
    c = imaplib.IMAP4_SSL("127.0.0.1", int(imaps), ssl_context=ctx); c.login(user, password)
    n = int(c.status("INBOX", "(MESSAGES)")[1][0].split()[-1].rstrip(b")"))
    c.logout()
    if n >= count: break
    time.sleep(0.2)
else:
    sys.exit(f"only {n} of {count} seed messages were sealed")
print(f"seeded {count} secure messages into {user}'s INBOX")
EOF

alive() { kill -0 "$server_pid" 2>/dev/null; }
status=0
common=(host=127.0.0.1 port="$imaps" ssl=any-cert user="$user" pass="$pass")

echo "== imaptest compliance scripts ($imaptest_dir/src/tests)"
set +e
timeout 180 "${imaptest[@]}" "${common[@]}" test="$imaptest_dir/src/tests" >"$work/compliance.log" 2>&1
rc=$?
set -e
grep -E '^[0-9]+ test groups|^base protocol|^extensions' "$work/compliance.log" || true
if [ $rc = 124 ]; then echo "imaptest compliance run hung (timeout)"; status=1; fi
alive || { echo "sealpost crashed during the compliance run"; status=1; }

echo "== imaptest stress: 4 clients, 20 s, no APPEND/COPY/SEARCH (see README.md)"
set +e
timeout 60 "${imaptest[@]}" "${common[@]}" clients=4 secs=20 msgs=$seeded \
  - list=50 status=50 fetch=100 fetch2=100,30 uidfetch=30 store=50 noop=10 check=10 \
  >"$work/stress.log" 2>&1
rc=$?
set -e
errors=$(grep -c 'Error:' "$work/stress.log" || true)
grep -E 'Logi |^ *[0-9]+ +[0-9]+ ' "$work/stress.log" | tail -n 2 || true
echo "stress errors: $errors (exit $rc)"
if [ $rc = 124 ]; then echo "imaptest stress run hung (timeout)"; status=1; fi
if [ "$errors" != 0 ]; then grep 'Error:' "$work/stress.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -n 20; status=1; fi
alive || { echo "sealpost crashed during the stress run"; status=1; }

if [ $status != 0 ]; then
  echo "--- compliance.log (tail)"; tail -n 40 "$work/compliance.log" | cut -c1-300
  echo "--- serve.log (tail)"; tail -n 40 "$work/serve.log"
fi
exit $status
