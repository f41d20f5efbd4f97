#!/usr/bin/env python3
"""Download-all benchmark: a message with N attachments (1 GB in all by
default) written in the portal (uploaded with tus, sent with /compose), then
GET /m/{id}/all.zip, the zip Sealpost writes while it decrypts. Compared in
the same run with the same files zipped on disk by Info-ZIP's `zip -0`
(stored, as Sealpost's entries are) and the zip served by nginx, over HTTPS
on this machine, with the same client. Prints throughput, the ratio, and
Sealpost's peak RSS (goal < 100 MB).
--smoke: three small files, the zip checked by Python's zipfile (every CRC,
every SHA-256); correctness only. Standard library (and the portal-upload
bench's client) only; started by run.sh (see README.md)."""

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
import zipfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, os.path.join(here, "..", "portal-upload"))
from benchlib import BenchError, log, free_port, wait_port  # noqa: E402
import bench as upload  # noqa: E402  (the portal-upload bench: client, nginx, RSS)

MB = 1_000_000
PATIENT = "pat@example.org"


def compose(portal, to, upload_ids):
    """Sends a message with the staged uploads; returns its path (/m/{id})."""
    boundary = uuid.uuid4().hex
    fields = [("csrf", portal.csrf), ("to", to), (f"role:{to}", "patient"),
              ("subject", "Bench scans"), ("body", "The files.")]
    fields += [("upload", u) for u in upload_ids]
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
        for k, v in fields) + f"--{boundary}--\r\n".encode()
    r, data = portal.request("POST", "/compose", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    location = r.getheader("Location") or ""
    if r.status in (302, 303) and re.match(r"^/m/[0-9a-f]{32}$", location):
        return location
    if r.status not in (302, 303) or location != "/sent":
        raise BenchError(f"POST /compose: {r.status} {location!r} {data[:400]!r}")
    # Large attachments are still being sealed: the message shows in Sent once they are.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        r, page = portal.request("GET", "/sent")
        m = re.search(rb'href="(/m/[0-9a-f]{32})"', page)
        if m:
            return m.group(1).decode()
        time.sleep(0.5)
    raise BenchError("the message never showed in Sent")


class Bench(upload.Bench):
    def run(self):
        a = self.args
        port = free_port()
        total = a.size
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
            SEALPOST_UPLOADS_MAX_MESSAGE_SIZE=f"{max(total * 2, 1000)}B",
            SEALPOST_PORTAL_CLIENT_TIMEOUT="900",
        )
        self.cli("migrate")  # admin commands refuse a database that does not exist
        self.cli("practice", "add", "--name", "Smiles Dental", "--domain", "smiles.example")
        out = self.cli("user", "add", "--email", upload.EMAIL, "--name", "Dr Ada", "--role", "doctor",
                       "--practice", "smiles.example", "--paid")
        m = re.search(r"https://\S+/password/\S+", out)
        if not m:
            raise BenchError(f"no set-password link in:\n{out}")
        files_dir = os.path.join(self.work, "files")
        os.makedirs(files_dir)
        sizes = [total // a.files + (1 if i < total % a.files else 0) for i in range(a.files)]
        names = [f"scan-{i + 1:02}.pdf" for i in range(a.files)]
        log(f"writing {a.files} files of random bytes, {total / MB:g} MB in all")
        shas = {n: upload.make_file(os.path.join(files_dir, n), s) for n, s in zip(names, sizes)}

        log("starting sealpost serve")
        server = self.spawn([a.binary, "serve"], "sealpost", env=self.env)
        wait_port(port, server, 60, "sealpost portal")
        portal = upload.Portal(port)
        portal.sign_in(m.group(0))
        ids = []
        for name, size in zip(names, sizes):
            location = portal.create(name, size)
            portal.patch(location, os.path.join(files_dir, name), 0, size)
            ids.append(location.rsplit("/", 1)[1])
        message = compose(portal, PATIENT, ids)
        log(f"sent {message}; measuring GET {message}/all.zip")
        # Peak RSS from here, sampled (VmHWM also covers the uploads: reported
        # apart, with the RSS the download started from).
        peak = upload.Peak(server.pid)
        peak.start()
        res = {"before_kb": peak.field("VmRSS") or 0}
        if a.smoke or a.verify:
            t0 = time.perf_counter()
            zip_bytes = fetch(port, f"{message}/all.zip", portal.cookie)
            res["sp"] = time.perf_counter() - t0
            check_zip(zip_bytes, shas)
        else:
            res["sp"], n, _ = upload.download(port, f"{message}/all.zip", {"Cookie": portal.cookie}, None)
            res["zip_bytes"] = n
        peak.stop_event.set()
        res["sampled_kb"] = peak.max_kb
        res["hwm_kb"] = peak.field("VmHWM") or peak.max_kb
        if a.smoke:
            log(f"smoke: the zip holds every file byte-identical; sampled peak RSS {res['sampled_kb'] / 1024:.1f} MiB")
            return res

        zip_tool = shutil.which("zip")
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if zip_tool and nginx:
            ng_dir = os.path.join(self.work, "nginx")
            os.makedirs(os.path.join(ng_dir, "tmp"))
            os.makedirs(os.path.join(ng_dir, "www"))
            log("zip -0: the same files on disk")
            t0 = time.perf_counter()
            subprocess.run([zip_tool, "-q", "-0", "-j", os.path.join(ng_dir, "www", "all.zip"),
                            *[os.path.join(files_dir, n) for n in names]], check=True)
            res["zip"] = time.perf_counter() - t0
            ng_port = free_port()
            certs = os.path.join(self.work, "data", "certs")
            with open(os.path.join(ng_dir, "nginx.conf"), "w") as f:
                f.write(upload.NGINX_CONF.format(
                    user="user root root;" if os.geteuid() == 0 else "", dir=ng_dir, port=ng_port,
                    cert=os.path.join(certs, "server.crt"), key=os.path.join(certs, "server.key"),
                    root=os.path.join(ng_dir, "www")))
            ng = self.spawn([nginx, "-p", ng_dir, "-c", os.path.join(ng_dir, "nginx.conf"),
                             "-e", os.path.join(ng_dir, "error.log")], "nginx")
            wait_port(ng_port, ng, 30, "nginx")
            log("nginx: serving the zip")
            res["ng"], n, _ = upload.download(ng_port, "/all.zip", {}, None)
            res["ng_bytes"] = n
        else:
            log("zip or nginx missing (apt-get install zip nginx): measuring Sealpost alone")
        return res


def fetch(port, path, cookie):
    c = upload.http.client.HTTPSConnection("127.0.0.1", port, context=upload.tls(), timeout=900)
    c.request("GET", path, headers={"Cookie": cookie})
    r = c.getresponse()
    if r.status != 200 or r.getheader("Content-Type") != "application/zip":
        raise BenchError(f"GET {path}: {r.status} {r.getheader('Content-Type')}")
    data = r.read()
    c.close()
    return data


def check_zip(data, shas):
    z = zipfile.ZipFile(io.BytesIO(data))
    bad = z.testzip()
    if bad is not None:
        raise BenchError(f"the zip's entry {bad} fails its CRC")
    got = {i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in z.infolist()}
    if got != shas:
        raise BenchError(f"the zip holds {sorted(got)}, differing from what was sent")


def report(res, total):
    mbps = lambda s: total / MB / s
    print()
    print(f"attachments: {total / MB:g} MB; one GET of the zip, HTTPS on 127.0.0.1, same Python client")
    sp = mbps(res["sp"])
    if "ng" in res:
        peer = res["zip"] + res["ng"]
        print(f"{'':40}{'seconds':>10}{'MB/s':>10}")
        print(f"{'Sealpost GET /m/{id}/all.zip':40}{res['sp']:10.2f}{sp:10.1f}")
        print(f"{'zip -0 on disk':40}{res['zip']:10.2f}{mbps(res['zip']):10.1f}")
        print(f"{'nginx serving that zip':40}{res['ng']:10.2f}{mbps(res['ng']):10.1f}")
        print(f"{'zip + nginx':40}{peer:10.2f}{mbps(peer):10.1f}")
        print(f"ratio (Sealpost / (zip + nginx)), throughput: {peer / res['sp']:.2f}")
    else:
        print(f"Sealpost: {res['sp']:.2f} s, {sp:.1f} MB/s (no peer)")
    peak = res["sampled_kb"] / 1024
    print(f"Sealpost peak RSS during the download (sampled every 0.1 s): {peak:.1f} MiB   "
          f"goal < 100 MB: {'PASS' if peak * 1.048576 < 100 else 'FAIL'}")
    print(f"(RSS when the download began: {res['before_kb'] / 1024:.1f} MiB; "
          f"VmHWM over the whole run, uploads included: {res['hwm_kb'] / 1024:.1f} MiB)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--size", type=int, default=1_000_000_000, help="all attachments together, bytes (default 1 GB)")
    p.add_argument("--files", type=int, default=10, help="how many attachments (default 10)")
    p.add_argument("--smoke", action="store_true", help="three small files; correctness only")
    p.add_argument("--verify", action="store_true", help="check the zip's contents in the full run too (holds it in memory)")
    a = p.parse_args()
    if a.smoke:
        a.size, a.files = 3_000_000 + 12_345, 3
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
