//! The admin listener: `/healthz`, `/readyz` (and what it says when a
//! dependency is gone), and `/metrics` scraped from a real `sealpost serve`
//! process (its own counters, so they can be counted exactly): a secure
//! message accepted, sealed and its notification delivered, a refused SMTP
//! command, failed sign-ins up to a lockout, queue gauges and latency
//! histograms — and no address, subject or canary anywhere in the scrape or
//! the JSON logs.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::{Instance, RawSmtp, browser, csrf_in};
use super::secure_send::{canary, secure_message};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the sample `name` (with its labels, exactly as scraped).
fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_what_is_missing_and_healthz_stays_up() {
    let instance = Instance::start_with(|c| c.admin.listen = "127.0.0.1:0".into()).await;
    let admin = instance.running.admin.expect("the admin listener is on");
    let (status, body) = get(&format!("http://{admin}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    for check in ["database: ok", "migrations: ok", "object_store: ok", "keys: ok"] {
        assert!(body.contains(check), "{check} in {body}");
    }
    // The key store gone (a lost mount): not ready, and it says which part.
    let keys = instance.config.data_dir.join("keys");
    let moved = instance.config.data_dir.join("keys-away");
    std::fs::rename(&keys, &moved).unwrap();
    let (status, body) = get(&format!("http://{admin}/readyz")).await;
    std::fs::rename(&moved, &keys).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(body.contains("keys: cannot read the key store"), "{body}");
    assert!(body.contains("database: ok"), "{body}");
    let (status, _) = get(&format!("http://{admin}/healthz")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(status, 200);
    // Unknown paths: 404, nothing else served there.
    let (status, _) = get(&format!("http://{admin}/m/1")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_admin_address_is_refused_with_its_key() {
    let problems =
        sealpost::config::Config::load(None, [("SEALPOST_ADMIN_LISTEN".to_owned(), "metrics-host".to_owned())])
            .unwrap_err();
    assert!(
        problems.iter().any(|p| p.starts_with("admin.listen \"metrics-host\"")),
        "{problems:?}"
    );
    let problems =
        sealpost::config::Config::load(None, [("SEALPOST_LOG_FORMAT".to_owned(), "xml".to_owned())]).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("log.format")), "{problems:?}");
}

/// A `sealpost serve` child process, killed if the test ends early.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sealpost(dir: &Path, ports: &[(&str, u16)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", dir.join("data"))
        .env("SEALPOST_LOG_FORMAT", "json")
        .env("SEALPOST_LOG", "info");
    for (variable, port) in ports {
        command.env(variable, format!("127.0.0.1:{port}"));
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_mail_signins_and_lockouts_without_naming_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [
        ("SEALPOST_SMTP_RELAY_LISTEN", free_port()),
        ("SEALPOST_SMTP_SUBMISSION_LISTEN", free_port()),
        ("SEALPOST_IMAP_LISTEN", free_port()),
        ("SEALPOST_IMAP_TLS_LISTEN", free_port()),
        ("SEALPOST_PORTAL_LISTEN", free_port()),
        ("SEALPOST_ADMIN_LISTEN", free_port()),
    ];
    let port = |name: &str| ports.iter().find(|(n, _)| *n == name).unwrap().1;
    let admin = format!("http://127.0.0.1:{}", port("SEALPOST_ADMIN_LISTEN"));
    for args in [
        &["migrate"][..],
        &["practice", "add", "--name", "Smiles", "--domain", "smiles.example"],
        &[
            "user",
            "add",
            "--email",
            "ada@smiles.example",
            "--name",
            "Dr Ada",
            "--role",
            "doctor",
            "--practice",
            "smiles.example",
            "--paid",
        ],
    ] {
        let output = sealpost(dir.path(), &ports).args(args).output().unwrap();
        assert!(output.status.success(), "sealpost {args:?}: {output:?}");
    }
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _serve = Serve(
        sealpost(dir.path(), &ports)
            .env(
                "SEALPOST_PUBLIC_URL",
                format!("https://localhost:{}", port("SEALPOST_PORTAL_LISTEN")),
            )
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..600 {
        if reqwest::get(format!("{admin}/healthz")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the admin listener did not answer within 60 s");

    // One secure message with a canary, through to its notification.
    let secret = canary();
    let relay: SocketAddr = format!("127.0.0.1:{}", port("SEALPOST_SMTP_RELAY_LISTEN"))
        .parse()
        .unwrap();
    let message = secure_message("pat@patient.example", &secret, b"%PDF-1.4 scan", None);
    let mut smtp = RawSmtp::connect(relay).await;
    smtp.cmd("EHLO client.example", "250").await;
    // A command out of order: refused with 503 5.5.1.
    smtp.cmd("RCPT TO:<pat@patient.example>", "503").await;
    smtp.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
    smtp.cmd("RCPT TO:<pat@patient.example>", "250").await;
    smtp.cmd("DATA", "354").await;
    let mut body = message.clone();
    body.extend_from_slice(b"\r\n.\r\n");
    smtp.send(&body).await;
    assert!(smtp.read_reply().await.starts_with("250"));

    let mut scrape = String::new();
    for _ in 0..600 {
        scrape = get(&format!("{admin}/metrics")).await.1;
        if sample(&scrape, r#"sealpost_deliveries_total{outcome="delivered"}"#) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(
            &scrape,
            r#"sealpost_smtp_accepted_total{listener="relay",kind="secure"}"#
        ),
        1.0,
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "sealpost_messages_sealed_total"), 1.0, "{scrape}");
    assert_eq!(
        sample(&scrape, r#"sealpost_deliveries_total{outcome="delivered"}"#),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, r#"sealpost_smtp_refused_total{status="5.5.1"}"#),
        1.0,
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "sealpost_seal_latency_seconds_count"), 1.0, "{scrape}");
    assert_eq!(
        sample(&scrape, "sealpost_notification_latency_seconds_count"),
        1.0,
        "{scrape}"
    );
    for queue in ["sealing", "notifications", "outbound"] {
        assert!(
            scrape.contains(&format!("sealpost_queue_depth{{queue=\"{queue}\"}} 0")),
            "{queue} drained: {scrape}"
        );
    }

    // Wrong passwords for Dr Ada until her account locks (5 by default).
    let portal = format!("https://127.0.0.1:{}", port("SEALPOST_PORTAL_LISTEN"));
    let http = browser();
    for _ in 0..6 {
        let form = http.get(format!("{portal}/signin")).send().await.unwrap();
        let csrf = csrf_in(&form.text().await.unwrap());
        http.post(format!("{portal}/signin"))
            .form(&[
                ("email", "ada@smiles.example"),
                ("password", "not her password"),
                ("next", "/inbox"),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
    }
    let scrape = get(&format!("{admin}/metrics")).await.1;
    assert_eq!(
        sample(&scrape, r#"sealpost_signins_total{outcome="failure"}"#),
        5.0,
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "sealpost_lockouts_total"), 1.0, "{scrape}");
    assert_eq!(
        sample(&scrape, r#"sealpost_signins_total{outcome="refused_locked"}"#),
        1.0,
        "{scrape}"
    );

    // Nobody is named: not in the scrape, not in the JSON logs.
    let logs = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    for text in [&scrape, &logs] {
        assert!(!text.contains(&secret), "the canary leaked");
        assert!(!text.contains("pat@patient.example"), "an address leaked");
        assert!(!text.contains("Lab results"), "a subject leaked");
    }
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "{logs}");
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
    }
}
