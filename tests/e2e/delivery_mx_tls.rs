//! TLS to MX hosts against Postfix MX hosts with certificates the test makes:
//! under the `verify` policy a host with a certificate from the configured CA
//! gets the mail over TLS, and one whose certificate names another host gets
//! nothing; the same without any configured policy when the domain publishes
//! MTA-STS `enforce` (the policy served over HTTPS by the test); and with DANE
//! on, a DNSSEC-signed zone's DANE-EE TLSA record lets a certificate through
//! that no CA vouches for, and keeps another out; a DANE-TA record pins a CA
//! that no configuration trusts, whose certificate for the MX host's name
//! passes, while one from another CA, or for another name, does not. The MX
//! answer itself is DNSSEC-validated: an insecure one (an unsigned child
//! zone) makes no DANE claim even when the host it names has TLSA records, and
//! a bogus one (a wrong trust anchor) holds the mail back.

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

/// A certificate chain as an MX host sends it: its own, then its CA's.
fn chain((cert, key): (String, String), ca: &TestCa) -> (String, String) {
    (format!("{cert}{}", ca.pem), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_ta_pins_a_ca_whose_certificate_for_the_host_passes_and_no_other() {
    let port = free_port(&["127.0.0.2", "127.0.0.6", "127.0.0.7"]);
    // The pinned CA is trusted nowhere in Sealpost's configuration.
    let (pinned, other) = (TestCa::new(), TestCa::new());
    let ta = der_hex(&pinned.pem);
    let zone = format!(
        "smiles IN MX 10 mx.smiles\nmx.smiles IN A 127.0.0.5\n\
         danta IN MX 10 mx.danta\nmx.danta IN A 127.0.0.2\n_{port}._tcp.mx.danta IN TLSA 2 0 0 {ta}\n\
         tabad IN MX 10 mx.tabad\nmx.tabad IN A 127.0.0.6\n_{port}._tcp.mx.tabad IN TLSA 2 0 0 {ta}\n\
         taname IN MX 10 mx.taname\nmx.taname IN A 127.0.0.7\n_{port}._tcp.mx.taname IN TLSA 2 0 0 {ta}\n"
    );
    let knot = Knot::start_signed("example.", &zone).await;
    let anchors = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(anchors.path(), knot.trust_anchors("example.").await).unwrap();
    let good = PostfixMx::start(
        "127.0.0.2",
        port,
        "danta.example",
        chain(pinned.issue("mx.danta.example"), &pinned),
    )
    .await;
    // Right name, another CA.
    let wrong_ca = PostfixMx::start(
        "127.0.0.6",
        port,
        "tabad.example",
        chain(other.issue("mx.tabad.example"), &other),
    )
    .await;
    // The pinned CA, another name: DANE-TA still checks the name (RFC 7672 §3.2.2).
    let wrong_name = PostfixMx::start(
        "127.0.0.7",
        port,
        "taname.example",
        chain(pinned.issue("mx.other.example"), &pinned),
    )
    .await;
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.dane = true;
        c.outbound.dnssec_trust_anchors = Some(anchors.path().to_owned());
    })
    .await;
    send_via_relay(
        &instance,
        "staff@smiles.example",
        &["vendor@danta.example", "x@tabad.example", "y@taname.example"],
        MESSAGE,
    )
    .await
    .unwrap();
    let log = good.wait_for_log("status=sent").await;
    assert!(log.contains("to=<vendor@danta.example>"), "{log}");
    assert!(log.contains("TLS connection established from"), "over TLS: {log}");
    let store = std::sync::Arc::clone(instance.store());
    wait_until("both wrong certificates are refused", async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.len() == 2 && queued.iter().all(|q| q.attempts >= 1)
    })
    .await;
    for queued in store.queue().list_outbound(false, 10).await.unwrap() {
        assert_eq!(
            queued.last_error.as_deref(),
            Some("MX host TLS handshake"),
            "{queued:?}"
        );
    }
    assert!(!wrong_ca.log().contains("x@tabad.example"), "{}", wrong_ca.log());
    assert!(!wrong_name.log().contains("y@taname.example"), "{}", wrong_name.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_mx_answer_makes_no_dane_claim_and_a_bogus_one_holds_mail_back() {
    let port = free_port(&["127.0.0.5", "127.0.0.6"]);
    let ca = TestCa::new();
    let (unrelated, _) = ca.issue("unrelated.example");
    // plain.example is an unsigned zone delegated from the signed example.; its
    // MX names a host in the signed zone whose TLSA record no certificate
    // matches. The MX answer is insecure, so that record is not DANE's to
    // apply (anyone on the path could have named that host): the mail goes
    // with opportunistic TLS, as Postfix's `dane` level does.
    let parent = format!(
        "smiles IN MX 10 mx.smiles\nmx.smiles IN A 127.0.0.5\nplain IN NS ns\n\
         mx.danebad IN A 127.0.0.6\n_{port}._tcp.mx.danebad IN TLSA 3 0 0 {}\n",
        der_hex(&unrelated)
    );
    let knot = Knot::start_zones(&[
        ("example.", &parent, true),
        ("plain.example.", "@ IN MX 10 mx.danebad.example.\n", false),
    ])
    .await;
    let anchors = tempfile::NamedTempFile::new().unwrap();
    let good_anchors = knot.trust_anchors("example.").await;
    std::fs::write(anchors.path(), &good_anchors).unwrap();
    let host = PostfixMx::start("127.0.0.6", port, "plain.example", ca.issue("mx.danebad.example")).await;
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.dane = true;
        c.outbound.dnssec_trust_anchors = Some(anchors.path().to_owned());
    })
    .await;
    send_via_relay(&instance, "staff@smiles.example", &["pat@plain.example"], MESSAGE)
        .await
        .unwrap();
    let log = host.wait_for_log("status=sent").await;
    assert!(log.contains("to=<pat@plain.example>"), "{log}");
    assert!(
        log.contains("TLS connection established from"),
        "opportunistic TLS: {log}"
    );
    drop(instance);

    // A trust anchor that signs nothing here: every answer is bogus, and the
    // mail waits rather than going without DANE.
    let bogus = tempfile::NamedTempFile::new().unwrap();
    let other = Knot::start_signed("example.", "x IN A 127.0.0.9\n").await;
    std::fs::write(bogus.path(), other.trust_anchors("example.").await).unwrap();
    assert_ne!(other.trust_anchors("example.").await, good_anchors);
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.dane = true;
        c.outbound.dnssec_trust_anchors = Some(bogus.path().to_owned());
    })
    .await;
    send_via_relay(&instance, "staff@smiles.example", &["pam@plain.example"], MESSAGE)
        .await
        .unwrap();
    let store = std::sync::Arc::clone(instance.store());
    wait_until("the bogus answer defers the delivery", async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.len() == 1 && queued[0].attempts >= 1
    })
    .await;
    let queued = store.queue().list_outbound(false, 10).await.unwrap();
    let error = queued[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("DNSSEC") || error.contains("lookup failed"),
        "{queued:?}"
    );
    assert!(!host.log().contains("pam@plain.example"), "{}", host.log());
}
