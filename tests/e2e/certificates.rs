//! Certificates: ACME issuance and renewal against Pebble, with the portal, SMTP
//! STARTTLS and IMAPS serving the issued certificate (checked with `openssl
//! s_client`); the file watch and SIGHUP swapping a rewritten pair; the
//! development certificate's validity.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::harness::Instance;
use super::pebble::{Pebble, fingerprint, free_port, served};

const DOMAIN: &str = "mail.sealpost.test";

/// Waits until every listener serves the certificate with `expected` fingerprint.
async fn wait_until_served(instance: &Instance, expected: &str, root: Option<&Path>) {
    let a = instance.running.addresses;
    for (port, starttls) in [
        (a.portal.port(), None),
        (a.relay.port(), Some("smtp")),
        (a.imap_tls.port(), None),
    ] {
        let mut last = String::new();
        for _ in 0..600 {
            let (print, verified) = served(port, starttls, DOMAIN, root).await;
            if print == expected {
                assert!(
                    root.is_none() || verified,
                    "port {port}: the chain does not verify for {DOMAIN}"
                );
                last.clear();
                break;
            }
            last = print;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last.is_empty(), "port {port} still serves {last}, not {expected}");
    }
}

/// The fingerprint of the certificate in a PEM file, once the file is there.
async fn file_fingerprint(path: &Path, pebble: &Pebble) -> String {
    for _ in 0..1200 {
        if let Ok(pem) = std::fs::read_to_string(path)
            && pem.contains("-----END CERTIFICATE-----")
        {
            return fingerprint(&pem).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no certificate at {}: {}\n{}",
        path.display(),
        pebble.log(),
        super::harness::logs()
    );
}

#[tokio::test]
async fn acme_issues_and_renews_the_certificate_of_every_listener_without_restart() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port).await;
    let instance = Instance::start_with(|c| {
        c.tls.acme_domains = vec![DOMAIN.to_owned()];
        c.tls.acme_directory = pebble.directory.clone();
        c.tls.acme_ca = Some(pebble.server_ca.clone());
        c.tls.acme_contact = vec!["mailto:it@sealpost.test".to_owned()];
        c.tls.acme_http_listen = format!("127.0.0.1:{http_port}");
    })
    .await;
    let acme_dir = instance.config.acme_dir();
    let issued = file_fingerprint(&acme_dir.join("cert.pem"), &pebble).await;
    wait_until_served(&instance, &issued, Some(&pebble.root)).await;

    // Account key and issued key are for the owner only.
    #[cfg(unix)]
    for file in ["account.json", "key.pem"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(acme_dir.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let first = instance.running.certificates.serving().unwrap();
    assert_eq!(first.dns_names, vec![DOMAIN.to_owned()]);

    // Not due yet: a nudge changes nothing.
    instance.running.certificates.nudge_renewal();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(instance.running.certificates.serving().unwrap().serial, first.serial);

    // Move the server's clock to the renewal time (30 days before expiry).
    let renew_at = first.not_after - 30 * 86_400;
    instance.clock.advance(renew_at - store::Clock::now(&*instance.clock));
    instance.running.certificates.nudge_renewal();
    let mut renewed = issued.clone();
    for _ in 0..1200 {
        renewed = fingerprint(&std::fs::read_to_string(acme_dir.join("cert.pem")).unwrap()).await;
        if renewed != issued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(renewed, issued, "no renewal: {}", pebble.log());
    wait_until_served(&instance, &renewed, Some(&pebble.root)).await;
    assert_ne!(instance.running.certificates.serving().unwrap().serial, first.serial);

    // A restart keeps the issued certificate (no new order at start).
    let stopped = instance.stop().await;
    let instance = stopped.start().await;
    wait_until_served(&instance, &renewed, Some(&pebble.root)).await;
    drop(pebble);
}

/// A self-signed pair for `name` written over `cert` and `key`; its fingerprint.
async fn write_pair(cert: &Path, key: &Path, name: &str) -> String {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    std::fs::write(key, generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(cert, generated.cert.pem()).unwrap();
    fingerprint(&generated.cert.pem()).await
}

#[tokio::test]
async fn rewritten_certificate_files_are_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let first = write_pair(&cert, &key, DOMAIN).await;
    let instance = Instance::start_with(|c| {
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
        c.tls.watch_interval = 1;
    })
    .await;
    wait_until_served(&instance, &first, None).await;
    let second = write_pair(&cert, &key, DOMAIN).await;
    wait_until_served(&instance, &second, None).await;

    // A broken pair is refused; the working certificate stays.
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    assert!(instance.running.certificates.reload().is_err());
    wait_until_served(&instance, &second, None).await;
}

#[tokio::test]
async fn the_development_certificate_is_valid_for_at_most_397_days() {
    let instance = Instance::start().await;
    let info = instance.running.certificates.serving().unwrap();
    let days = (info.not_after - info.not_before) / 86_400;
    assert!((300..=397).contains(&days), "{days} days");
    // Dated by real time (clients check it so), not by the test's moved clock.
    let now = store::Clock::now(&store::SystemClock);
    assert!(info.not_before <= now && now < info.not_after);
}

/// Kills the child on drop (also when an assertion fails).
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sighup_makes_sealpost_serve_load_the_rewritten_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let first = write_pair(&cert, &key, DOMAIN).await;
    let config = dir.path().join("sealpost.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\
             [smtp]\nrelay_listen = \"127.0.0.1:0\"\nsubmission_listen = \"127.0.0.1:0\"\n\
             [imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n\
             [portal]\nlisten = \"127.0.0.1:0\"\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\nwatch_interval = 0\n",
            data = dir.path().join("data"),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("SEALPOST_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let serve = Serve(child);
    // The portal's and IMAPS's addresses from the start-up lines.
    let mut lines = BufReader::new(stdout).lines();
    let (mut portal, mut imaps) = (0u16, 0u16);
    let port_after = |text: &str, marker: &str| -> u16 {
        let rest = &text[text.find(marker).unwrap() + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    while portal == 0 || imaps == 0 {
        let line = lines.next().expect("sealpost serve exited").unwrap();
        if line.trim_start().starts_with("Portal") {
            portal = port_after(&line, "https://127.0.0.1:");
        } else if line.trim_start().starts_with("IMAP") {
            imaps = port_after(line.split(", ").nth(1).unwrap(), "127.0.0.1:");
        }
    }
    for port in [portal, imaps] {
        assert_eq!(served(port, None, DOMAIN, None).await.0, first);
    }

    let second = write_pair(&cert, &key, DOMAIN).await;
    // No watch: the old certificate is still served until SIGHUP.
    assert_eq!(served(portal, None, DOMAIN, None).await.0, first);
    let pid = serve.0.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    for port in [portal, imaps] {
        let mut now = String::new();
        for _ in 0..300 {
            now = served(port, None, DOMAIN, None).await.0;
            if now == second {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(now, second, "port {port} after SIGHUP");
    }
    drop(serve);
}
