#!/usr/bin/env python3
"""Two nodes against one (issue 16): relay throughput of secure mail with one
`sealpost serve` node, then with two nodes sharing one PostgreSQL database and one
S3 bucket (moto), into one Postfix smtp-sink; msgs/s of each and the ratio two/one.

Load as in bench/relay: 10 KB secure messages (X-Sealpost-Secure, the recipient a
patient), `--connections` smtp-source processes (one session each, split evenly over
the nodes), `--messages` per round; msgs/s = messages / (first client starts .. the
last notification at the sink); median of `--rounds`. Each phase gets a fresh
database and bucket prefix; the second node gets a copy of the first one's keys
(docs/operations.md, "Several nodes").

--smoke: two nodes only, a few secure messages over connections to both; every
message must get exactly one notification at the sink across the two nodes, and
each node must have sealed the messages it took. No timing; exit 1 otherwise.
"""

import argparse
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from benchlib import BenchError, free_port, log, wait_port  # noqa: E402

# The relay bench's load tools (smtp-sink counting, smtp-source blasts, a small SMTP
# client, notification parsing): one definition for both benches.
_spec = importlib.util.spec_from_file_location("relay_bench", os.path.join(here, "..", "relay", "bench.py"))
relay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(relay)

SENDER = relay.SENDER
BUCKET = "sealpost-two-nodes"


def psql(url, sql):
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"psql failed: {r.stderr.strip()}")
    return r.stdout


