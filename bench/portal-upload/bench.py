#!/usr/bin/env python3
"""Portal upload benchmark: one file uploaded through the portal's resumable
upload endpoint (tus 1.0: POST /uploads, PATCH, HEAD) and downloaded back
(GET /uploads/{id}), compared in the same run with nginx receiving the same
file (WebDAV PUT) and serving it, over HTTPS on this machine, with the same
client. Prints throughput both ways, the ratio, and Sealpost's peak RSS.
--smoke: a small file, a PATCH cut mid-way and resumed, correctness only.
Standard library only; started by run.sh (see README.md)."""

import argparse
import hashlib
import http.client
import http.cookiejar
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import base64

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import BenchError, log, free_port, wait_port  # noqa: E402

MB = 1_000_000
EMAIL = "ada@smiles.example"
PASSWORD = "Bench-Upload-1234"
PIECE = 1 << 20


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Peak(threading.Thread):
    """Samples a process's VmRSS; VmHWM (the kernel's own peak) is read at the end."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kb, self.stop_event = pid, 0, threading.Event()

    def field(self, name):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(name + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def run(self):
        while not self.stop_event.is_set():
            self.max_kb = max(self.max_kb, self.field("VmRSS") or 0)
            self.stop_event.wait(0.1)


def make_file(path, size):
    """Random bytes (so nothing compresses); returns the SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * PIECE))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def send_body(conn, path, start, stop):
    with open(path, "rb") as f:
        f.seek(start)
        left = stop - start
        while left:
            chunk = f.read(min(PIECE, left))
            if not chunk:
                raise BenchError("the file ended early")
            conn.send(chunk)
            left -= len(chunk)


class Portal:
    """A signed-in portal client (cookie and CSRF token) speaking tus."""

    def __init__(self, port):
        self.port = port
        self.cookie = ""
        self.csrf = ""

    def conn(self, timeout=900):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=tls(), timeout=timeout)

    def request(self, method, path, headers=None, body=None):
        c = self.conn()
        h = {"Cookie": self.cookie, "Tus-Resumable": "1.0.0", "X-CSRF-Token": self.csrf}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def sign_in(self, set_password_link):
        ctx = tls()
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(jar))
        link = re.sub(r"^https://[^/]+", f"https://127.0.0.1:{self.port}", set_password_link)
        data = urllib.parse.urlencode({"password": PASSWORD, "confirm": PASSWORD}).encode()
        opener.open(urllib.request.Request(link, data=data, method="POST"), timeout=60).read()
        if not any(c.name == "sealpost_session" for c in jar):
            raise BenchError("no session after setting the password")
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        page = opener.open(f"https://127.0.0.1:{self.port}/uploads/new", timeout=60).read().decode()
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        if not m:
            raise BenchError("no CSRF token on /uploads/new")
        self.csrf = m.group(1)

    def create(self, name, length):
        meta = "filename " + base64.b64encode(name.encode()).decode()
        r, body = self.request("POST", "/uploads", {"Upload-Length": str(length), "Upload-Metadata": meta})
        if r.status != 201:
            raise BenchError(f"POST /uploads: {r.status} {body[:300]!r}")
        return r.getheader("Location")

    def offset(self, location):
        r, _ = self.request("HEAD", location)
        if r.status != 200:
            raise BenchError(f"HEAD {location}: {r.status}")
        return int(r.getheader("Upload-Offset"))

    def patch(self, location, path, start, stop, cut=False):
        """PATCHes bytes [start, stop) of the file; `cut` closes the connection
        after sending them instead of finishing the body. Returns seconds."""
        t0 = time.perf_counter()
        c = self.conn()
        c.putrequest("PATCH", location, skip_accept_encoding=True)
        total = os.path.getsize(path)
        for k, v in {
            "Cookie": self.cookie, "Tus-Resumable": "1.0.0", "X-CSRF-Token": self.csrf,
            "Upload-Offset": str(start), "Content-Type": "application/offset+octet-stream",
            "Content-Length": str((total if cut else stop) - start),
        }.items():
            c.putheader(k, v)
        c.endheaders()
        send_body(c, path, start, stop)
        if cut:
            c.sock.shutdown(socket.SHUT_WR)
            c.close()
            return time.perf_counter() - t0
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 204 or int(r.getheader("Upload-Offset")) != stop:
            raise BenchError(f"PATCH {location}: {r.status} offset {r.getheader('Upload-Offset')}")
        return time.perf_counter() - t0


