#!/usr/bin/env bash
# Builds the Debian package, installs it on this machine, runs the installed unit's
# ExecStart as the sealpost user with the packaged configuration (CI containers have
# no systemd), checks that /healthz answers, stops it with SIGTERM and purges the
# package. Needs root and cargo-deb (`cargo install cargo-deb --version 3.8.0
# --locked`; see .ci/run). See docs/operations.md, "What CI checks".
#
# The package is built from the debug binary (`--profile dev`) the test suite has
# already built: this checks the packaging (unit, maintainer scripts, conffile,
# user, paths), not the optimizer, and costs seconds instead of a release build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if [ "$(id -u)" != 0 ]; then
  echo "packaging/deb-check.sh installs a package: run it as root" >&2
  exit 1
fi
if dpkg-query -W -f='${Status}' sealpost 2>/dev/null | grep -q 'installed'; then
  echo "a sealpost package is already installed here; not touching it" >&2
  exit 1
fi

work=$(mktemp -d /tmp/sealpost-deb.XXXXXX)
server_pid=
installed=
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
  if [ -n "$installed" ]; then
    dpkg --purge sealpost >/dev/null 2>&1 || true
    # The package keeps the data and the user on purge (docs/operations.md):
    # this throwaway installation removes them.
    rm -rf /var/lib/sealpost
    getent passwd sealpost >/dev/null && deluser --quiet sealpost >/dev/null 2>&1 || true
    getent group sealpost >/dev/null && delgroup --quiet sealpost >/dev/null 2>&1 || true
  fi
  if [ "$status" != 0 ] && [ -f "$work/serve.log" ]; then
    echo "--- serve.log (tail)"; tail -n 30 "$work/serve.log"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

fail() { echo "deb check: $*" >&2; exit 1; }

cargo build --locked --bin sealpost -q
# (cargo-deb 3.8 warns that a dev profile will not be supported by some future
# version; it is pinned in .ci/run. Its output is shown only on failure.)
cargo deb --no-build --profile dev --fast --output "$work/" >"$work/cargo-deb.log" 2>&1 ||
  { cat "$work/cargo-deb.log"; fail "cargo deb failed"; }
deb=$(ls "$work"/sealpost_*.deb)
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

installed=1
dpkg -i "$deb" >/dev/null
# Installing over itself is the upgrade path: postinst runs `sealpost migrate`.
dpkg -i "$deb" >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "reinstall (upgrade) failed"; }
grep -q "Database schema is up to date." "$work/upgrade.log" || fail "the upgrade did not run sealpost migrate"

getent passwd sealpost >/dev/null || fail "no sealpost user"
[ "$(stat -c %U:%a /var/lib/sealpost)" = sealpost:750 ] || fail "/var/lib/sealpost: $(stat -c %U:%a /var/lib/sealpost)"
[ "$(stat -c %U:%G:%a /etc/sealpost/sealpost.toml)" = root:sealpost:640 ] || fail "config owner/mode"
dpkg-query -W -f='${Conffiles}\n' sealpost | grep -q '/etc/sealpost/sealpost.toml' || fail "the config is not a conffile"
unit=/lib/systemd/system/sealpost.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/sealpost.service
[ -f "$unit" ] || fail "no sealpost.service installed"
for option in ProtectSystem=strict NoNewPrivileges=yes User=sealpost StateDirectory=sealpost ProtectHome=yes PrivateTmp=yes; do
  grep -qx "$option" "$unit" || fail "$unit lacks $option"
done
# The unit's syntax and directives (systemd-analyze works without a running systemd).
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify $unit"; }
  [ ! -s "$work/verify.log" ] || { cat "$work/verify.log"; fail "systemd-analyze verify $unit reported problems"; }
fi
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart in $unit"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
portal=$(free_port)
# The unit's command line, as the unit's user, in its working directory, with the
# packaged configuration; only the listeners move to free ports.
read -r -a command <<<"$exec_start"
(
  cd /var/lib/sealpost
  exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SEALPOST_LOG=warn \
    SEALPOST_SMTP_RELAY_LISTEN="127.0.0.1:$(free_port)" \
    SEALPOST_SMTP_SUBMISSION_LISTEN="127.0.0.1:$(free_port)" \
    SEALPOST_IMAP_LISTEN="127.0.0.1:$(free_port)" \
    SEALPOST_IMAP_TLS_LISTEN="127.0.0.1:$(free_port)" \
    SEALPOST_PORTAL_LISTEN="127.0.0.1:$portal" \
    setpriv --reuid=sealpost --regid=sealpost --init-groups --no-new-privs -- "${command[@]}"
) >"$work/serve.log" 2>&1 &
server_pid=$!

answer=
for _ in $(seq 300); do
  answer=$(curl -sk --max-time 2 "https://127.0.0.1:$portal/healthz" || true)
  [ "$answer" = ok ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "the service exited"
  sleep 0.2
done
[ "$answer" = ok ] || fail "/healthz did not answer ok (got: ${answer:-nothing})"
echo "installed package: /healthz answers ok (as user $(ps -o user= -p "$server_pid"))"
[ "$(stat -c %U /var/lib/sealpost/sealpost.db)" = sealpost ] || fail "the database is not the sealpost user's"

kill -TERM "$server_pid"
set +e
wait "$server_pid"
rc=$?
set -e
server_pid=
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "SIGTERM: stopped, exit 0"

dpkg --purge sealpost >/dev/null
[ ! -e /etc/sealpost ] || fail "/etc/sealpost left after purge"
[ ! -e /usr/bin/sealpost ] || fail "/usr/bin/sealpost left after purge"
echo "purged"