def with_database(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


class Node:
    """One `sealpost serve` with its own data folder, on the cluster's database and bucket."""

    def __init__(self, bench, cluster, name, sink_port):
        self.name = name
        self.dir = os.path.join(cluster.dir, name)
        os.makedirs(self.dir)
        self.relay_port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            SEALPOST_DATA_DIR=os.path.join(self.dir, "data"),
            SEALPOST_PUBLIC_URL="https://localhost:8443",
            SEALPOST_DATABASE_URL=cluster.db_url,
            SEALPOST_BLOBS_URL=cluster.blobs_url,
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
        self.bench = bench
        self.proc = None

    def cli(self, *argv):
        r = subprocess.run([self.bench.args.binary, *argv], env=self.env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise BenchError(f"sealpost {' '.join(argv)} ({self.name}) failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def start(self):
        self.proc = self.bench.spawn([self.bench.args.binary, "serve"], f"{self.name}-{os.path.basename(self.dir)}",
                                     env=self.env)

    def node_id(self):
        with open(os.path.join(self.dir, "data", "node-id")) as f:
            return f.read().strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """`count` nodes on a fresh database and a fresh prefix of the bucket."""

    def __init__(self, bench, label, count, sink_port):
        self.bench = bench
        self.dir = os.path.join(bench.work, label)
        os.makedirs(self.dir)
        self.db_name = f"sealpost_bench_{label.replace('-', '_')}_{os.getpid()}"
        psql(bench.args.postgres, f"DROP DATABASE IF EXISTS {self.db_name}")
        psql(bench.args.postgres, f"CREATE DATABASE {self.db_name}")
        bench.databases.append(self.db_name)
        self.db_url = with_database(bench.args.postgres, self.db_name)
        self.blobs_url = (f"s3://{BUCKET}/{label}?endpoint=http://127.0.0.1:{bench.moto_port}&allow_http=true"
                          "&region=us-east-1&access_key_id=bench&secret_access_key=bench")
        self.nodes = [Node(bench, self, f"node{i + 1}", sink_port) for i in range(count)]
        first = self.nodes[0]
        # Admin commands refuse a database that does not exist: migrate creates it.
        first.cli("migrate")
        first.cli("practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example")
        first.cli("user", "add", "--email", SENDER, "--name", "Dr Ada Lovelace", "--role", "doctor",
                  "--practice", "smiles.example", "--paid")
        # Every node holds the same keys (docs/operations.md, "Several nodes").
        for node in self.nodes[1:]:
            shutil.copytree(os.path.join(first.dir, "data", "keys"), os.path.join(node.dir, "data", "keys"))
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            wait_port(node.relay_port, node.proc, 120, f"sealpost {node.name}")

    def cpu_seconds(self):
        return sum(relay.cpu_seconds(node.proc.pid) for node in self.nodes)

    def stop(self):
        for node in self.nodes:
            node.stop()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.procs = []
        self.databases = []
        self.pidfile = os.path.join(self.work, "pids")

    tool = relay.Bench.tool

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
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        open(self.pidfile, "w").close()
        for name in self.databases:
            try:
                psql(self.args.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except (BenchError, subprocess.TimeoutExpired) as e:
                log(f"could not drop database {name}: {e}")

    def start_moto(self):
        self.moto_port = free_port()
        self.moto = self.spawn([self.args.moto, "-H", "127.0.0.1", "-p", str(self.moto_port)], "moto")
        wait_port(self.moto_port, self.moto, 60, "moto")
        req = urllib.request.Request(f"http://127.0.0.1:{self.moto_port}/{BUCKET}", method="PUT")
        urllib.request.urlopen(req, timeout=30).read()

    # ------------------------------------------------------------------ phases

    def throughput(self, sink, cluster, what):
        a = self.args
        per = a.messages // a.connections
        n = per * a.connections
        by_port = {}
        for i in range(a.connections):
            node = cluster.nodes[i % len(cluster.nodes)]
            rcpt = f"r{i}@patients.example"
            path = os.path.join(self.work, f"secure-{i}.eml")
            relay.message_file(path, rcpt, a.size, True)
            by_port.setdefault(node.relay_port, []).append((path, rcpt))
        rates, cpus = [], []
        for round_no in range(a.rounds):
            sink.clear()
            cpu0 = cluster.cpu_seconds()
            procs, start = [], time.monotonic()
            for port, files in by_port.items():
                for path, rcpt in files:
                    argv = [self.tool("smtp-source"), "-F", path, "-m", str(per), "-s", "1", "-f", SENDER,
                            "-t", rcpt, "-M", "bench.example", f"127.0.0.1:{port}"]
                    procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            for p in procs:
                _, err = p.communicate(timeout=a.timeout)
                if p.returncode != 0:
                    raise BenchError(f"smtp-source failed: {err.decode(errors='replace')[-500:]}")
            done = sink.wait(n, a.timeout, what)
            rate = n / (done - start)
            rates.append(rate)
            time.sleep(0.5)  # the last outcomes are written after the sink has the mail
            cpus.append((cluster.cpu_seconds() - cpu0) * 1000 / n)
            log(f"  {what} round {round_no + 1}: {n} messages in {done - start:.2f} s = {rate:.0f} msg/s, "
                f"{cpus[-1]:.2f} CPU ms/msg (all nodes)")
            if sink.count() != n:
                raise BenchError(f"{what}: {sink.count()} notifications at the sink, expected {n}")
        return statistics.median(rates), statistics.median(cpus)

    def smoke(self, sink, cluster):
        """Every message notified exactly once across both nodes; returns the problems."""
        problems = 0
        conns = [relay.Smtp(node.relay_port) for node in cluster.nodes for _ in range(2)]
        ids_by_conn = {}
        for n in range(16):
            rcpt = f"r{n % 4}@patients.example"
            k = n % len(conns)
            _, reply = conns[k].send(rcpt, relay.secure_data(rcpt, 2000, f"S{n}"))
            ids_by_conn.setdefault(k, []).append(relay.sealed_id(reply))
        for c in conns:
            c.close()
        ids = [i for k in sorted(ids_by_conn) for i in ids_by_conn[k]]
        sink.wait(len(ids), self.args.timeout, "smoke")
        time.sleep(2.0)  # anything sent twice would be there by now
        seen = {}
        for path in sink.files():
            for ident in relay.notification_ids(path):
                seen[ident] = seen.get(ident, 0) + 1
        for ident in ids:
            if seen.get(ident) != 1:
                log(f"  secure {ident}: {seen.get(ident, 0)} notifications")
                problems += 1
        if sink.count() != len(ids):
            log(f"  {sink.count()} mails at the sink, expected {len(ids)}")
            problems += 1
        # Each node sealed what it took (its spool is its own), and the deliveries
        # were recorded sent once each, by whichever node claimed them.
        db = cluster.db_url
        sealed = int(psql(db, "SELECT COUNT(*) FROM messages WHERE state = 'sealed'").strip())
        spool = int(psql(db, "SELECT COUNT(*) FROM spool").strip())
        sent = psql(db, "SELECT claimed_by, COUNT(*) FROM outbound WHERE state = 'sent' GROUP BY claimed_by").split()
        per_node = dict(line.split("|") for line in sent)
        if sealed != len(ids) or spool != 0:
            log(f"  {sealed} messages sealed and {spool} still spooled, expected {len(ids)} and 0")
            problems += 1
        if sum(int(v) for v in per_node.values()) != len(ids):
            log(f"  deliveries sent: {per_node}, expected {len(ids)} in all")
            problems += 1
        names = {node.node_id(): node.name for node in cluster.nodes}
        if len(names) != len(cluster.nodes):
            log(f"  the nodes share a node id: {names}")
            problems += 1
        spread = ", ".join(f"{names.get(k, k)} {v}" for k, v in sorted(per_node.items()))
        log(f"smoke: {len(ids)} secure messages over {len(conns)} connections to {len(cluster.nodes)} nodes "
            f"(notifications sent by {spread}); "
            f"{'each notified exactly once' if problems == 0 else f'{problems} problems'}")
        return problems

    def run(self):
        a = self.args
        self.start_moto()
        sink = relay.Sink(self)
        if a.smoke:
            cluster = Cluster(self, "smoke", 2, sink.port)
            try:
                return 1 if self.smoke(sink, cluster) else 0
            finally:
                cluster.stop()
        log(f"{a.messages} secure messages of {a.size // 1024} KB over {a.connections} connections, "
            f"{a.rounds} rounds (median); PostgreSQL + S3 (moto); load {os.getloadavg()[0]:.2f}, "
            f"{os.cpu_count()} CPUs")
        results = {}
        for count in (1, 2):
            label = f"{count}-node" if count == 1 else f"{count}-nodes"
            cluster = Cluster(self, label, count, sink.port)
            try:
                results[count] = self.throughput(sink, cluster, label)
            finally:
                cluster.stop()
        log("")
        log("| nodes | msgs/s | vs one node | CPU ms/msg (all nodes) |")
        log("|---|---|---|---|")
        for count, (rate, cpu) in results.items():
            log(f"| {count} | {rate:.0f} | {rate / results[1][0]:.2f} | {cpu:.2f} |")
        log(f"load average after: {os.getloadavg()[0]:.2f}")
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--postgres", required=True, help="a PostgreSQL URL to create throwaway databases with")
    p.add_argument("--moto", required=True, help="moto_server")
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--size", type=int, default=10240, help="body bytes per message")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=int, default=300, help="seconds any one step may take")
    p.add_argument("--smoke", action="store_true")
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
