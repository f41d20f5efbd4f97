#!/usr/bin/env python3
"""IMAP FETCH benchmark: the same messages in Sealpost (sent over SMTP as secure
mail, read from the sender's Sent folder) and in a throwaway Dovecot (a Maildir
written by this script), then `FETCH 1:* BODY.PEEK[]` over implicit TLS with
Python's imaplib against each, timed; medians and the ratio. With --smoke: a few
messages, every fetched body compared with what was sent, no timing. Standard
library only. Started by run.sh, which builds the binary and owns the temp dir;
see README.md.
"""

import argparse
import base64
import imaplib
import os
import pwd
import random
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import BenchError, log, free_port, wait_port  # noqa: E402

FROM = "ada@smiles.example"
RCPT = "pat@example.org"
DOVECOT_USER = "bench"
DOVECOT_PASSWORD = "Bench-Pass-1234"

DOVECOT_CONF = """\
# Written by bench/imap/bench.py for one run; everything lives under {d}.
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
mail_location = maildir:{d}/mail/%u
first_valid_uid = 0
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service imap {{
  process_limit = 4
}}
"""


RECEIVED = (
    "Received: from [127.0.0.1] ([127.0.0.1])\r\n"
    "\tby localhost (Dovecot bench copy) with ESMTP id {id:032x};\r\n"
    "\tWed, 2 Dec 2026 04:00:00 +0000\r\n"
)


def without_received(message):
    """The message without its first header field if that is a Received trace
    field (Sealpost adds one on the way in, RFC 5321 §4.4)."""
    if not message.startswith(b"Received:"):
        return message
    at = message.index(b"\r\n") + 2
    while message[at : at + 1] in (b" ", b"\t"):
        at = message.index(b"\r\n", at) + 2
    return message[at:]


