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
        Self::start_with(origin, records, false).await
    }

    /// The same, DNSSEC-signed by knotd (its default policy: ECDSA P-256).
    pub async fn start_signed(origin: &str, records: &str) -> Self {
        Self::start_with(origin, records, true).await
    }

    async fn start_with(origin: &str, records: &str, signed: bool) -> Self {
        Self::start_zones(&[(origin, records, signed)]).await
    }

    /// Several zones on one server, each `(origin, records, signed)`: a signed
    /// parent can delegate to an unsigned child it serves too (`child IN NS
    /// ns`), whose answers DNSSEC then proves insecure.
    pub async fn start_zones(zones: &[(&str, &str, bool)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let d = dir.path().display();
        let mut conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\ndatabase:\n    storage: \"{d}\"\n\
             log:\n  - target: stderr\n    any: warning\nzone:\n"
        );
        for (n, (origin, records, signed)) in zones.iter().enumerate() {
            let zone = format!(
                "$ORIGIN {origin}\n$TTL 60\n@ IN SOA ns admin 1 60 60 600 60\n@ IN NS ns\nns IN A 127.0.0.1\n{records}\n"
            );
            std::fs::write(dir.path().join(format!("zone{n}")), zone).unwrap();
            conf.push_str(&format!("  - domain: {origin}\n    file: \"{d}/zone{n}\"\n"));
            if *signed {
                conf.push_str("    dnssec-signing: on\n");
            }
        }
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

    /// The zone's keys as DNSKEY records (a trust anchor file for
    /// hickory-resolver, which wants the signing key among them), once knotd
    /// has signed the zone.
    pub async fn trust_anchors(&self, origin: &str) -> String {
        for _ in 0..200 {
            let keys = self.key_signing_keys(origin);
            if !keys.is_empty() {
                return keys.join("\n") + "\n";
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no DNSKEY: {}", self.log());
    }

    fn key_signing_keys(&self, origin: &str) -> Vec<String> {
        let out = Command::new("kdig")
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string(), origin, "DNSKEY", "+short"])
            .output()
            .expect("kdig from Debian's knot-dnsutils (see .ci/run)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.starts_with("257 ") || line.starts_with("256 "))
            .map(|line| format!("{origin} 60 IN DNSKEY {line}"))
            .collect()
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

/// A test CA, and certificates it signs for host names.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sealpost test MX CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// `(certificate PEM, key PEM)` for `name`.
    pub fn issue(&self, name: &str) -> (String, String) {
        self.issue_for(&[name])
    }

    /// `(certificate PEM, key PEM)` for several names.
    pub fn issue_for(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let params = rcgen::CertificateParams::new(names).unwrap();
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

/// A throwaway Postfix receiving for `domain` on `ip:port` with STARTTLS and
/// the given certificate; it discards what it takes and logs each session's
/// TLS and each mail's status to its own maillog. (`inet_interfaces` stays
/// 127.0.0.1: Postfix refuses a loopback alias that is no interface address;
/// the listener's own address is in master.cf.)
pub struct PostfixMx {
    dir: tempfile::TempDir,
}

impl PostfixMx {
    pub async fn start(ip: &str, port: u16, domain: &str, cert: (String, String)) -> Self {
        Self::start_with(ip, port, domain, cert, "").await
    }

    /// [`start`](Self::start) with more `main.cf` lines (e.g. to hold mail).
    pub async fn start_with(ip: &str, port: u16, domain: &str, (cert, key): (String, String), extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        let root = dir.path().display().to_string();
        for sub in ["conf", "data", "queue"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("conf/cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("conf/key.pem"), key).unwrap();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").expect("Debian's postfix package (see .ci/run)");
        let master: Vec<String> = master
            .lines()
            .map(|line| {
                if line.starts_with("smtp ") && line.contains(" inet ") {
                    format!("{ip}:{port} inet n - n - - smtpd")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(dir.path().join("conf/master.cf"), master.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.path().join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6\nmyhostname = mx.{domain}\nmydestination =\nrelay_domains = {domain}\n\
inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nqueue_directory = {root}/queue\n\
data_directory = {root}/data\nsmtpd_tls_security_level = may\nsmtpd_tls_cert_file = {root}/conf/cert.pem\n\
smtpd_tls_key_file = {root}/conf/key.pem\nsmtpd_tls_loglevel = 1\nrelay_transport = discard\n\
default_transport = discard\nsmtp_dns_support_level = disabled\nmaillog_file = {root}/maillog\n\
maillog_file_prefixes = /tmp, /var\nalias_maps =\nalias_database =\nlocal_recipient_maps =\nrelay_recipient_maps =\n{extra}\n"
            ),
        )
        .unwrap();
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(dir.path().join("data"))
            .status()
            .unwrap();
        assert!(chown.success(), "chown to the postfix user (needs root)");
        let started = Command::new("postfix")
            .arg("-c")
            .arg(dir.path().join("conf"))
            .arg("start")
            .output()
            .expect("postfix installed");
        let postfix = Self { dir };
        assert!(
            started.status.success(),
            "postfix start failed: {}{}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr),
            postfix.log()
        );
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return postfix;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("postfix did not listen on {addr}: {}", postfix.log());
    }

    /// Each mail in the hold queue (with `header_checks = static:HOLD`), as
    /// `postcat` prints it: envelope, header and body.
    pub fn held(&self) -> Vec<String> {
        let hold = self.dir.path().join("queue/hold");
        let files = std::fs::read_dir(hold).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>());
        files
            .unwrap_or_default()
            .iter()
            .map(|file| {
                let out = Command::new("postcat")
                    .arg("-c")
                    .arg(self.dir.path().join("conf"))
                    .arg(file)
                    .output()
                    .expect("postcat (Debian's postfix package)");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    pub async fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..300 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Postfix never logged {needle:?}:\n{}", self.log());
    }
}

impl Drop for PostfixMx {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg("abort")
            .output();
    }
}

/// An HTTPS server on `ip:port` answering every request with `body` as
/// `text/plain` (an MTA-STS policy), with the given certificate.
pub struct PolicyServer {
    task: tokio::task::JoinHandle<()>,
}

impl PolicyServer {
    pub async fn start(ip: &str, port: u16, (cert, key): (String, String), body: &str) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip.parse().unwrap(), port))
            .await
            .unwrap();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, response) = (acceptor.clone(), response.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { task }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
