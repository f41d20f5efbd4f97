#!/usr/bin/env python3
"""Delivery benchmark: N plain (pass-through) messages in through Sealpost's relay
port with smtp-source, out through the smarthost route into Postfix's smtp-sink.
Prints messages/s (first message in → last message at the sink), how long the
queue took to drain after the last 250, and how many SMTP connections Sealpost
opened to the sink. Checks that every message reached the sink exactly once.

Run it through run.sh (builds, cleans up). `--before BINARY` runs the same load
through another build (e.g. main's) first, for a side-by-side."""

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import BenchError, log, free_port  # noqa: E402

FROM = "ada@smiles.example"


def wait_port(port, proc, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on {port} within {timeout} s")


class Run:
    """One Sealpost build, one sink, one load."""

    def __init__(self, args, name, binary, work, procs, pool):
        self.args, self.name, self.binary, self.procs, self.pool = args, name, binary, procs, pool
        self.work = os.path.join(work, name)
        os.makedirs(self.work)
        os.chmod(self.work, 0o777)  # smtp-sink runs as nobody and writes nothing, but may chdir

    def spawn(self, argv, logname, **kw):
        out = open(os.path.join(self.work, f"{logname}.log"), "wb")
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        with open(os.path.join(self.args.workdir, "pids"), "a") as f:  # run.sh's trap kills these by id
            f.write(f"{p.pid}\n")
        return p

    def env(self):
        env = dict(os.environ)
        env.update(
            SEALPOST_DATA_DIR=os.path.join(self.work, "data"),
            SEALPOST_PUBLIC_URL=f"https://localhost:{self.portal}",
            SEALPOST_SMTP_RELAY_LISTEN=f"127.0.0.1:{self.relay}",
            SEALPOST_SMTP_SUBMISSION_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_PORTAL_LISTEN=f"127.0.0.1:{self.portal}",
            SEALPOST_IMAP_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_TLS_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_OUTBOUND_MODE="smarthost",
            SEALPOST_OUTBOUND_SMARTHOST=f"127.0.0.1:{self.sink}",
            SEALPOST_OUTBOUND_SMARTHOST_TLS="none",
            RUST_LOG="warn",
        )
        if self.pool:  # builds before the pool do not know the key
            env["SEALPOST_OUTBOUND_MAX_CONNECTIONS_PER_DESTINATION"] = str(self.pool)
        return env

    def cli(self, *argv):
        r = subprocess.run([self.binary, *argv], env=self.env(), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"sealpost {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")

    def trace(self):
        with open(os.path.join(self.work, "sink.log"), errors="replace") as f:
            return f.read()

    def sink_counts(self):
        trace = self.trace()
        rcpts = collections.Counter(re.findall(r"^smtp-sink: RCPT TO:<([^>]*)>", trace, re.M))
        return {
            "connections": len(re.findall(r"^smtp-sink: connect \(", trace, re.M)),
            "messages": len(re.findall(r"^smtp-sink: \.$", trace, re.M)),
            "rset": len(re.findall(r"^smtp-sink: RSET", trace, re.M)),
            "rcpts": rcpts,
        }

    def run(self):
        a = self.args
        self.relay, self.portal, self.sink = free_port(), free_port(), free_port()
        self.cli("migrate")  # admin commands refuse a database that does not exist
        self.cli("practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example")
        self.cli("user", "add", "--email", FROM, "--name", "Dr Ada", "--role", "doctor", "--practice", "smiles.example", "--paid")
        sink = self.spawn(["smtp-sink", "-u", "nobody", "-v", f"127.0.0.1:{self.sink}", "256"], "sink", cwd=self.work)
        wait_port(self.sink, sink, 30, "smtp-sink")
        # wait_port's own connection: wait until the trace shows it gone.
        while "smtp-sink: disconnect" not in self.trace():
            time.sleep(0.02)
        probe = self.sink_counts()["connections"]
        server = self.spawn([self.binary, "serve"], "sealpost", env=self.env())
        wait_port(self.relay, server, 120, "sealpost relay")
        log(f"{self.name}: {a.messages} messages of {a.size} bytes over {a.sessions} connections into Sealpost")
        start = time.monotonic()
        src = subprocess.run(
            ["smtp-source", "-s", str(a.sessions), "-m", str(a.messages), "-l", str(a.size), "-N",
             "-f", FROM, "-t", "pat@example.org", f"127.0.0.1:{self.relay}"],
            capture_output=True, text=True, timeout=a.timeout,
        )
        ingested = time.monotonic()
        if src.returncode != 0:
            raise BenchError(f"smtp-source failed ({src.returncode}): {src.stderr.strip()[:500]}")
        end = time.monotonic() + a.timeout
        while True:
            counts = self.sink_counts()
            if counts["messages"] >= a.messages:
                break
            if server.poll() is not None:
                raise BenchError(f"sealpost exited with {server.returncode}")
            if time.monotonic() > end:
                raise BenchError(f"only {counts['messages']} of {a.messages} messages reached the sink")
            time.sleep(0.02)
        done = time.monotonic()
        time.sleep(0.5)  # anything extra (a duplicate) would show now
        counts = self.sink_counts()
        counts["connections"] -= probe
        dupes = {r: n for r, n in counts["rcpts"].items() if n != 1}
        expected = {f"{i}pat@example.org" for i in range(1, a.messages + 1)}
        missing = expected - set(counts["rcpts"])
        if dupes or missing or counts["messages"] != a.messages:
            raise BenchError(f"{self.name}: {len(missing)} missing, duplicates {dict(list(dupes.items())[:5])}, "
                             f"{counts['messages']} messages at the sink for {a.messages} sent")
        if self.pool and counts["connections"] > self.pool:
            raise BenchError(f"{self.name}: {counts['connections']} connections for a pool of {self.pool}")
        server.terminate()
        server.wait(30)
        sink.terminate()
        sink.wait(10)
        return {
            "name": self.name,
            "rate": a.messages / (done - start),
            "ingest_rate": a.messages / (ingested - start),
            "drain": done - ingested,
            "connections": counts["connections"],
            "rset": counts["rset"],
        }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--binary", required=True)
    p.add_argument("--before", help="another build to run first (no pool)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=10240)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--pool", type=int, default=10, help="outbound.max_connections_per_destination")
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--smoke", action="store_true", help="20 small messages: correctness only")
    a = p.parse_args()
    if a.smoke:
        a.messages, a.size, a.sessions, a.pool, a.before = 20, 1024, 4, 3, None
    procs = []
    results = []
    try:
        if a.before:
            results.append(Run(a, "before", a.before, a.workdir, procs, None).run())
        results.append(Run(a, "after", a.binary, a.workdir, procs, a.pool).run())
    except BenchError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        open(os.path.join(a.workdir, "pids"), "w").close()
    if a.smoke:
        r = results[-1]
        print(f"smoke ok: {a.messages} messages, each once, over {r['connections']} connections (pool {a.pool})")
        return 0
    print()
    print(f"{a.messages} messages x {a.size} B, {a.sessions} connections in, pass-through, smarthost = smtp-sink")
    print(f"{'build':8} {'msgs/s (in→sink)':>17} {'ingest msgs/s':>14} {'drain after last 250':>21} {'connections out':>16} {'RSET':>6}")
    for r in results:
        print(f"{r['name']:8} {r['rate']:17.0f} {r['ingest_rate']:14.0f} {r['drain']:19.2f} s {r['connections']:16d} {r['rset']:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
