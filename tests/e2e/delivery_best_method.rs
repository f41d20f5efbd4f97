//! Best-method delivery against real peers: Knot serving the zone, Postfix MX
//! hosts on 127.0.0.x holding what they take (so the test reads it), with
//! certificates the test makes. A partner domain under `verify` whose MX shows
//! the right certificate gets the secure message itself, DKIM-signed, over
//! TLS, when the sending practice allows it — and a notification when it does
//! not; a partner whose MX shows a certificate for another name, or whose
//! domain has no verified TLS, gets a notification, and its MX never sees the
//! message. The audit log names the path each recipient got.

use std::sync::Arc;

use store::Store;
use store::accounts::{Role, User};
use store::ids::MessageId;

use super::delivery_mx::{ZONE, mx_instance, wait_until};
use super::harness::Instance;
use super::mx_peers::{Knot, PostfixMx, TestCa, free_port};
use super::secure_send::{canary, secure_message, send_via_relay};

/// Postfix keeps every mail it takes in its hold queue.
const HOLD: &str = "header_checks = static:HOLD";

/// Ada (Smiles Dental) and the practice's User Manager, who sets the practice's choice.
async fn practice(instance: &Instance, direct: bool) -> (User, User) {
    let ada = instance.practice_with_doctor().await;
    let (manager, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "um@smiles.example",
            "Uma Manager",
            Role::Staff,
            "smiles.example",
            false,
            true,
        )
        .await
        .unwrap();
    set_direct(instance, &manager, direct).await;
    (ada, manager)
}

async fn set_direct(instance: &Instance, manager: &User, on: bool) {
    instance
        .store()
        .accounts()
        .set_practice_direct_delivery(manager, on, "test")
        .await
        .unwrap();
}

/// Ada sends a secure message with `canary` to `to` (new contacts, doctors of
/// other practices); returns its id once sealed.
async fn ada_sends(instance: &Instance, ada: &User, to: &[&str], canary: &str) -> MessageId {
    let sent = async || -> Vec<MessageId> {
        let list = instance.store().mail().sent(ada, 50).await.unwrap();
        list.into_iter().map(|m| m.id).collect()
    };
    let before = sent().await;
    let mut message = secure_message(to[0], canary, b"%PDF-1.4 report", None);
    let roles: Vec<String> = to.iter().map(|t| format!("{t} doctor_other_practice")).collect();
    let header = format!("X-Sealpost-Role: {}\r\n", roles.join(", "));
    message.splice(0..0, header.into_bytes());
    send_via_relay(instance, "ada@smiles.example", to, &message)
        .await
        .expect("accepted with 250");
    wait_until("the message is sealed", async || sent().await.len() > before.len()).await;
    let after = sent().await;
    after.into_iter().find(|id| !before.contains(id)).unwrap()
}

