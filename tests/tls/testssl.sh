#!/usr/bin/env bash
# testssl.sh against a real `sealpost serve` whose certificate Pebble (Let's
# Encrypt's ACME test CA) issued: the portal (HTTPS), SMTP STARTTLS (relay) and
# IMAPS. Fails on any HIGH or CRITICAL finding, read from testssl's --jsonfile
# (not its exit code); prints the MEDIUM and LOW findings that remain.
# Pebble's CA is trusted only here (testssl --add-ca, openssl -CAfile).
# Needs: apt pebble testssl.sh (see .ci/run), openssl, python3.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
domain=mail.sealpost.test

cargo build --locked --bin sealpost -q
work=$(mktemp -d /tmp/sealpost-testssl.XXXXXX)
cp "${CARGO_TARGET_DIR:-$repo/target}/debug/sealpost" "$work/sealpost"
pids=()
cleanup() {
  # Only what this script started, by the ids it got ($! of each process).
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${TESTSSL_KEEP:-}" ]; then echo "files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Pebble's own HTTPS certificate, from a throwaway CA.
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=sealpost testssl pebble server CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout pebble.key -out pebble.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
  openssl x509 -req -in pebble.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out pebble.pem 2>/dev/null
)
acme=$(free_port) mgmt=$(free_port) dns=$(free_port) dns_mgmt=$(free_port) alpn=$(free_port)
http=$(free_port) portal=$(free_port) relay=$(free_port) imaps=$(free_port)
cat >"$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$acme", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$work/pebble.pem", "privateKey": "$work/pebble.key",
  "httpPort": $http, "tlsPort": $alpn,
  "ocspResponderURL": "http://127.0.0.1:$mgmt/ocsp", "externalAccountBindingRequired": false}}
JSON
# Every name resolves to 127.0.0.1 in Pebble's mock DNS.
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns" \
  -management "127.0.0.1:$dns_mgmt" -http01 "" -https01 "" -tlsalpn01 "" >"$work/dns.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$work/pebble.json" \
  -dnsserver "127.0.0.1:$dns" >"$work/pebble.log" 2>&1 &
pids+=($!)
fetch_root() {
  python3 - "$1" "$2" <<'PY'
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(sys.argv[1], context=context, timeout=2) as r:
    sys.stdout.write(r.read().decode())
PY
}
for _ in $(seq 1 100); do
  fetch_root "https://127.0.0.1:$mgmt/roots/0" "$work/ca.pem" >"$work/root.pem" 2>/dev/null && break
  sleep 0.2
done
grep -q "BEGIN CERTIFICATE" "$work/root.pem" || { echo "pebble did not start:"; cat "$work/pebble.log"; exit 1; }

cat >"$work/sealpost.toml" <<TOML
data_dir = "$work/data"
public_url = "https://$domain:$portal"
[smtp]
relay_listen = "127.0.0.1:$relay"
submission_listen = "127.0.0.1:0"
hostname = "$domain"
[imap]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:$imaps"
[portal]
listen = "127.0.0.1:$portal"
[tls]
acme_domains = ["$domain"]
acme_directory = "https://127.0.0.1:$acme/dir"
acme_ca = "$work/ca.pem"
acme_contact = ["mailto:it@sealpost.test"]
acme_http_listen = "127.0.0.1:$http"
TOML
SEALPOST_LOG=info "$work/sealpost" serve --config "$work/sealpost.toml" >"$work/serve.log" 2>&1 &
pids+=($!)

# Wait until each listener serves a chain that verifies against Pebble's root.
served_ok() {
  openssl s_client -connect "127.0.0.1:$1" -servername "$domain" -verify_hostname "$domain" \
    -CAfile "$work/root.pem" ${2:+-starttls $2} </dev/null 2>/dev/null | grep -q "Verify return code: 0 (ok)"
}
for target in "$portal" "$relay smtp" "$imaps"; do
  for i in $(seq 1 300); do
    # shellcheck disable=SC2086
    served_ok $target && break
    [ "$i" = 300 ] && { echo "no Pebble-issued certificate on $target"; cat "$work/serve.log" "$work/pebble.log"; exit 1; }
    sleep 0.2
  done
done
echo "Pebble issued the certificate; portal, SMTP STARTTLS and IMAPS serve it."

failed=0
run_testssl() {
  local name=$1; shift
  echo "== testssl.sh -p -s -S -P: $name"
  testssl --quiet --color 0 --nodns none --ip 127.0.0.1 --add-ca "$work/root.pem" \
    --warnings off --jsonfile "$work/$name.json" -p -s -S -P "$@" >"$work/$name.txt" 2>&1 || true
  python3 - "$work/$name.json" "$name" <<'PY' || failed=1
import json, sys
findings = json.load(open(sys.argv[1]))
bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
rest = [f for f in findings if f.get("severity") in ("MEDIUM", "LOW")]
for f in bad + rest:
    print(f"  {f['severity']:8} {f['id']}: {f['finding']}")
print(f"  {sys.argv[2]}: {len(bad)} HIGH/CRITICAL, {len(rest)} MEDIUM/LOW of {len(findings)} findings")
sys.exit(1 if bad or not findings else 0)
PY
}
run_testssl portal "$domain:$portal"
run_testssl smtp -t smtp "$domain:$relay"
run_testssl imaps "$domain:$imaps"
if [ "$failed" != 0 ]; then
  echo "testssl.sh found HIGH or CRITICAL problems (above); full output in $work (TESTSSL_KEEP=1 keeps it)"
  exit 1
fi
echo "testssl.sh: no HIGH or CRITICAL finding on the portal, SMTP STARTTLS and IMAPS"
