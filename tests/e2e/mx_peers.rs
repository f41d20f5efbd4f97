//! Real peers for direct (MX) delivery: an authoritative DNS server (Knot, from
//! Debian's `knot` package) serving a zone the test writes, and receiving MTAs
//! (Postfix's `smtp-sink`) on loopback addresses 127.0.0.x and ::1, all on one
//! port as MX hosts are all on port 25. Each is stopped when dropped.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port free for TCP on 127.0.0.1 and on each of `ips`.
pub fn free_port(ips: &[&str]) -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let free = ips
            .iter()
            .all(|ip| TcpListener::bind(SocketAddr::new(ip.parse().unwrap(), port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no port free on every address");
}

/// `knotd` answering for one zone on 127.0.0.1 (UDP and TCP, a free port).
pub struct Knot {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// Serves `origin` (e.g. `example.`) with `records` (zone-file lines; the
    /// SOA and NS are added).
    pub async fn start(origin: &str, records: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let d = dir.path().display();
        let zone = format!(
            "$ORIGIN {origin}\n$TTL 60\n@ IN SOA ns admin 1 60 60 600 60\n@ IN NS ns\nns IN A 127.0.0.1\n{records}\n"
        );
        std::fs::write(dir.path().join("zone"), zone).unwrap();
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\ndatabase:\n    storage: \"{d}\"\n\
             log:\n  - target: stderr\n    any: warning\nzone:\n  - domain: {origin}\n    file: \"{d}/zone\"\n"
        );
        std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("knotd from Debian's knot package (see .ci/run)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let knot = Self { addr, child, _dir: dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return knot;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("knotd did not start: {}", knot.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `smtp-sink` on `ip:port` that writes each mail it takes to a file of its
/// own in its folder; `refuse` is its `-f` (5xx) or `-r` (4xx) option.
pub struct Sink {
    dir: tempfile::TempDir,
    ip: String,
    port: u16,
    child: Child,
}

impl Sink {
    pub async fn start(ip: &str, port: u16, refuse: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o777);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        let listen = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/mail.%H%M%S.", dir.path().display()))
            .args(refuse)
            .arg(listen)
            .arg("16")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink from Debian's postfix package (see .ci/run)");
        let sink = Self {
            dir,
            ip: ip.to_owned(),
            port,
            child,
        };
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("smtp-sink did not start on {}", sink.ip);
    }

    /// The mails taken so far (smtp-sink's `X-…-Args` lines first).
    pub fn mails(&self) -> Vec<String> {
        mails_in(self.dir.path())
    }

    /// Waits for `count` mails and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..600 {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} mails expected at {}:{}, got {:?}",
            count,
            self.ip,
            self.port,
            self.mails()
        );
    }
}

fn mails_in(dir: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mail."))
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned())
        // smtp-sink writes the file as the mail arrives: only whole ones.
        .filter(|mail| mail.contains("\n\n") || mail.contains("\r\n\r\n"))
        .collect()
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
