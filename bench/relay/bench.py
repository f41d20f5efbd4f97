#!/usr/bin/env python3
"""Relay benchmark (issue 14): in one run, on free ports, into one Postfix smtp-sink:

  1. Postfix relaying in clear (smtp-source -> postfix smtpd -> smtp-sink)
  2. Sealpost pass-through   (smtp-source -> sealpost relay -> smarthost smtp-sink)
  3. Sealpost secure path    (smtp-source -> sealpost: sealed, one notification each
                              -> smtp-sink)

10 KB messages over 20 connections (20 smtp-source processes, one session each, one
recipient each), N messages per round; msgs/s = N / (first byte sent .. N-th message
at the sink); median of the rounds, ratio to Postfix. Then the secure path at a steady
rate (default 50 msg/s): end of DATA -> notification at the sink, p50 and p99. CPU ms
per message: the Sealpost process's user+system time over a phase / messages.

--smoke: a handful of messages through both Sealpost paths, no timing: every message
must arrive at the sink exactly once (pass-through by a unique tag, secure by the id in
the 250 reply that the notification's link names). Exit status 1 if not.
"""

import argparse
import email
import email.policy
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import BenchError, free_port  # noqa: E402

SENDER = "ada@smiles.example"


def log(msg):
    print(msg, flush=True)