def download(port, path, headers, expect):
    """GETs path, reading into one buffer (no disk write); returns (seconds, sha256)."""
    t0 = time.perf_counter()
    c = http.client.HTTPSConnection("127.0.0.1", port, context=tls(), timeout=900)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    if r.status != 200:
        raise BenchError(f"GET {path}: {r.status}")
    digest = hashlib.sha256()
    buf = bytearray(PIECE)
    n = 0
    hashing = expect is not None
    while True:
        k = r.readinto(buf)
        if not k:
            break
        if hashing:
            digest.update(memoryview(buf)[:k])
        n += k
    dt = time.perf_counter() - t0
    c.close()
    return dt, n, digest.hexdigest() if hashing else None


NGINX_CONF = """
{user}
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    sendfile on;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location / {{ dav_methods PUT; create_full_put_path on; default_type application/octet-stream; }}
    }}
}}
"""


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.procs = []
        self.pidfile = os.path.join(self.work, "pids")

    def spawn(self, argv, name, **kw):
        out = open(os.path.join(self.work, f"{name}.log"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        with open(self.pidfile, "a") as f:  # run.sh's trap ends these by id
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

    def cli(self, *argv):
        r = subprocess.run([self.args.binary, *argv], env=self.env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"sealpost {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def run(self):
        a = self.args
        size = a.size
        port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            SEALPOST_DATA_DIR=os.path.join(self.work, "data"),
            SEALPOST_PUBLIC_URL=f"https://localhost:{port}",
            SEALPOST_PORTAL_LISTEN=f"127.0.0.1:{port}",
            SEALPOST_SMTP_RELAY_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_SMTP_SUBMISSION_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_IMAP_TLS_LISTEN=f"127.0.0.1:{free_port()}",
            SEALPOST_TWO_STEP_REQUIRED="false",
            SEALPOST_UPLOADS_MAX_MESSAGE_SIZE=f"{max(size, 1000)}B",
            SEALPOST_PORTAL_CLIENT_TIMEOUT="900",
        )
        self.cli("migrate")  # admin commands refuse a database that does not exist
        self.cli("practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example")
        out = self.cli("user", "add", "--email", EMAIL, "--name", "Dr Ada", "--role", "doctor", "--practice", "smiles.example", "--paid")
        m = re.search(r"https://\S+/password/\S+", out)
        if not m:
            raise BenchError(f"no set-password link in:\n{out}")
        path = os.path.join(self.work, "www", "scan.pdf")
        os.makedirs(os.path.dirname(path))
        log(f"writing a {size / MB:g} MB file of random bytes")
        sha = make_file(path, size)

        log("starting sealpost serve")
        server = self.spawn([a.binary, "serve"], "sealpost", env=self.env)
        wait_port(port, server, 60, "sealpost portal")
        peak = Peak(server.pid)
        peak.start()
        portal = Portal(port)
        portal.sign_in(m.group(0))
        res = {}

        location = portal.create("scan.pdf", size)
        if a.smoke:
            # Cut the PATCH after ~60%, ask where it stands, resume.
            cut = size * 6 // 10
            portal.patch(location, path, 0, cut, cut=True)
            deadline = time.monotonic() + 30
            at = 0
            while at == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
                at = portal.offset(location)
            if not (0 < at <= cut and at % 65536 == 0):
                raise BenchError(f"after a cut at {cut} the server stands at {at}")
            log(f"cut at {cut}, resuming from the last sealed byte {at}")
            portal.patch(location, path, at, size)
        else:
            log("sealpost: uploading (one PATCH)")
            res["sp_up"] = portal.patch(location, path, 0, size)
        if portal.offset(location) != size:
            raise BenchError("the upload is not complete")
        log("sealpost: downloading")
        res["sp_down"], n, got = download(port, location, {"Cookie": portal.cookie}, sha if a.smoke or a.verify else None)
        if n != size or (got is not None and got != sha):
            raise BenchError(f"the download differs: {n} bytes, sha256 {got} (sent {sha})")
        peak.stop_event.set()
        res["hwm_kb"] = peak.field("VmHWM") or peak.max_kb
        res["sampled_kb"] = peak.max_kb
        if a.smoke:
            log(f"smoke: byte-identical after a cut and resume; peak RSS {res['hwm_kb'] / 1024:.1f} MiB")
            return res

        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx:
            ng_dir = os.path.join(self.work, "nginx")
            os.makedirs(os.path.join(ng_dir, "tmp"))
            os.makedirs(os.path.join(ng_dir, "www"))
            ng_port = free_port()
            certs = os.path.join(self.work, "data", "certs")
            with open(os.path.join(ng_dir, "nginx.conf"), "w") as f:
                f.write(NGINX_CONF.format(
                    user="user root root;" if os.geteuid() == 0 else "", dir=ng_dir, port=ng_port,
                    cert=os.path.join(certs, "server.crt"), key=os.path.join(certs, "server.key"),
                    root=os.path.join(ng_dir, "www")))
            ng = self.spawn([nginx, "-p", ng_dir, "-c", os.path.join(ng_dir, "nginx.conf"), "-e", os.path.join(ng_dir, "error.log")], "nginx")
            wait_port(ng_port, ng, 30, "nginx")
            log("nginx: receiving (PUT)")
            t0 = time.perf_counter()
            c = http.client.HTTPSConnection("127.0.0.1", ng_port, context=tls(), timeout=900)
            c.putrequest("PUT", "/scan.pdf", skip_accept_encoding=True)
            c.putheader("Content-Length", str(size))
            c.endheaders()
            send_body(c, path, 0, size)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status not in (201, 204):
                raise BenchError(f"nginx PUT: {r.status}")
            # nginx does not fsync; Sealpost's PATCH answers only once the file is durable.
            res["ng_up"] = time.perf_counter() - t0
            log("nginx: serving")
            res["ng_down"], n, _ = download(ng_port, "/scan.pdf", {}, None)
            if n != size:
                raise BenchError(f"nginx served {n} bytes")
        return res


def report(res, size):
    mbps = lambda s: size / MB / s
    print()
    print(f"file: {size / MB:g} MB, one PATCH up, one GET down, HTTPS on 127.0.0.1, same Python client")
    print(f"{'':24}{'Sealpost':>12}{'nginx':>12}{'ratio':>8}")
    for label, sp, ng in (("upload (MB/s)", "sp_up", "ng_up"), ("download (MB/s)", "sp_down", "ng_down")):
        s = mbps(res[sp])
        if ng in res:
            n = mbps(res[ng])
            print(f"{label:24}{s:12.1f}{n:12.1f}{s / n:8.2f}   goal >= 0.8: {'PASS' if s / n >= 0.8 else 'FAIL'}")
        else:
            print(f"{label:24}{s:12.1f}{'(no nginx)':>12}")
    hwm = res["hwm_kb"] / 1024
    print(f"Sealpost peak RSS (VmHWM): {hwm:.1f} MiB   goal < 100 MB: {'PASS' if hwm * 1.048576 < 100 else 'FAIL'}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--size", type=int, default=2_000_000_000, help="file size in bytes (default 2 GB)")
    p.add_argument("--smoke", action="store_true", help="a 1 MB file cut and resumed; correctness only")
    p.add_argument("--verify", action="store_true", help="hash the download in the full run too")
    a = p.parse_args()
    if a.smoke:
        a.size = 1_000_000 + 12_345
    bench = Bench(a)
    try:
        res = bench.run()
    except BenchError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    if a.smoke:
        print("smoke: 1 passed, 0 failed")
    else:
        report(res, a.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
