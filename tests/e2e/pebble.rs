//! Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), with its
//! mock DNS (`pebble-challtestsrv`) answering 127.0.0.1 for every name, so Pebble
//! validates HTTP-01 challenges against our loopback responder. Pebble's CA is
//! trusted only by the tests that ask for it. Both processes are killed on drop.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::process::Command as AsyncCommand;

/// A free loopback port (bound and released: Pebble needs numbers in its config).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Running Pebble and its DNS; killed on drop.
pub struct Pebble {
    pub dir: tempfile::TempDir,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA that signs Pebble's own HTTPS certificate (for `tls.acme_ca`).
    pub server_ca: PathBuf,
    /// Pebble's issuing root (fetched from its management port), for verifying
    /// the chains it issues.
    pub root: PathBuf,
    children: Vec<Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the `pebble` package is installed (`.ci/run` installs it).
pub fn installed() -> bool {
    Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists()
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `127.0.0.1:http_port`.
    pub async fn start(http_port: u16) -> Self {
        assert!(
            installed(),
            "pebble is not installed: apt-get install -y pebble (see .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        // Pebble's HTTPS certificate, from a CA of our own.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sealpost test pebble server CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let cert = params.signed_by(&key, &ca).unwrap();
        let server_ca = dir.path().join("server-ca.pem");
        std::fs::write(&server_ca, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

        let (acme_port, management_port, dns_port, dns_management_port, tls_port) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                // Real CAs name a revocation service in what they issue (testssl.sh
                // rates a certificate without one HIGH); Pebble runs none.
                "ocspResponderURL": format!("http://127.0.0.1:{management_port}/ocsp"),
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let base = dir.path().to_owned();
        let log = move |name: &str| std::fs::File::create(base.join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(log("dns.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pebble = Self {
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            server_ca,
            root: dir.path().join("root.pem"),
            dir,
            children: vec![dns],
        };
        let server = Command::new("pebble")
            .arg("-config")
            .arg(pebble.dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        pebble.children.push(server);
        // Ready when its management port hands out the issuing root.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{management_port}/roots/0");
        for _ in 0..300 {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                std::fs::write(&pebble.root, response.bytes().await.unwrap()).unwrap();
                return pebble;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pebble did not start: {}", pebble.log());
    }

    /// Pebble's output, for failure messages.
    pub fn log(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect()
    }
}

/// The certificate a TLS server at `127.0.0.1:port` presents to `openssl s_client`
/// (with `-starttls smtp` when asked), as its SHA-256 fingerprint, and whether
/// the chain it sends verifies against `root` (if given) for `name`.
pub async fn served(port: u16, starttls: Option<&str>, name: &str, root: Option<&Path>) -> (String, bool) {
    let mut command = AsyncCommand::new("openssl");
    command
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            name,
        ])
        .args(["-verify_hostname", name]);
    if let Some(root) = root {
        command.arg("-CAfile").arg(root);
    }
    if let Some(protocol) = starttls {
        command.args(["-starttls", protocol]);
    }
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from port {port}: {text}"));
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + "-----END CERTIFICATE-----".len();
    let verified = text.contains("Verify return code: 0 (ok)");
    (fingerprint(&text[begin..end]).await, verified)
}

/// The SHA-256 fingerprint of the first certificate in `pem`, as openssl prints it.
pub async fn fingerprint(pem: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut child = AsyncCommand::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(pem.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains('='), "openssl x509: {text}");
    text.trim().to_owned()
}