def wait_port(port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on {port} within {timeout} s")


def cpu_split(pid):
    """(utime, stime) of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    return sum(cpu_split(pid))


def body(size, tag):
    line = ("The quick brown fox jumps over the lazy dog " + tag + " ").ljust(76, "x")[:76]
    lines, total = [], 0
    while total < size:
        lines.append(line)
        total += len(line) + 2
    return "\n".join(lines) + "\n"


def message_file(path, to, size, secure):
    headers = [f"From: Dr Ada Lovelace <{SENDER}>", f"To: {to}"]
    if secure:
        headers += ["Subject: [secure] Lab results", "X-Sealpost-Secure: 1", f"X-Sealpost-Role: {to} patient"]
    else:
        headers += ["Subject: Lab order"]
    with open(path, "w") as f:
        f.write("\n".join(headers) + "\n\n" + body(size, "bench"))


class Sink:
    """Postfix's smtp-sink, one file per message in a folder counted by polling."""

    def __init__(self, bench):
        self.dir = os.path.join(bench.work, "sink")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        argv = [bench.tool("smtp-sink"), "-d", f"{self.dir}/%s.", f"127.0.0.1:{self.port}", "1024"]
        if os.geteuid() == 0:
            argv[1:1] = ["-u", "nobody"]
        self.proc = bench.spawn(argv, "smtp-sink")
        wait_port(self.port, self.proc, 10, "smtp-sink")

    def files(self):
        return [os.path.join(self.dir, n) for n in os.listdir(self.dir)]

    def count(self):
        return len(os.listdir(self.dir))

    def clear(self):
        for path in self.files():
            os.unlink(path)

    def wait(self, n, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return time.monotonic()
            time.sleep(0.005)
        raise BenchError(f"{what}: {self.count()} of {n} messages at the sink after {timeout} s")


def blast(bench, port, files, per_file, timeout):
    """One smtp-source per file (one session each), all at once; returns the start."""
    procs = []
    start = time.monotonic()
    for path, rcpt in files:
        argv = [bench.tool("smtp-source"), "-F", path, "-m", str(per_file), "-s", "1", "-f", SENDER, "-t", rcpt,
                "-M", "bench.example", f"127.0.0.1:{port}"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise BenchError(f"smtp-source failed: {err.decode(errors='replace')[-500:]}")
    return start


class Smtp:
    """A tiny SMTP client that says when the end of data left and what the 250 said."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.expect("220")
        self.cmd("EHLO bench.example", "250")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def expect(self, code):
        while True:
            line = self.line()
            if line[3:4] != "-":
                if not line.startswith(code):
                    raise BenchError(f"expected {code}, got {line!r}")
                return line

    def cmd(self, text, code):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.expect(code)

    def send(self, rcpt, data):
        """Returns (time the end of data was sent, the 250 reply)."""
        self.sock.sendall(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        self.expect("250")
        self.expect("250")
        self.expect("354")
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        self.sock.sendall(stuffed)
        sent = time.time()
        self.sock.sendall(b".\r\n")
        return sent, self.expect("250")

    def close(self):
        try:
            self.cmd("QUIT", "221")
        except (BenchError, OSError):
            pass
        self.sock.close()


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def secure_data(rcpt, size, tag):
    return crlf(f"From: Dr Ada Lovelace <{SENDER}>\nTo: {rcpt}\nSubject: [secure] Results {tag}\n"
                f"X-Sealpost-Secure: 1\nX-Sealpost-Role: {rcpt} patient\n\n" + body(size, tag))


def plain_data(rcpt, size, tag):
    return crlf(f"From: Dr Ada Lovelace <{SENDER}>\nTo: {rcpt}\nSubject: Order {tag}\n\n" + body(size, tag))


def sealed_id(reply):
    # "250 2.0.0 Message accepted and sealed as <id>"
    return reply.rsplit(" ", 1)[-1]


def notification_ids(path):
    """The message ids the links in one notification name."""
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    text = ""
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            text += part.get_content()
    ids = set()
    for piece in text.split("/m/")[1:]:
        ident = ""
        for ch in piece:
            if ch.isalnum() or ch in "-_":
                ident += ch
            else:
                break
        if ident:
            ids.add(ident)
    return ids


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.procs = []
        self.pidfile = os.path.join(self.work, "pids")

    def tool(self, name):
        for d in ("/usr/sbin", "/usr/bin", "/sbin"):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        found = shutil.which(name)
        if not found:
            raise BenchError(f"{name} is missing (Debian package postfix)")
        return found

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
        open(self.pidfile, "w").close()
        self.stop_postfix()

    # ------------------------------------------------------------------ Sealpost

    def start_sealpost(self, sink_port):
        self.relay_port = free_port()
        env = dict(os.environ)
        env.update(
            SEALPOST_DATA_DIR=os.path.join(self.work, "data"),
            SEALPOST_PUBLIC_URL="https://localhost:8443",
            SEALPOST_SMTP_RELAY_LISTEN=f"127.0.0.1:{self.relay_port}",
            SEALPOST_SMTP_SUBMISSION_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_PORTAL_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_TLS_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_OUTBOUND_MODE="smarthost",
            SEALPOST_OUTBOUND_SMARTHOST=f"127.0.0.1:{sink_port}",
            SEALPOST_OUTBOUND_SMARTHOST_TLS="none",
            SEALPOST_SMTP_MAX_CONNECTIONS="1000",
        )
        # Admin commands refuse a database that does not exist: migrate creates it.
        for argv in (["migrate"],
                     ["practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example"],
                     ["user", "add", "--email", SENDER, "--name", "Dr Ada Lovelace", "--role", "doctor",
                      "--practice", "smiles.example", "--paid"],
                     *([["dkim", "keygen"]] if self.args.dkim else [])):
            r = subprocess.run([self.args.binary, *argv], env=env, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise BenchError(f"sealpost {' '.join(argv)} failed:\n{r.stdout}{r.stderr}")
        self.sealpost = self.spawn([self.args.binary, "serve"], "sealpost", env=env)
        wait_port(self.relay_port, self.sealpost, 60, "sealpost relay")

    # ------------------------------------------------------------------ Postfix

    def start_postfix(self, sink_port):
        if os.geteuid() != 0:
            log("not root: Postfix (whose master runs as root) is left out")
            return None
        root = os.path.join(self.work, "postfix")
        conf, data, queue = (os.path.join(root, d) for d in ("conf", "data", "queue"))
        for d in (conf, data, queue):
            os.makedirs(d)
        port = free_port()
        master = []
        with open("/etc/postfix/master.cf") as f:
            for line in f.read().splitlines():
                if line.startswith("smtp ") and " inet " in line:
                    line = f"127.0.0.1:{port} inet n - n - - smtpd"
                master.append(line)
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write("\n".join(master) + "\n")
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(
                "compatibility_level = 3.6\nmyhostname = mta.bench.example\nmydestination =\n"
                "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
                f"relayhost = [127.0.0.1]:{sink_port}\nqueue_directory = {queue}\ndata_directory = {data}\n"
                "smtp_dns_support_level = disabled\nsmtpd_client_connection_count_limit = 0\n"
                "smtpd_client_connection_rate_limit = 0\ndefault_process_limit = 100\n"
                f"maillog_file = {root}/maillog\nmaillog_file_prefixes = /tmp, /var\nalias_maps =\n"
                "alias_database =\nlocal_recipient_maps =\n"
            )
        subprocess.run(["chown", "postfix", data], check=True)
        r = subprocess.run([self.tool("postfix"), "-c", conf, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"postfix start failed: {r.stdout}{r.stderr}")
        self.postfix_conf = conf
        wait_port(port, None, 30, "postfix")
        return port

    def stop_postfix(self):
        conf = getattr(self, "postfix_conf", None)
        if conf:
            subprocess.run([self.tool("postfix"), "-c", conf, "stop"], capture_output=True)
            self.postfix_conf = None

    # ------------------------------------------------------------------ phases

    def throughput(self, sink, port, secure, what):
        a = self.args
        per = a.messages // a.connections
        n = per * a.connections
        files = []
        for i in range(a.connections):
            rcpt = f"r{i}@patients.example"
            path = os.path.join(self.work, f"{'secure' if secure else 'plain'}-{i}.eml")
            message_file(path, rcpt, a.size, secure)
            files.append((path, rcpt))
        rates, cpus = [], []
        for round_no in range(a.rounds):
            sink.clear()
            cpu0 = cpu_split(self.sealpost.pid) if what != "postfix" else None
            start = blast(self, port, files, per, a.timeout)
            done = sink.wait(n, a.timeout, what)
            rate = n / (done - start)
            rates.append(rate)
            extra = ""
            if cpu0 is not None:
                time.sleep(0.3)  # the last outcomes are written after the sink has the mail
                user, system = (b - a0 for b, a0 in zip(cpu_split(self.sealpost.pid), cpu0))
                cpus.append((user + system) * 1000 / n)
                extra = f", {cpus[-1]:.2f} CPU ms/msg ({user * 1000 / n:.2f} user + {system * 1000 / n:.2f} system)"
            log(f"  {what} round {round_no + 1}: {n} messages in {done - start:.2f} s = {rate:.0f} msg/s{extra}")
            time.sleep(0.5)
            if sink.count() != n:
                raise BenchError(f"{what}: {sink.count()} messages at the sink, expected {n}")
        if a.strace and what != "postfix":
            self.syscalls(sink, port, files, per, n, what)
        return statistics.median(rates), (statistics.median(cpus) if cpus else None)

    def syscalls(self, sink, port, files, per, n, what):
        """One more round with `strace -f -c` on the Sealpost process (not timed:
        strace slows every call): system calls per message, by kind."""
        out = os.path.join(self.work, f"strace-{what.replace(' ', '-')}.txt")
        sink.clear()
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(self.sealpost.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # attached to every thread
            blast(self, port, files, per, self.args.timeout)
            sink.wait(n, self.args.timeout, what)
            time.sleep(1.0)  # the last outcomes
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=60)
        calls = {}
        with open(out) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                    calls[fields[-1]] = int(fields[3])
        total = sum(calls.values())
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
        sync = sum(calls.get(k, 0) for k in ("fsync", "fdatasync"))
        log(f"  {what} syscalls per message (strace -f -c, {n} messages): {total / n:.1f} in all, "
            f"fsync+fdatasync {sync / n:.2f}; " + ", ".join(f"{k} {v / n:.2f}" for k, v in top))

    def latency(self, sink):
        a = self.args
        sink.clear()
        total = a.rate * a.latency_seconds
        conns = [Smtp(self.relay_port) for _ in range(a.latency_connections)]
        sent = {}
        lock = threading.Lock()
        start = time.monotonic() + 0.2
        errors = []

        def sender(k):
            try:
                for i in range(k, total, len(conns)):
                    delay = start + i / a.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    rcpt = f"r{i % a.connections}@patients.example"
                    t, reply = conns[k].send(rcpt, secure_data(rcpt, a.size, f"lat{i}"))
                    with lock:
                        sent[sealed_id(reply)] = t
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(len(conns))]
        cpu0 = cpu_seconds(self.sealpost.pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in conns:
            c.close()
        if errors:
            raise BenchError(f"latency sender: {errors[0]}")
        sink.wait(total, a.timeout, "latency")
        cpu = (cpu_seconds(self.sealpost.pid) - cpu0) * 1000 / total
        lat = []
        for path in sink.files():
            arrived = os.stat(path).st_mtime_ns / 1e9
            for ident in notification_ids(path):
                if ident in sent:
                    lat.append((arrived - sent[ident]) * 1000)
        if len(lat) != total:
            raise BenchError(f"latency: matched {len(lat)} notifications to {total} messages")
        return percentile(lat, 50), percentile(lat, 99), max(lat), cpu

    def smoke(self, sink):
        """Every message arrives exactly once; returns the number of problems."""
        problems = 0
        conns = [Smtp(self.relay_port) for _ in range(3)]
        tags = [f"SMOKE{n:03d}X" for n in range(12)]
        for n, tag in enumerate(tags):
            conns[n % 3].send(f"lab{n % 2}@lab.example", plain_data(f"lab{n % 2}@lab.example", 2000, tag))
        ids = []
        for n in range(12):
            rcpt = f"r{n % 4}@patients.example"
            _, reply = conns[n % 3].send(rcpt, secure_data(rcpt, 2000, f"S{n}"))
            ids.append(sealed_id(reply))
        for c in conns:
            c.close()
        sink.wait(len(tags) + len(ids), self.args.timeout, "smoke")
        time.sleep(1.0)  # anything sent twice would be there by now
        seen_tags, seen_ids = {}, {}
        for path in sink.files():
            with open(path, "rb") as f:
                raw = f.read()
            found = [t for t in tags if t.encode() in raw]
            for t in found:
                seen_tags[t] = seen_tags.get(t, 0) + 1
            if not found:
                for ident in notification_ids(path):
                    seen_ids[ident] = seen_ids.get(ident, 0) + 1
        for tag in tags:
            if seen_tags.get(tag) != 1:
                log(f"  pass-through {tag}: arrived {seen_tags.get(tag, 0)} times")
                problems += 1
        for ident in ids:
            if seen_ids.get(ident) != 1:
                log(f"  secure {ident}: {seen_ids.get(ident, 0)} notifications")
                problems += 1
        if sink.count() != len(tags) + len(ids):
            log(f"  {sink.count()} mails at the sink, expected {len(tags) + len(ids)}")
            problems += 1
        log(f"smoke: {len(tags)} pass-through and {len(ids)} secure messages; "
            f"{'each arrived exactly once' if problems == 0 else f'{problems} problems'}")
        return problems

    def run(self):
        a = self.args
        sink = Sink(self)
        self.start_sealpost(sink.port)
        if a.smoke:
            return 1 if self.smoke(sink) else 0
        log(f"{a.messages} messages of {a.size // 1024} KB over {a.connections} connections, "
            f"{a.rounds} rounds (median); load {os.getloadavg()[0]:.2f}")
        results = {}
        postfix_port = self.start_postfix(sink.port)
        if postfix_port:
            results["postfix"] = self.throughput(sink, postfix_port, False, "postfix")
            self.stop_postfix()
        results["pass"] = self.throughput(sink, self.relay_port, False, "sealpost pass-through")
        results["secure"] = self.throughput(sink, self.relay_port, True, "sealpost secure")
        log(f"latency: secure messages at a steady {a.rate} msg/s for {a.latency_seconds} s")
        p50, p99, worst, lat_cpu = self.latency(sink)

        base = results.get("postfix", (None, None))[0]
        log("")
        log("| path | msgs/s | vs Postfix | Sealpost CPU ms/msg |")
        log("|---|---|---|---|")
        for key, name in (("postfix", "Postfix relaying in clear"), ("pass", "Sealpost pass-through"),
                          ("secure", "Sealpost secure (sealed + notification)")):
            if key not in results:
                continue
            rate, cpu = results[key]
            ratio = f"{rate / base:.2f}" if base else "n/a"
            log(f"| {name} | {rate:.0f} | {ratio} | {'' if cpu is None else f'{cpu:.2f}'} |")
        log("")
        log(f"end of DATA -> notification at the sink, {a.rate} msg/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
            f"max {worst:.0f} ms; {lat_cpu:.2f} CPU ms/msg")
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--size", type=int, default=10240, help="body bytes per message")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=int, default=50, help="msg/s for the latency phase")
    p.add_argument("--latency-seconds", type=int, default=10)
    p.add_argument("--latency-connections", type=int, default=5)
    p.add_argument("--timeout", type=int, default=300, help="seconds any one step may take")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--dkim", action="store_true",
                   help="give Sealpost DKIM keys (sealpost dkim keygen): every notification signed, RSA and Ed25519")
    p.add_argument("--strace", action="store_true",
                   help="after each Sealpost phase, one untimed round under strace -f -c: syscalls per message")
    a = p.parse_args()
    bench = Bench(a)

    def on_signal(signum, _frame):
        bench.cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        status = bench.run()
    except BenchError as e:
        log(f"bench failed: {e}")
        status = 1
    finally:
        bench.cleanup()
    sys.exit(status)


if __name__ == "__main__":
    main()
