//! Outbound routes and the submission port with real TLS: a second Sealpost acts
//! as the smarthost (STARTTLS and AUTH on its submission port), delivery retries
//! with backoff and ends in a content-free bounce, and a mail client sends over
//! STARTTLS + AUTH.

use lettre::AsyncTransport;
use lettre::address::Envelope;

use super::harness::{Instance, set_password, submission_client};
use super::secure_send::{canary, secure_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_client_sends_secure_mail_over_starttls_and_auth() {
    // Without two-step verification the account password works for mail
    // clients (with it, only app passwords do: see two_step.rs).
    let instance = Instance::start_with(|c| c.two_step.required = false).await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let canary = canary();
    let message = secure_message("pat@example.org", &canary, b"scan", Some("patient"));
    let envelope = Envelope::new(
        Some("ada@smiles.example".parse().unwrap()),
        vec!["pat@example.org".parse().unwrap()],
    )
    .unwrap();
    submission_client(&instance, "ada@smiles.example", "Doctor-Pass-77")
        .send_raw(&envelope, &message)
        .await
        .expect("sent over TLS + AUTH");
    let notification = instance.wait_for_mail("pat@example.org", 1).await;
    assert!(!String::from_utf8_lossy(&notification).contains(&canary));
    let received = instance.store().audit_log().recent_audit(20).await.unwrap();
    assert!(received.iter().any(|(_, action, _)| action == "signin.success"));

    // A wrong password is refused, and the refusal is audited.
    let wrong = submission_client(&instance, "ada@smiles.example", "wrong")
        .send_raw(&envelope, &message)
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("535") || wrong.is_permanent(), "{wrong}");
    let audit = instance.store().audit_log().recent_audit(20).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "signin.failure"));
    // Signed in as Ada, one may not send as someone else.
    let forged = String::from_utf8_lossy(&message).replace(
        "From: \"Dr Ada Lovelace\" <ada@smiles.example>",
        "From: boss@smiles.example",
    );
    let error = submission_client(&instance, "ada@smiles.example", "Doctor-Pass-77")
        .send_raw(&envelope, forged.as_bytes())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not yours"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_go_through_a_smarthost_with_starttls_and_auth() {
    // The smarthost: another Sealpost whose submission port wants STARTTLS + AUTH
    // and which delivers ordinary mail to its own outbox.
    let relay = Instance::start_with(|c| c.two_step.required = false).await;
    relay
        .store()
        .accounts()
        .add_practice("Relay Co", "relay.example")
        .await
        .unwrap();
    relay
        .store()
        .accounts()
        .add_practice_user(
            "gateway@relay.example",
            "Gateway",
            store::accounts::Role::Staff,
            "relay.example",
            true,
            false,
        )
        .await
        .unwrap();
    set_password(&relay, "gateway@relay.example", "Relay-Pass-99").await;
    let port = relay.submission().port();

    let instance = Instance::start_with(|c| {
        c.outbound.mode = sealpost::config::OutboundMode::Smarthost;
        c.outbound.smarthost = format!("127.0.0.1:{port}");
        c.outbound.smarthost_username = Some("gateway@relay.example".into());
        c.outbound.smarthost_password = Some("Relay-Pass-99".into());
        c.outbound.smarthost_accept_invalid_certs = true;
        // The smarthost lets its account send only as itself.
        c.outbound.from_address = "gateway@relay.example".into();
    })
    .await;
    instance.practice_with_doctor().await;
    let canary = canary();
    super::secure_send::ada_sends(&instance, "pat@example.org", &canary, b"x", Some("patient")).await;
    let delivered = relay.wait_for_mail("pat@example.org", 1).await;
    let text = String::from_utf8_lossy(&delivered).into_owned();
    assert!(text.contains("Secure message from Dr Ada Lovelace"), "{text}");
    assert!(text.contains("with ESMTPSA"), "delivered over TLS with AUTH: {text}");
    assert!(!text.contains(&canary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_smarthost_is_retried_then_bounced_without_content() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let instance = Instance::start_with(|c| {
        c.outbound.mode = sealpost::config::OutboundMode::Smarthost;
        c.outbound.smarthost = format!("127.0.0.1:{port}");
    })
    .await;
    let message =
        b"From: staff@smiles.example\r\nTo: vendor@example.com\r\nSubject: Order\r\n\r\nPlease send gloves.\r\n";
    super::secure_send::send_via_relay(&instance, "staff@smiles.example", &["vendor@example.com"], message)
        .await
        .unwrap();
    let store = instance.store();
    // First attempt fails and is deferred, not dropped.
    let mut deferred = false;
    for _ in 0..100 {
        // Looked at without claiming (due_outbound would take it from the worker).
        let queued = store
            .queue()
            .outbound_in_state(store::states::OutboundState::Queued, 10)
            .await
            .unwrap();
        if queued.len() == 1 && queued[0].attempts >= 1 {
            deferred = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(deferred, "the failed delivery should wait for its retry");
    // Five days later it gives up: failed, and a bounce to the sender is queued.
    instance.clock.advance(5 * 86_400 + 3600);
    let mut bounced = false;
    for _ in 0..100 {
        let (_, _, failed) = store.queue().outbound_counts().await.unwrap();
        if failed >= 1 {
            bounced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(bounced, "the delivery should fail after five days");
    let queued = store
        .queue()
        .outbound_in_state(store::states::OutboundState::Queued, 10)
        .await
        .unwrap();
    assert!(
        queued
            .iter()
            .any(|item| item.rcpt_to == "staff@smiles.example" && item.mail_from.is_empty()),
        "a bounce with a null sender"
    );
}
