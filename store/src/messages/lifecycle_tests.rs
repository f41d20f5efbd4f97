//! Extending and shortening, a practice's retention, tombstones and read
//! receipts, on a clock the tests move.

use super::{Ending, ExpiryChange, Tombstone};
use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::{MessageId, PracticeId, UserId};
use crate::messages::receipts::ReceiptKind;
use crate::{Error, Store};

const DAY: i64 = 86_400;
const NOW: i64 = crate::testing::START;

async fn practice(store: &Store, id: i64) {
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES ($1, 'P', $2, 0)")
        .bind(id)
        .bind(format!("p{id}.example"))
        .execute(&store.db)
        .await
        .unwrap();
}

async fn user(store: &Store, email: &str, practice: i64, manager: bool) -> User {
    let id: i64 = sqlx::Row::get(
        &sqlx::query(
            "INSERT INTO users (email, role, practice_id, paid, user_manager, status, created_at)
             VALUES ($1, 'doctor', $2, 1, $3, 'active', 0) RETURNING id",
        )
        .bind(email)
        .bind(practice)
        .bind(i64::from(manager))
        .fetch_one(&store.db)
        .await
        .unwrap(),
        "id",
    );
    store.accounts().user(UserId(id)).await.unwrap()
}

/// A sealed message of practice 1 from `sender` to `recipients`, sent now,
/// expiring in 30 days, in conversation `conversation` if given.
async fn message(store: &Store, sender: &User, recipients: &[&User], conversation: Option<&MessageId>) -> MessageId {
    let id = MessageId::generate();
    sqlx::query(
        "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, size, attachment_count, state, created_at, expires_at, conversation_id)
         VALUES ($1, $2, 1, 'no-such-kek', $3, 10, 2, 'sealed', $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(sender.id.0)
    .bind(vec![1u8; 8])
    .bind(store.now())
    .bind(store.now() + 30 * DAY)
    .bind(conversation.map(MessageId::as_str))
    .execute(&store.db)
    .await
    .unwrap();
    for r in recipients {
        sqlx::query("INSERT INTO message_recipients (message_id, user_id, state) VALUES ($1, $2, 'notify')")
            .bind(id.as_str())
            .bind(r.id.0)
            .execute(&store.db)
            .await
            .unwrap();
    }
    id
}

async fn audited(store: &Store, action: &str) -> usize {
    store
        .audit_log()
        .recent_audit(100)
        .await
        .unwrap()
        .iter()
        .filter(|(_, a, _)| a == action)
        .count()
}

#[tokio::test]
async fn the_sender_and_the_practices_user_manager_move_the_date_within_the_limits() {
    let (_dir, store, clock) = crate::testing::store().await;
    practice(&store, 1).await;
    practice(&store, 2).await;
    let sender = user(&store, "doc@p1.example", 1, false).await;
    let manager = user(&store, "um@p1.example", 1, true).await;
    let other_manager = user(&store, "um@p2.example", 2, true).await;
    let recipient = user(&store, "pat@x.example", 1, false).await;
    let id = message(&store, &sender, &[&recipient], None).await;
    let mail = store.mail();

    // Neither a recipient nor another practice's User Manager may, nor learn it exists.
    for stranger in [&recipient, &other_manager] {
        assert!(!mail.may_change_expiry(stranger, &id).await.unwrap());
        assert!(matches!(
            mail.change_expiry(stranger, &id, ExpiryChange::Extend, "").await,
            Err(Error::NotFound)
        ));
    }
    assert!(mail.may_change_expiry(&sender, &id).await.unwrap());
    assert!(mail.may_change_expiry(&manager, &id).await.unwrap());
    // The User Manager finds it in their practice's list; another practice's does not.
    let listed = mail.practice_messages(&manager, 50).await.unwrap();
    assert_eq!(listed.iter().map(|m| &m.id).collect::<Vec<_>>(), [&id]);
    assert_eq!(listed[0].recipients, 1);
    assert!(mail.practice_messages(&other_manager, 50).await.unwrap().is_empty());
    assert!(matches!(
        mail.practice_messages(&sender, 50).await,
        Err(Error::Forbidden(_))
    ));

    let step = store.policy.extend_step_days * DAY;
    let new = mail
        .change_expiry(&sender, &id, ExpiryChange::Extend, "")
        .await
        .unwrap();
    assert_eq!(new, NOW + 30 * DAY + step);
    let new = mail
        .change_expiry(&manager, &id, ExpiryChange::Extend, "")
        .await
        .unwrap();
    assert_eq!(new, NOW + 30 * DAY + 2 * step);
    // Up to the maximum, then no further.
    let max = NOW + store.policy.max_retention_days * DAY;
    let mut last = new;
    while last < max {
        last = mail
            .change_expiry(&sender, &id, ExpiryChange::Extend, "")
            .await
            .unwrap();
    }
    assert_eq!(last, max);
    assert!(matches!(
        mail.change_expiry(&sender, &id, ExpiryChange::Extend, "").await,
        Err(Error::Invalid(_))
    ));

    // Shortening stops a day from now.
    clock.advance(max - NOW - 40 * DAY);
    let now = store.now();
    assert_eq!(
        mail.change_expiry(&sender, &id, ExpiryChange::Shorten, "")
            .await
            .unwrap(),
        now + 10 * DAY
    );
    assert_eq!(
        mail.change_expiry(&sender, &id, ExpiryChange::Shorten, "")
            .await
            .unwrap(),
        now + DAY
    );
    assert!(matches!(
        mail.change_expiry(&sender, &id, ExpiryChange::Shorten, "").await,
        Err(Error::Invalid(_))
    ));
    assert!(audited(&store, "message.extend").await >= 2);
    assert_eq!(audited(&store, "message.shorten").await, 2);

    // Once expired, nobody brings it back.
    clock.advance(DAY);
    assert!(matches!(
        mail.change_expiry(&sender, &id, ExpiryChange::Extend, "").await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn a_practice_sets_its_own_retention_for_new_messages() {
    let (_dir, store, _clock) = crate::testing::store().await;
    practice(&store, 1).await;
    let doctor = user(&store, "doc@p1.example", 1, false).await;
    let manager = user(&store, "um@p1.example", 1, true).await;
    let mail = store.mail();
    assert_eq!(mail.practice_retention_days(PracticeId(1)).await.unwrap(), 30);
    assert!(matches!(
        mail.set_practice_retention(&doctor, Some(10), "").await,
        Err(Error::Forbidden(_))
    ));
    for bad in [0, -3, store.policy.max_retention_days + 1] {
        assert!(matches!(
            mail.set_practice_retention(&manager, Some(bad), "").await,
            Err(Error::Invalid(_))
        ));
    }
    mail.set_practice_retention(&manager, Some(10), "").await.unwrap();
    assert_eq!(mail.practice_retention_days(PracticeId(1)).await.unwrap(), 10);
    mail.set_practice_retention(&manager, None, "").await.unwrap();
    assert_eq!(mail.practice_retention_days(PracticeId(1)).await.unwrap(), 30);
    assert_eq!(audited(&store, "practice.retention").await, 2);
}

#[tokio::test]
async fn participants_learn_how_and_when_a_message_ended_and_strangers_nothing() {
    let (_dir, store, clock) = crate::testing::store().await;
    practice(&store, 1).await;
    let sender = user(&store, "doc@p1.example", 1, false).await;
    let reader = user(&store, "pat@x.example", 1, false).await;
    let other = user(&store, "pat2@x.example", 1, false).await;
    let stranger = user(&store, "who@x.example", 1, false).await;
    let mail = store.mail();

    let deleted = message(&store, &sender, &[&reader, &other], None).await;
    let hidden = message(&store, &sender, &[&reader, &other], None).await;
    // Readable: no tombstone for anyone.
    assert!(matches!(mail.tombstone(&reader, &deleted).await, Err(Error::NotFound)));

    clock.advance(60);
    mail.delete_message(&sender, &deleted, "").await.unwrap();
    mail.hide_message(&reader, &hidden, "").await.unwrap();
    // A recipient may not delete for everyone; a sender hides nothing.
    assert!(matches!(
        mail.delete_message(&other, &hidden, "").await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        mail.hide_message(&sender, &hidden, "").await,
        Err(Error::Forbidden(_))
    ));
    let gone = Tombstone {
        ending: Ending::Deleted,
        at: Some(NOW + 60),
    };
    assert_eq!(mail.tombstone(&reader, &deleted).await.unwrap(), gone);
    assert_eq!(mail.tombstone(&sender, &deleted).await.unwrap(), gone);
    assert!(matches!(
        mail.tombstone(&stranger, &deleted).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(mail.authorized(&other, &deleted).await, Err(Error::NotFound)));
    // Hidden for the reader only.
    assert_eq!(mail.tombstone(&reader, &hidden).await.unwrap().ending, Ending::Hidden);
    assert!(mail.authorized(&other, &hidden).await.is_ok());
    assert!(mail.authorized(&sender, &hidden).await.is_ok());
    assert!(matches!(mail.tombstone(&other, &hidden).await, Err(Error::NotFound)));
    assert_eq!(audited(&store, "message.delete").await, 1);
    assert_eq!(audited(&store, "message.hide").await, 1);

    // Expired: unreadable at once, the same tombstone before and after the purge.
    clock.advance(30 * DAY);
    let expired = Tombstone {
        ending: Ending::Expired,
        at: Some(NOW + 30 * DAY),
    };
    assert!(matches!(mail.authorized(&other, &hidden).await, Err(Error::NotFound)));
    assert_eq!(mail.tombstone(&other, &hidden).await.unwrap(), expired);
    assert_eq!(mail.purge_expired().await.unwrap(), 1);
    assert_eq!(mail.tombstone(&other, &hidden).await.unwrap(), expired);
    assert_eq!(mail.tombstone(&sender, &hidden).await.unwrap(), expired);
    // The tombstone row keeps no key and no subject.
    let row = sqlx::query("SELECT wrapped_key, sealed_subject, state FROM messages WHERE id = $1")
        .bind(hidden.as_str())
        .fetch_one(&store.db)
        .await
        .unwrap();
    assert!(sqlx::Row::get::<Option<Vec<u8>>, _>(&row, "wrapped_key").is_none());
    assert!(sqlx::Row::get::<Option<Vec<u8>>, _>(&row, "sealed_subject").is_none());
    assert_eq!(sqlx::Row::get::<String, _>(&row, "state"), "expired");
}

#[tokio::test]
async fn the_sender_sees_who_opened_downloaded_and_replied() {
    let (_dir, store, clock) = crate::testing::store().await;
    practice(&store, 1).await;
    let sender = user(&store, "doc@p1.example", 1, false).await;
    let anna = user(&store, "anna@x.example", 1, false).await;
    let ben = user(&store, "ben@x.example", 1, false).await;
    let id = message(&store, &sender, &[&anna, &ben], None).await;
    let event = |actor: String, action: &'static str, object: String| {
        let store = store.clone();
        async move {
            store
                .audit(AuditEvent {
                    actor: &actor,
                    action,
                    object: &object,
                    client: "",
                })
                .await
                .unwrap();
        }
    };
    // The sender's own views are not receipts.
    event(format!("user:{}", sender.id), "message.view", format!("message:{id}")).await;
    clock.advance(100);
    event(format!("user:{}", anna.id), "message.view", format!("message:{id}")).await;
    clock.advance(100);
    event(format!("user:{}", anna.id), "message.view", format!("message:{id}")).await;
    event(
        format!("user:{}", anna.id),
        "attachment.download",
        format!("message:{id}/attachment:1"),
    )
    .await;
    clock.advance(100);
    let reply = message(&store, &anna, &[&sender], Some(&id)).await;

    let receipts = store.mail().receipts(&sender, &id).await.unwrap();
    assert_eq!(receipts.len(), 2);
    let (a, b) = (&receipts[0], &receipts[1]);
    assert_eq!(a.email, "anna@x.example");
    assert_eq!(a.opened_at, Some(NOW + 100), "the first view counts");
    assert_eq!(a.events.len(), 2);
    assert_eq!(a.events[0].at, NOW + 200);
    assert_eq!(
        a.events[0].kind,
        ReceiptKind::Attachment {
            index: 1,
            viewed_only: false
        }
    );
    assert_eq!(a.events[1].kind, ReceiptKind::Reply { id: reply });
    assert_eq!(b.opened_at, None);
    assert!(b.events.is_empty());

    // Only the sender asks.
    assert!(matches!(store.mail().receipts(&anna, &id).await, Err(Error::NotFound)));
}
