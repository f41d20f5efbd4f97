//! TLS to MX hosts against Postfix MX hosts with certificates the test makes:
//! under the `verify` policy a host with a certificate from the configured CA
//! gets the mail over TLS, and one whose certificate names another host gets
//! nothing; the same without any configured policy when the domain publishes
//! MTA-STS `enforce` (the policy served over HTTPS by the test); and with DANE
//! on, a DNSSEC-signed zone's DANE-EE TLSA record lets a certificate through
//! that no CA vouches for, and keeps another out.

use super::delivery_mx::{MESSAGE, ZONE, mx_instance, wait_until};
use super::mx_peers::{Knot, PolicyServer, PostfixMx, TestCa, free_port};
use super::secure_send::send_via_relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_policy_delivers_over_verified_tls_and_never_to_a_wrong_certificate() {
    let zone = format!("{ZONE}\nwrongcert IN MX 10 mx.wrongcert\nmx.wrongcert IN A 127.0.0.6\n");
    let knot = Knot::start("example.", &zone).await;
    let port = free_port(&["127.0.0.2", "127.0.0.6"]);
    let ca = TestCa::new();
    let partner = PostfixMx::start("127.0.0.2", port, "partner.example", ca.issue("mx1.partner.example")).await;
    // Signed by the trusted CA, but for another name.
    let wrong = PostfixMx::start("127.0.0.6", port, "wrongcert.example", ca.issue("mx.other.example")).await;
    let keys = tempfile::tempdir().unwrap();
    let ca_file = keys.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.tls_ca_file = Some(ca_file.clone());
        for domain in ["partner.example", "wrongcert.example"] {
            c.outbound.tls_policies.insert(domain.into(), "verify".into());
        }
    })
    .await;
    send_via_relay(
        &instance,
        "staff@smiles.example",
        &["vendor@partner.example", "x@wrongcert.example"],
        MESSAGE,
    )
    .await
    .unwrap();
    let log = partner.wait_for_log("status=sent").await;
    assert!(log.contains("to=<vendor@partner.example>"), "{log}");
    assert!(log.contains("TLS connection established from"), "over TLS: {log}");
    let store = std::sync::Arc::clone(instance.store());
    wait_until("the wrong certificate is refused", async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.len() == 1 && queued[0].attempts >= 1
    })
    .await;
    let queued = store.queue().list_outbound(false, 10).await.unwrap();
    assert_eq!(queued[0].rcpt_to, "x@wrongcert.example");
    assert_eq!(
        queued[0].last_error.as_deref(),
        Some("MX host TLS handshake"),
        "{queued:?}"
    );
    // The handshake failed before any mail command: nothing was sent in the clear.
    assert!(!wrong.log().contains("x@wrongcert.example"), "{}", wrong.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mta_sts_enforce_policy_over_https_refuses_a_certificate_that_does_not_match() {
    // Both domains publish an MTA-STS policy in enforce mode; nothing is
    // configured for them, so without the policy they would get opportunistic TLS
    // (which takes any certificate).
    let zone = format!(
        "{ZONE}\nwrongcert IN MX 10 mx.wrongcert\nmx.wrongcert IN A 127.0.0.6\n\
         _mta-sts.partner IN TXT \"v=STSv1; id=20261202\"\nmta-sts.partner IN A 127.0.0.7\n\
         _mta-sts.wrongcert IN TXT \"v=STSv1; id=20261202\"\nmta-sts.wrongcert IN A 127.0.0.7\n"
    );
    let knot = Knot::start("example.", &zone).await;
    let port = free_port(&["127.0.0.2", "127.0.0.6", "127.0.0.7"]);
    let ca = TestCa::new();
    let partner = PostfixMx::start("127.0.0.2", port, "partner.example", ca.issue("mx1.partner.example")).await;
    let wrong = PostfixMx::start("127.0.0.6", port, "wrongcert.example", ca.issue("mx.other.example")).await;
    let policy =
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.partner.example\r\nmx: mx.wrongcert.example\r\nmax_age: 86400\r\n";
    let names = ["mta-sts.partner.example", "mta-sts.wrongcert.example"];
    let _https = PolicyServer::start("127.0.0.7", port, ca.issue_for(&names), policy).await;
    let keys = tempfile::tempdir().unwrap();
    let ca_file = keys.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.tls_ca_file = Some(ca_file.clone());
        c.outbound.mta_sts_port = port;
    })
    .await;
    send_via_relay(
        &instance,
        "staff@smiles.example",
        &["vendor@partner.example", "x@wrongcert.example"],
        MESSAGE,
    )
    .await
    .unwrap();
    let log = partner.wait_for_log("status=sent").await;
    assert!(log.contains("to=<vendor@partner.example>"), "{log}");
    assert!(log.contains("TLS connection established from"), "over TLS: {log}");
    let store = std::sync::Arc::clone(instance.store());
    wait_until("the wrong certificate is refused", async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.len() == 1 && queued[0].attempts >= 1
    })
    .await;
    let queued = store.queue().list_outbound(false, 10).await.unwrap();
    assert_eq!(queued[0].rcpt_to, "x@wrongcert.example");
    assert_eq!(
        queued[0].last_error.as_deref(),
        Some("MX host TLS handshake"),
        "{queued:?}"
    );
    assert!(!wrong.log().contains("x@wrongcert.example"), "{}", wrong.log());
}

