//! Tests of best-method delivery's queue (`direct.rs`): the choice a job
//! offers, a direct copy in the delivery queue read from the sealed message
//! (without the fields recipients may not see), its fallback to one
//! notification, and the audit log naming each path without an address.

use super::*;
use crate::Store;
use crate::accounts::{Role, User};
use crate::testing::store;

const MESSAGE: &[u8] =
    b"From: Dr Ada <ada@smiles.example>\r\nTo: dr@partner.example\r\nBcc: hidden@elsewhere.example\r\n\
X-Sealpost-Secure: 1\r\nX-Sealpost-Role: dr@partner.example doctor_other_practice\r\n\
Subject: [secure] Referral\r\n\r\nThe scan shows CANARY-DIRECT.\r\n";

/// Smiles Dental with Ada (sender) and a User Manager, and one sealed
/// message from Ada to a new doctor at partner.example.
async fn sealed(store: &Store) -> (User, User, MessageId) {
    store
        .accounts()
        .add_practice("Smiles Dental", "smiles.example")
        .await
        .unwrap();
    let (ada, _) = store
        .accounts()
        .add_practice_user(
            "ada@smiles.example",
            "Dr Ada",
            Role::Doctor,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    let (manager, _) = store
        .accounts()
        .add_practice_user("um@smiles.example", "Uma", Role::Staff, "smiles.example", false, true)
        .await
        .unwrap();
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer.write(MESSAGE).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    store
        .queue()
        .accept_secure(
            &spooled,
            "ada@smiles.example",
            &["dr@partner.example".to_owned()],
            ada.id,
        )
        .await
        .unwrap();
    store.mail().seal_spooled(&spooled.id).await.unwrap();
    (ada, manager, spooled.id.clone())
}

async fn notify_jobs(store: &Store) -> Vec<MailJob> {
    let jobs = store.queue().pending_jobs(10).await.unwrap();
    jobs.into_iter().filter(|j| j.kind == JobKind::Notify).collect()
}

#[tokio::test]
async fn a_direct_copy_is_read_from_the_sealed_message_and_falls_back_to_one_notification() {
    let (_dir, store, _) = store().await;
    let (_, manager, id) = sealed(&store).await;
    let jobs = notify_jobs(&store).await;
    assert_eq!(jobs.len(), 1);
    let choice = store.queue().direct_choice(&jobs[0]).await.unwrap().unwrap();
    assert!(!choice.allowed, "off by default");
    assert!(!choice.tried);
    assert_eq!(
        (choice.recipient.as_str(), choice.sender.as_str()),
        ("dr@partner.example", "ada@smiles.example")
    );
    store
        .accounts()
        .set_practice_direct_delivery(&manager, true, "test")
        .await
        .unwrap();
    let choice = store.queue().direct_choice(&jobs[0]).await.unwrap().unwrap();
    assert!(choice.allowed);

    store.queue().queue_direct(jobs[0].id, &choice).await.unwrap();
    assert!(notify_jobs(&store).await.is_empty(), "the job is done");
    let due = store.queue().due_outbound(10).await.unwrap();
    assert_eq!(due.len(), 1);
    let copy = due[0].direct.clone().expect("the delivery is a direct copy");
    assert_eq!(copy, choice.copy);
    assert_eq!(
        (due[0].mail_from.as_str(), due[0].rcpt_to.as_str()),
        ("ada@smiles.example", "dr@partner.example")
    );

    let DirectBody::Message(body) = store.queue().direct_body(&copy, 1 << 20).await.unwrap() else {
        panic!("the message is there");
    };
    let text = String::from_utf8_lossy(body.expose()).into_owned();
    assert!(
        text.contains("CANARY-DIRECT") && text.contains("Subject: [secure] Referral"),
        "{text}"
    );
    assert!(
        !text.contains("X-Sealpost") && !text.contains("hidden@"),
        "no marker, role or Bcc: {text}"
    );
    assert!(matches!(
        store.queue().direct_body(&copy, 20).await.unwrap(),
        DirectBody::TooLarge
    ));

    // Verification failed: the copy ends, one notification job takes its place.
    store
        .queue()
        .direct_fallback(&due[0], &copy, Fallback::Tls)
        .await
        .unwrap();
    assert!(store.queue().due_outbound(10).await.unwrap().is_empty());
    let jobs = notify_jobs(&store).await;
    assert_eq!(jobs.len(), 1, "one notification instead");
    let again = store.queue().direct_choice(&jobs[0]).await.unwrap().unwrap();
    assert!(again.allowed && again.tried, "a fallback never becomes a second copy");
    let paths = store.queue().delivery_paths(&id).await.unwrap();
    assert_eq!(paths, vec![(copy.recipient, "delivery.direct_fallback".to_owned())]);
    let audit = store.audit_log().recent_audit(3).await.unwrap();
    let (_, action, object) = &audit[0];
    assert_eq!(action, "delivery.direct_fallback");
    assert_eq!(object, &format!("message:{id}/recipient:{}/reason:tls", copy.recipient));
}

#[tokio::test]
async fn a_delivered_copy_is_sent_and_audited_and_a_deleted_message_sends_nothing() {
    let (_dir, store, _) = store().await;
    let (ada, manager, id) = sealed(&store).await;
    store
        .accounts()
        .set_practice_direct_delivery(&manager, true, "test")
        .await
        .unwrap();
    let jobs = notify_jobs(&store).await;
    let choice = store.queue().direct_choice(&jobs[0]).await.unwrap().unwrap();
    store.queue().queue_direct(jobs[0].id, &choice).await.unwrap();
    let due = store.queue().due_outbound(10).await.unwrap();
    store.queue().direct_delivered(&due[0], &choice.copy).await.unwrap();
    assert_eq!(store.queue().outbound_counts().await.unwrap(), (0, 1, 0));
    assert_eq!(
        store.queue().delivery_paths(&id).await.unwrap(),
        vec![(choice.copy.recipient, "delivery.direct".to_owned())]
    );

    // Deleted by its sender before a copy left: nothing to send, nobody notified.
    store.mail().delete_message(&ada, &id, "test").await.unwrap();
    assert!(matches!(
        store.queue().direct_body(&choice.copy, 1 << 20).await.unwrap(),
        DirectBody::Gone
    ));
    assert!(store.queue().direct_choice(&jobs[0]).await.unwrap().is_none());
}
