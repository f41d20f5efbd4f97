//! TLS-RPT (RFC 8460) end to end: with `outbound.tls_reports` on, a delivery
//! under the `verify` policy whose first MX host offers no STARTTLS and whose
//! second takes the mail over verified TLS is counted as one failure and one
//! success; `sealpost tlsrpt send` turns the day into a gzipped JSON report,
//! DKIM-signed with Ed25519 and RSA (dkimpy verifies both), and queues it to
//! the `mailto:` of the domain's `_smtp._tls` record, where the running server
//! delivers it; the counts are then gone.

use std::process::Command;

use super::delivery_mx::{MESSAGE, ZONE, as_sent, dkimpy_both, mx_instance, wait_until};
use super::mx_peers::{Knot, PostfixMx, Sink, TestCa, free_port};
use super::secure_send::send_via_relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_tls_outcomes_becomes_a_signed_gzipped_report_to_the_rua() {
    let zone = format!("{ZONE}\n_smtp._tls.partner IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@smiles.example\"\n");
    let knot = Knot::start("example.", &zone).await;
    let port = free_port(&["127.0.0.2", "127.0.0.3", "127.0.0.5"]);
    let ca = TestCa::new();
    // mx1 offers no STARTTLS (smtp-sink); mx2 has a certificate that verifies.
    let _plain = Sink::start("127.0.0.2", port, &[]).await;
    let mx2 = PostfixMx::start("127.0.0.3", port, "partner.example", ca.issue("mx2.partner.example")).await;
    let smiles = Sink::start("127.0.0.5", port, &[]).await;
    let keys = tempfile::tempdir().unwrap();
    let (rsa, ed, ca_file) = (
        keys.path().join("rsa.key"),
        keys.path().join("ed.key"),
        keys.path().join("ca.pem"),
    );
    let rsa_record = gateway::dkim::generate(&rsa).unwrap();
    let ed_record = gateway::dkim::generate_ed25519(&ed).unwrap();
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let dns = knot.addr.to_string();
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.tls_reports = true;
        c.outbound.tls_ca_file = Some(ca_file.clone());
        c.outbound
            .tls_policies
            .insert("partner.example".into(), "verify".into());
        c.dkim.domain = "gateway.example".into();
        c.dkim.selector = "r1".into();
        c.dkim.key = Some(rsa.clone());
        c.dkim.ed25519_selector = "e1".into();
        c.dkim.ed25519_key = Some(ed.clone());
        c.outbound.from_address = "tls-reports@gateway.example".into();
        c.smtp.hostname = "mail.gateway.example".into();
    })
    .await;
    send_via_relay(&instance, "staff@smiles.example", &["vendor@partner.example"], MESSAGE)
        .await
        .unwrap();
    mx2.wait_for_log("status=sent").await;
    let store = std::sync::Arc::clone(instance.store());
    wait_until("the delivery is recorded", async || {
        store.queue().outbound_counts().await.unwrap() == (0, 1, 0)
    })
    .await;
    let day = store.now().div_euclid(86_400);
    assert_eq!(store.queue().tls_sessions_until(day).await.unwrap().len(), 2);

    let config = &instance.config;
    let run = |through: &str| {
        Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(["tlsrpt", "send", "--through", through])
            .env_remove("SEALPOST_CONFIG")
            .env("SEALPOST_DATA_DIR", &config.data_dir)
            .env("SEALPOST_DATABASE_URL", config.database_url())
            .env("SEALPOST_OUTBOUND_DNS_SERVERS", format!("[\"{dns}\"]"))
            .env("SEALPOST_OUTBOUND_FROM_ADDRESS", "tls-reports@gateway.example")
            .env("SEALPOST_SMTP_HOSTNAME", "mail.gateway.example")
            .env("SEALPOST_DKIM_DOMAIN", "gateway.example")
            .env("SEALPOST_DKIM_SELECTOR", "r1")
            .env("SEALPOST_DKIM_KEY", &rsa)
            .env("SEALPOST_DKIM_ED25519_SELECTOR", "e1")
            .env("SEALPOST_DKIM_ED25519_KEY", &ed)
            .env("SEALPOST_LOG", "error")
            .output()
            .unwrap()
    };
    let bad = run("2027-02-30");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a date"));
    let sent = run("2099-12-31");
    let out = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(sent.status.success(), "{out}{}", String::from_utf8_lossy(&sent.stderr));
    assert!(out.contains("1 report(s) queued"), "{out}");
    assert!(
        store.queue().tls_sessions_until(day).await.unwrap().is_empty(),
        "reported: forgotten"
    );

    let report = as_sent(&smiles.wait_for(1).await.remove(0));
    let text = String::from_utf8_lossy(&report).into_owned();
    assert!(
        text.contains("X-Rcpt-Args: <tlsrpt@smiles.example>")
            || text.contains("To: tlsrpt@smiles.example")
            || text.contains("<tlsrpt@smiles.example>"),
        "{text}"
    );
    assert!(text.contains("TLS-Report-Domain: partner.example"), "{text}");
    assert!(
        text.contains("report-type=\"tlsrpt\"") || text.contains("report-type=tlsrpt"),
        "{text}"
    );
    let records = [
        ("e1._domainkey.gateway.example.", ed_record.as_str()),
        ("r1._domainkey.gateway.example.", rsa_record.as_str()),
    ];
    assert_eq!(dkimpy_both(&report, records), "pass pass", "{text}");

    let parsed = mail_parser::MessageParser::default().parse(&report).unwrap();
    let attachment = parsed.attachment(0).expect("the gzipped report");
    let gz = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(gz.path(), attachment.contents()).unwrap();
    let json = Command::new("gzip").arg("-dc").arg(gz.path()).output().unwrap();
    assert!(json.status.success());
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["contact-info"], "tls-reports@gateway.example");
    let policies = json["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "{json:#}");
    assert_eq!(policies[0]["policy"]["policy-type"], "no-policy-found");
    assert_eq!(policies[0]["policy"]["policy-domain"], "partner.example");
    assert_eq!(policies[0]["summary"]["total-successful-session-count"], 1);
    assert_eq!(policies[0]["summary"]["total-failure-session-count"], 1);
    let failure = &policies[0]["failure-details"][0];
    assert_eq!(failure["result-type"], "starttls-not-supported");
    assert_eq!(failure["receiving-mx-hostname"], "mx1.partner.example");
    assert_eq!(failure["failed-session-count"], 1);
    // Nothing left to report: a second run queues nothing.
    let again = run("2099-12-31");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 report(s) queued"));
}
