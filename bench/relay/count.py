#!/usr/bin/env python3
"""Counts what one secure message costs the Sealpost server (issue 14): system
calls (strace -f -c attached to the server during the secure phase only), SQL
statements and transactions (sqlx's statement log, `sqlx::query=debug`), files
created under the data folder.

    bench/relay/count.py BINARY [--messages 200]

Runs bench/relay/run.sh with that binary (no Postfix row needed: it is run, but
only the secure phase is counted), attaches strace when the pass-through round
ends and detaches when the secure round ends. Needs strace and root (ptrace).
Everything it starts is stopped by pid.
"""

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def server_pid(binary):
    binary = os.path.realpath(binary)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.path.realpath(f"/proc/{d}/exe") != binary:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"serve" in argv:
                return int(d)
        except OSError:
            continue
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--messages", type=int, default=200)
    a = p.parse_args()
    env = dict(os.environ, SEALPOST_LOG="info,sqlx::query=debug", BENCH_BINARY=a.binary, KEEP_WORKDIR="1")
    bench = subprocess.Popen(
        [os.path.join(HERE, "run.sh"), "--messages", str(a.messages), "--rounds", "1",
         "--latency-seconds", "1", "--rate", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    strace = None
    out = f"/tmp/seal-count-{os.getpid()}.strace"
    log_path, log_start, log_end, data_dir, files0 = None, 0, 0, None, 0
    for line in bench.stdout:
        sys.stdout.write(line)
        if "sealpost pass-through round" in line and strace is None:
            pid = server_pid(a.binary)
            log_path = os.readlink(f"/proc/{pid}/fd/1")
            data_dir = os.path.join(os.path.dirname(log_path), "data")
            files0 = count_files(data_dir)
            blobs0 = count_files(os.path.join(data_dir, "blobs"))
            log_start = os.path.getsize(log_path)
            strace = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        elif "sealpost secure round" in line and strace is not None and log_end == 0:
            time.sleep(0.3)
            strace.send_signal(signal.SIGINT)
            strace.wait(30)
            log_end = os.path.getsize(log_path)
            files1 = count_files(data_dir)
            blobs1 = count_files(os.path.join(data_dir, "blobs"))
    bench.wait()
    n = a.messages // 20 * 20
    print(f"\n== per secure message ({n} messages; pass-through tail included) ==")
    with open(log_path, "rb") as f:
        f.seek(log_start)
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read(log_end - log_start).decode("utf-8", "replace"))
    stmts = collections.Counter()
    for m in re.finditer(r'summary="([^"]*)"', text):
        stmts[m.group(1)] += 1
    total = sum(stmts.values())
    tx = sum(c for s, c in stmts.items() if s.upper().startswith(("BEGIN", "COMMIT")))
    print(f"SQL statements: {total / n:.1f} (BEGIN/COMMIT: {tx / n:.1f})")
    for s, c in stmts.most_common(40):
        print(f"  {c / n:6.2f}  {s}")
    print(f"files under data/ now - before: {(files1 - files0) / n:.2f} per message (net); "
          f"blob files: {(blobs1 - blobs0) / n:.2f} per message")
    with open(out) as f:
        rows = f.read()
    for name in ("fsync", "fdatasync", "openat", "futex", "rename", "write", "pwrite64", "read", "unlink",
                 "mkdir", "epoll_wait", "sendto", "recvfrom", "total"):
        for row in rows.splitlines():
            cols = row.split()
            if cols and cols[-1] == name:
                calls = int(cols[3])
                print(f"  {name}: {calls / n:.1f} calls per message")
    print(f"(strace summary: {out}; workdir {os.path.dirname(log_path)})")


def count_files(root):
    total = 0
    for _, _, files in os.walk(root):
        total += len(files)
    return total


if __name__ == "__main__":
    main()