/// The delivery paths of `message`, as `(email, action)`, once there are `count`.
async fn paths(store: &Arc<Store>, message: &MessageId, count: usize) -> Vec<(String, String)> {
    wait_until("every recipient's path is in the audit log", async || {
        store.queue().delivery_paths(message).await.unwrap().len() >= count
    })
    .await;
    let mut named = Vec::new();
    for (user, action) in store.queue().delivery_paths(message).await.unwrap() {
        named.push((store.accounts().user(user).await.unwrap().email, action));
    }
    named.sort();
    named
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_partner_gets_the_message_itself_signed_and_a_notification_when_the_practice_says_no() {
    let knot = Knot::start("example.", ZONE).await;
    let port = free_port(&["127.0.0.2"]);
    let ca = TestCa::new();
    let partner = PostfixMx::start_with(
        "127.0.0.2",
        port,
        "partner.example",
        ca.issue("mx1.partner.example"),
        HOLD,
    )
    .await;
    let keys = tempfile::tempdir().unwrap();
    let ca_file = keys.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let (rsa, ed) = (keys.path().join("r.key"), keys.path().join("e.key"));
    gateway::dkim::generate(&rsa).unwrap();
    gateway::dkim::generate_ed25519(&ed).unwrap();
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.tls_ca_file = Some(ca_file.clone());
        c.outbound
            .tls_policies
            .insert("partner.example".into(), "verify".into());
        c.outbound.direct_domains = vec!["partner.example".into()];
        c.dkim.domain = "gateway.example".into();
        c.dkim.key = Some(rsa.clone());
        c.dkim.ed25519_key = Some(ed.clone());
    })
    .await;
    let (ada, manager) = practice(&instance, true).await;
    let store = Arc::clone(instance.store());

    // One partner recipient, one elsewhere (v4only.example: no partner, and
    // no server listens there, so its notification stays queued).
    let first = canary();
    let id = ada_sends(&instance, &ada, &["dr@partner.example", "pat@v4only.example"], &first).await;
    partner.wait_for_log("hold: header").await;
    let log = partner.log();
    assert!(log.contains("TLS connection established from"), "over TLS: {log}");
    let held = partner.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].contains(&first), "the message itself: {}", held[0]);
    assert!(
        held[0].contains("report.pdf") || held[0].contains("report-"),
        "with its attachment"
    );
    assert_eq!(held[0].matches("DKIM-Signature:").count(), 2, "{}", held[0]);
    assert!(
        held[0].contains("ed25519-sha256") && held[0].contains("rsa-sha256"),
        "{}",
        held[0]
    );
    assert!(held[0].contains("d=gateway.example"), "{}", held[0]);
    assert!(
        !held[0].contains("X-Sealpost"),
        "no marker or role field leaves: {}",
        held[0]
    );
    assert_eq!(
        paths(&store, &id, 2).await,
        vec![
            ("dr@partner.example".to_owned(), "delivery.direct".to_owned()),
            ("pat@v4only.example".to_owned(), "delivery.notification".to_owned()),
        ]
    );
    // The partner got no notification besides; the other recipient one.
    let queued = store.queue().list_outbound(true, 20).await.unwrap();
    let to_partner: Vec<_> = queued.iter().filter(|q| q.rcpt_to == "dr@partner.example").collect();
    assert_eq!(to_partner.len(), 1, "{queued:?}");
    assert_eq!(to_partner[0].state, "sent");
    assert_eq!(to_partner[0].mail_from, "ada@smiles.example");
    assert!(queued.iter().any(|q| q.rcpt_to == "pat@v4only.example"), "{queued:?}");
    // Still sealed and kept for the sender; the audit lines name no address.
    assert!(store.mail().sent(&ada, 10).await.unwrap().iter().any(|m| m.id == id));
    let audit = store.audit_log().recent_audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .filter(|(_, action, _)| action.starts_with("delivery."))
            .all(|(_, _, object)| !object.contains('@')),
        "{audit:?}"
    );

    // The practice turns it off: the same partner gets a notification only.
    set_direct(&instance, &manager, false).await;
    let second = canary();
    let id = ada_sends(&instance, &ada, &["dr@partner.example"], &second).await;
    wait_until("the notification reaches the partner", async || {
        partner.held().len() == 2
    })
    .await;
    let held = partner.held();
    assert!(held.iter().all(|mail| !mail.contains(&second)), "{held:?}");
    assert!(
        held.iter().any(|mail| mail.contains("/m/") && !mail.contains(&first)),
        "a notification with its link: {held:?}"
    );
    assert!(
        store.queue().delivery_paths(&id).await.unwrap().is_empty(),
        "no choice was made"
    );
    assert_eq!(store.mail().sent(&ada, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_mx_with_another_names_certificate_or_no_verified_tls_never_sees_the_message() {
    let zone = format!(
        "{ZONE}\nwrongcert IN MX 10 mx.wrongcert\nmx.wrongcert IN A 127.0.0.6\n\
         plain IN MX 10 mx.plain\nmx.plain IN A 127.0.0.7\n"
    );
    let knot = Knot::start("example.", &zone).await;
    let port = free_port(&["127.0.0.6", "127.0.0.7"]);
    let ca = TestCa::new();
    // The attacker's MX: a certificate from a trusted CA, for another name.
    let wrong = PostfixMx::start_with(
        "127.0.0.6",
        port,
        "wrongcert.example",
        ca.issue("mx.other.example"),
        HOLD,
    )
    .await;
    // A partner with a good certificate, but nothing says its TLS must be
    // verified (opportunistic, no MTA-STS, no DANE).
    let plain = PostfixMx::start_with("127.0.0.7", port, "plain.example", ca.issue("mx.plain.example"), HOLD).await;
    let keys = tempfile::tempdir().unwrap();
    let ca_file = keys.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.tls_ca_file = Some(ca_file.clone());
        c.outbound
            .tls_policies
            .insert("wrongcert.example".into(), "verify".into());
        c.outbound.direct_domains = vec!["wrongcert.example".into(), "plain.example".into()];
    })
    .await;
    let (ada, _) = practice(&instance, true).await;
    let store = Arc::clone(instance.store());
    let secret = canary();
    let id = ada_sends(&instance, &ada, &["dr@wrongcert.example", "dr@plain.example"], &secret).await;

    assert_eq!(
        paths(&store, &id, 2).await,
        vec![
            ("dr@plain.example".to_owned(), "delivery.direct_fallback".to_owned()),
            ("dr@wrongcert.example".to_owned(), "delivery.direct_fallback".to_owned()),
        ]
    );
    let audit = store.audit_log().recent_audit(50).await.unwrap();
    let reasons: Vec<&str> = audit
        .iter()
        .filter(|(_, action, _)| action == "delivery.direct_fallback")
        .map(|(_, _, object)| object.rsplit_once("reason:").unwrap().1)
        .collect();
    assert!(
        reasons.contains(&"tls") && reasons.contains(&"not-verified"),
        "{audit:?}"
    );

    // The plain partner gets its notification (opportunistic TLS is fine for
    // a mail without PHI), never the message.
    wait_until("the notification reaches the plain partner", async || {
        !plain.held().is_empty()
    })
    .await;
    let held = plain.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].contains("/m/") && !held[0].contains(&secret), "{}", held[0]);

    // The wrong certificate's notification is queued (its domain's policy is
    // `verify`, so it waits for a right certificate too); the attacker's MX
    // never got the message, nor even a mail command.
    wait_until("the fallback notification has been tried", async || {
        let queued = store.queue().list_outbound(false, 20).await.unwrap();
        queued
            .iter()
            .any(|q| q.rcpt_to == "dr@wrongcert.example" && q.attempts >= 1)
    })
    .await;
    let queued = store.queue().list_outbound(true, 20).await.unwrap();
    let to_wrong: Vec<_> = queued.iter().filter(|q| q.rcpt_to == "dr@wrongcert.example").collect();
    assert_eq!(to_wrong.len(), 2, "the direct copy and its notification: {queued:?}");
    assert!(to_wrong.iter().any(
        |q| q.state == "failed" && q.last_error.as_deref() == Some("direct copy not sent (tls): notified instead")
    ));
    assert!(wrong.held().is_empty(), "{:?}", wrong.held());
    let log = wrong.log();
    assert!(!log.contains(&secret) && !log.contains("dr@wrongcert.example"), "{log}");
}