/// A certificate's DER, in hex (a TLSA `3 0 0` record's data).
fn der_hex(cert_pem: &str) -> String {
    use base64::Engine as _;
    let body: String = cert_pem.lines().filter(|line| !line.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    der.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_ee_with_dnssec_validated_tlsa_takes_a_matching_certificate_and_refuses_another() {
    let port = free_port(&["127.0.0.2", "127.0.0.5", "127.0.0.6"]);
    let ca = TestCa::new();
    // DANE-EE pins the certificate itself: its name and issuer do not matter,
    // and the CA is not trusted anywhere in Sealpost's configuration.
    let good = ca.issue("unrelated.example");
    let (other, _) = ca.issue("mx.danebad.example");
    let zone = format!(
        "smiles IN MX 10 mx.smiles\nmx.smiles IN A 127.0.0.5\n\
         dane IN MX 10 mx.dane\nmx.dane IN A 127.0.0.2\n_{port}._tcp.mx.dane IN TLSA 3 0 0 {}\n\
         danebad IN MX 10 mx.danebad\nmx.danebad IN A 127.0.0.6\n_{port}._tcp.mx.danebad IN TLSA 3 0 0 {}\n",
        der_hex(&good.0),
        der_hex(&other),
    );
    let knot = Knot::start_signed("example.", &zone).await;
    let anchors = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(anchors.path(), knot.trust_anchors("example.").await).unwrap();
    let partner = PostfixMx::start("127.0.0.2", port, "dane.example", good).await;
    let wrong = PostfixMx::start("127.0.0.6", port, "danebad.example", ca.issue("mx.danebad.example")).await;
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.dane = true;
        c.outbound.dnssec_trust_anchors = Some(anchors.path().to_owned());
    })
    .await;
    send_via_relay(
        &instance,
        "staff@smiles.example",
        &["vendor@dane.example", "x@danebad.example"],
        MESSAGE,
    )
    .await
    .unwrap();
    let log = partner.wait_for_log("status=sent").await;
    assert!(log.contains("to=<vendor@dane.example>"), "{log}");
    assert!(log.contains("TLS connection established from"), "over TLS: {log}");
    let store = std::sync::Arc::clone(instance.store());
    wait_until("the certificate the TLSA record does not name is refused", async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.len() == 1 && queued[0].attempts >= 1
    })
    .await;
    let queued = store.queue().list_outbound(false, 10).await.unwrap();
    assert_eq!(queued[0].rcpt_to, "x@danebad.example");
    assert_eq!(
        queued[0].last_error.as_deref(),
        Some("MX host TLS handshake"),
        "{queued:?}"
    );
    assert!(!wrong.log().contains("x@danebad.example"), "{}", wrong.log());
}