def make_messages(count, size):
    """`count` MIME messages of about `size` octets each (CRLF): a short text
    part and a base64 attachment of random bytes, fixed seed. Returns
    (as sent over SMTP, as a recipient sees it: without the X-Sealpost-* fields)."""
    rng = random.Random(14)
    sent, visible = [], []
    for i in range(count):
        boundary = f"bench-{i:04d}-{rng.getrandbits(32):08x}"
        markers = f"X-Sealpost-Secure: 1\r\nX-Sealpost-Role: {RCPT} patient\r\n"
        head = (
            f"From: Dr Ada <{FROM}>\r\n"
            f"To: <{RCPT}>\r\n"
            f"Subject: Bench message {i}\r\n"
            f"Date: Wed, 02 Dec 2026 04:{i // 60 % 60:02d}:{i % 60:02d} +0000\r\n"
            f"Message-ID: <bench-{i:04d}@smiles.example>\r\n"
        )
        rest = (
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
            f"\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n"
            f"Hello, this is message {i}; the scan is attached.\r\n"
            f"\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="scan-{i}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n"
            f"\r\n"
        )
        tail = f"--{boundary}--\r\n"
        room = max(0, size - len(head) - len(rest) - len(tail) - len(markers))
        raw = rng.randbytes(room * 57 // 78)
        enc = base64.b64encode(raw)
        body = b"\r\n".join(enc[j : j + 76] for j in range(0, len(enc), 76)) + b"\r\n"
        sent.append((head + markers + rest).encode() + body + tail.encode())
        visible.append((head + rest).encode() + body + tail.encode())
    return sent, visible


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.procs = []
        self.pidfile = os.path.join(self.work, "pids")
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def spawn(self, argv, name, **kw):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        with open(self.pidfile, "a") as f:  # run.sh's trap kills these by id
            f.write(f"{p.pid}\n")
        return p

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        open(self.pidfile, "w").close()  # all reaped: nothing left for run.sh to kill

    def cli(self, *argv):
        r = subprocess.run([self.args.binary, *argv], env=self.env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"sealpost {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout

    # ------------------------------------------------------------------ servers

    def start_sealpost(self):
        self.imaps_port = free_port()
        relay_port, portal_port = free_port(), free_port()
        self.env = dict(os.environ)
        self.env.update(
            SEALPOST_DATA_DIR=os.path.join(self.work, "data"),
            SEALPOST_PUBLIC_URL=f"https://localhost:{portal_port}",
            SEALPOST_SMTP_RELAY_LISTEN=f"127.0.0.1:{relay_port}",
            SEALPOST_SMTP_SUBMISSION_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_PORTAL_LISTEN=f"127.0.0.1:{portal_port}",
            SEALPOST_IMAP_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_TLS_LISTEN=f"127.0.0.1:{self.imaps_port}",
        )
        self.cli("migrate")  # admin commands refuse a database that does not exist
        self.cli("practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example")
        self.cli("user", "add", "--email", FROM, "--name", "Dr Ada", "--role", "doctor", "--practice", "smiles.example", "--paid")
        out = self.cli("user", "app-password", "--email", FROM, "--label", "bench")
        lines = out.strip().splitlines()
        if len(lines) < 2:
            raise BenchError(f"no app password in: {out!r}")
        self.app_password = lines[-1].strip()  # printed on the last line
        prefix = []
        if self.args.callgrind:
            # Instrumented only while Sealpost's FETCH runs are timed (see profile()).
            out = os.path.join(os.path.abspath(self.args.callgrind), "callgrind.out.%p")
            prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        server = self.spawn(prefix + [self.args.binary, "serve"], "sealpost", env=self.env)
        self.server = server
        wait_port(relay_port, server, 600, "sealpost relay")
        wait_port(self.imaps_port, server, 600, "sealpost imaps")
        return server, relay_port

    def start_dovecot(self, visible):
        d = os.path.join(self.work, "dovecot")
        root = os.geteuid() == 0
        # Dovecot refuses to read mail as root: as root, the mail is its user's.
        uid, gid = (pwd.getpwnam("dovecot").pw_uid, pwd.getpwnam("dovecot").pw_gid) if root else (os.getuid(), os.getgid())
        maildir = os.path.join(d, "mail", DOVECOT_USER)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        os.makedirs(os.path.join(d, "home", DOVECOT_USER))
        stamp = int(time.time()) - len(visible)
        for i, msg in enumerate(visible):
            # Maildir names: unique, and delivered in order (the time stamp first).
            # A trace field like the one Sealpost adds, so both serve as many octets.
            msg = RECEIVED.format(id=i).encode() + msg
            name = f"{stamp + i}.M{i}P{os.getpid()}.bench,S={len(msg)}:2,"
            with open(os.path.join(maildir, "cur", name), "wb") as f:
                f.write(msg)
        cert = os.path.join(self.work, "data", "certs", "server.crt")
        key = os.path.join(self.work, "data", "certs", "server.key")
        self.dovecot_port = free_port()
        conf = os.path.join(d, "dovecot.conf")
        user = os.environ.get("USER") or "root"
        with open(conf, "w") as f:
            f.write(
                DOVECOT_CONF.format(
                    d=d,
                    cert=cert,
                    key=key,
                    port=self.dovecot_port,
                    internal="dovecot" if root else user,
                    internal_group="dovecot" if root else user,
                    login="dovenull" if root else user,
                    password=DOVECOT_PASSWORD,
                    uid=uid,
                    gid=gid,
                )
            )
        if root:
            # Dovecot's own processes run as its users: they need to reach the dir.
            os.chmod(self.work, 0o755)
            for top in ("mail", "home"):
                for dirpath, _, files in os.walk(os.path.join(d, top)):
                    os.chown(dirpath, uid, gid)
                    for name in files:
                        os.chown(os.path.join(dirpath, name), uid, gid)
        dovecot = self.spawn(["dovecot", "-F", "-c", conf], "dovecot")
        wait_port(self.dovecot_port, dovecot, 30, "dovecot imaps")
        return dovecot

    # ------------------------------------------------------------------ IMAP

    def imap(self, port, user, password, mailbox):
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=self.ctx, timeout=self.args.step_timeout)
        m.login(user, password)
        typ, data = m.select(mailbox, readonly=False)
        if typ != "OK":
            raise BenchError(f"SELECT {mailbox} on {port}: {typ} {data}")
        return m, int(data[0])

    def fetch_all(self, port, user, password, mailbox, count):
        """One session: FETCH 1:* BODY.PEEK[], timed alone. Returns (seconds, bodies)."""
        m, exists = self.imap(port, user, password, mailbox)
        try:
            if exists != count:
                raise BenchError(f"{mailbox} on port {port} has {exists} messages, not {count}")
            t = time.perf_counter()
            typ, data = m.fetch("1:*", "(BODY.PEEK[])")
            dt = time.perf_counter() - t
            if typ != "OK":
                raise BenchError(f"FETCH on port {port}: {typ}")
            bodies = [part[1] for part in data if isinstance(part, tuple)]
            if len(bodies) != count:
                raise BenchError(f"FETCH on port {port} returned {len(bodies)} bodies, not {count}")
            return dt, bodies
        finally:
            m.logout()

    def wait_sealed(self, count):
        deadline = time.monotonic() + self.args.step_timeout
        exists = -1
        while time.monotonic() < deadline:
            m, exists = self.imap(self.imaps_port, FROM, self.app_password, "Sent")
            m.logout()
            if exists >= count:
                return
            time.sleep(0.2)
        raise BenchError(f"only {exists} of {count} messages sealed in {self.args.step_timeout} s")

    # ------------------------------------------------------------------ run

    def run(self):
        a = self.args
        sent, visible = make_messages(a.messages, a.size)
        total = sum(len(v) for v in visible)
        log(f"{a.messages} messages, {total / 1e6:.2f} MB as a recipient sees them")

        log("starting sealpost serve; sending the messages over SMTP")
        server, relay_port = self.start_sealpost()
        with smtplib.SMTP("127.0.0.1", relay_port, timeout=a.step_timeout) as smtp:
            for msg in sent:
                smtp.sendmail(FROM, [RCPT], msg)
        self.wait_sealed(a.messages)
        log("  all sealed")
        log("starting dovecot")
        self.start_dovecot(visible)

        servers = [
            ("sealpost", self.imaps_port, FROM, self.app_password, "Sent"),
            ("dovecot", self.dovecot_port, DOVECOT_USER, DOVECOT_PASSWORD, "INBOX"),
        ]
        expected = sorted(visible)
        runs = 1 if a.smoke else a.runs
        callgrind = lambda *argv: subprocess.run(["callgrind_control", *argv, str(self.server.pid)], check=True, capture_output=True)
        if not a.smoke:
            for name, port, user, password, mailbox in servers:
                self.fetch_all(port, user, password, mailbox, a.messages)  # warm-up (indexes, caches)
        # The runs alternate between the servers, so a burst of other work on the
        # machine weighs on both alike.
        times = {name: [] for name, *_ in servers}
        for _ in range(runs):
            for name, port, user, password, mailbox in servers:
                if name == "sealpost" and a.callgrind:
                    callgrind("--instr=on")
                dt, bodies = self.fetch_all(port, user, password, mailbox, a.messages)
                if name == "sealpost" and a.callgrind:
                    callgrind("--instr=off")
                bodies = [without_received(b) for b in bodies]
                if sorted(bodies) != expected:
                    wrong = [b for b in bodies if b not in set(expected)]
                    with open(os.path.join(self.work, f"{name}-differs.eml"), "wb") as f:
                        f.write(wrong[0] if wrong else b"".join(sorted(bodies)))
                    raise BenchError(f"{name} served {len(wrong)} bodies that differ from what was sent (one is in {name}-differs.eml)")
                times[name].append(dt)
        if a.callgrind:
            callgrind("--dump")
            log(f"  callgrind profile of Sealpost's timed FETCH runs in {a.callgrind}")
        for name, *_ in servers:
            log(f"  {name}: {a.messages} bodies, byte for byte as sent, {runs} runs" + ("" if a.smoke else f": {', '.join(f'{t * 1000:.1f} ms' for t in times[name])}"))
        if server.poll() is not None:
            raise BenchError(f"sealpost exited with {server.returncode}")
        return {"times": times, "total": total, "load": os.getloadavg()}


def report(res, args):
    if args.smoke:
        print("smoke: sealpost and dovecot served every body as sent")
        return
    sp = statistics.median(res["times"]["sealpost"])
    dc = statistics.median(res["times"]["dovecot"])
    mb = res["total"] / 1e6
    print()
    print(f"FETCH 1:* BODY.PEEK[] of {args.messages} messages ({mb:.2f} MB) over TLS, imaplib; median of {args.runs} runs")
    print("| server | median | throughput | fastest | runs |")
    print("|---|---|---|---|---|")
    for name, t in (("sealpost", sp), ("dovecot", dc)):
        runs = ", ".join(f"{x * 1000:.1f}" for x in res["times"][name])
        print(f"| {name} | {t * 1000:.1f} ms | {mb / t:.1f} MB/s | {min(res['times'][name]) * 1000:.1f} ms | {runs} ms |")
    print(f"\nsealpost speed / dovecot speed: {dc / sp:.2f} (goal >= 1.0)")
    print("load average (1/5/15 min) at the end: " + " ".join(f"{x:.2f}" for x in res["load"]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--size", type=int, default=18_000, help="octets per message, about")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="a few messages, bodies checked, no timing")
    p.add_argument("--callgrind", metavar="DIR", help="run Sealpost under valgrind's callgrind, instrumented during its timed FETCH runs; the profile goes to DIR")
    p.add_argument("--binary", default="target/release/sealpost")
    p.add_argument("--workdir", required=True, help="an empty temp dir (run.sh makes and removes it)")
    p.add_argument("--step-timeout", type=float, default=300, help="seconds for sending, sealing or one FETCH")
    args = p.parse_args()
    args.binary = os.path.abspath(args.binary)
    if args.smoke:
        args.messages = min(args.messages, 5)

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(args)
    try:
        res = bench.run()
    except (BenchError, OSError, imaplib.IMAP4.error, smtplib.SMTPException) as e:
        print(f"\nBENCH FAILED: {e!r}", file=sys.stderr)
        for name in ("sealpost", "dovecot"):
            path = os.path.join(bench.work, f"{name}.log")
            if os.path.exists(path):
                print(f"--- last lines of {name}.log ---", file=sys.stderr)
                print("".join(open(path, errors="replace").readlines()[-20:]), file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    report(res, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
