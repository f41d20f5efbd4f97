//! Conversations built from real sealed messages: linked by `In-Reply-To` /
//! `References` and by the thread a reply was made secure by, and each
//! reader's view of one limited to the messages they may see.

use super::*;
use crate::Store;
use crate::ids::UserId;

async fn user(store: &Store, email: &str, role: &str, practice: Option<i64>) -> User {
    let id: i64 = sqlx::Row::get(
        &sqlx::query(
            "INSERT INTO users (email, full_name, role, practice_id, paid, status, created_at)
             VALUES ($1, $1, $2, $3, 1, 'active', 0) RETURNING id",
        )
        .bind(email)
        .bind(role)
        .bind(practice)
        .fetch_one(&store.db)
        .await
        .unwrap(),
        "id",
    );
    store.accounts().user(UserId(id)).await.unwrap()
}

/// Spools and seals one message; `thread` is the message a reply was made
/// secure by (the SMTP path for unmarked replies).
async fn send(store: &Store, from: &User, to: &[&str], headers: &str, thread: Option<&MessageId>) -> MessageId {
    let mut writer = store.queue().spool_writer().await.unwrap();
    let message = format!(
        "From: {}\r\nTo: {}\r\n{headers}Subject: [secure] visit\r\n\r\nbody\r\n",
        from.email,
        to.join(", ")
    );
    writer.write(message.as_bytes()).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    let rcpt: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
    match thread {
        Some(thread) => store
            .mail()
            .accept_thread_reply(&spooled, &from.email, &rcpt, from.id, thread)
            .await
            .unwrap(),
        None => store
            .queue()
            .accept_secure(&spooled, &from.email, &rcpt, from.id)
            .await
            .unwrap(),
    }
    store.mail().seal_spooled(&spooled.id).await.unwrap();
    spooled.id
}

#[tokio::test]
async fn each_reader_sees_only_their_messages_of_a_conversation_and_a_stranger_none() {
    let (_dir, store, clock) = crate::testing::store().await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'Smiles', 'smiles.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let ada = user(&store, "ada@smiles.example", "doctor", Some(1)).await;
    let pat = user(&store, "pat@example.org", "patient", None).await;
    let stranger = user(&store, "eve@smiles.example", "doctor", Some(1)).await;
    let roles = "X-Sealpost-Role: pat@example.org patient, bob@other.example doctor_other_practice\r\n";

    // A: Ada writes to Pat. B: Pat's reply, made secure by A's thread.
    let a = send(
        &store,
        &ada,
        &["pat@example.org"],
        &format!("{roles}Message-ID: <A@smiles.example>\r\n"),
        None,
    )
    .await;
    clock.advance(60);
    let b = send(
        &store,
        &pat,
        &["ada@smiles.example"],
        "Message-ID: <b@example.org>\r\nIn-Reply-To: <a@SMILES.example>\r\n",
        Some(&a),
    )
    .await;
    clock.advance(60);
    // C: Ada answers both and copies Bob in (marked, threaded by its headers).
    let c = send(
        &store,
        &ada,
        &["pat@example.org", "bob@other.example"],
        &format!("{roles}Message-ID: <c@smiles.example>\r\nIn-Reply-To: <b@example.org>\r\nReferences: <a@smiles.example>\r\n <b@example.org>\r\n"),
        None,
    )
    .await;
    clock.advance(60);
    // D: Ada and Bob alone, still in the thread (References names A, B, C).
    let d = send(
        &store,
        &ada,
        &["bob@other.example"],
        &format!("{roles}Message-ID: <d@smiles.example>\r\nReferences: <a@smiles.example> <b@example.org> <c@smiles.example>\r\n"),
        None,
    )
    .await;
    // E: another conversation altogether.
    let e = send(&store, &ada, &["pat@example.org"], roles, None).await;
    let bob = store
        .accounts()
        .user_by_email("bob@other.example")
        .await
        .unwrap()
        .unwrap();

    let mail = store.mail();
    for from in [&a, &b, &c, &d] {
        assert_eq!(
            mail.conversation_ids(&ada, from)
                .await
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [&a, &b, &c, &d],
            "Ada's view from {from}"
        );
    }
    // Pat was never on D; Bob only joined at C.
    for from in [&a, &b, &c] {
        assert_eq!(
            mail.conversation_ids(&pat, from)
                .await
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [&a, &b, &c]
        );
    }
    for from in [&c, &d] {
        assert_eq!(
            mail.conversation_ids(&bob, from)
                .await
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [&c, &d]
        );
    }
    assert_eq!(
        mail.conversation_ids(&pat, &e)
            .await
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [&e]
    );
    for (who, id) in [(&pat, &d), (&bob, &a), (&bob, &b), (&bob, &e)] {
        assert!(matches!(mail.conversation_ids(who, id).await, Err(Error::NotFound)));
    }
    for id in [&a, &b, &c, &d, &e] {
        assert!(matches!(
            mail.conversation_ids(&stranger, id).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            mail.open_conversation(&stranger, id, "test").await,
            Err(Error::NotFound)
        ));
    }

    // Opening the conversation shows Bob his two messages, and only them.
    let views = mail.open_conversation(&bob, &d, "test").await.unwrap();
    assert_eq!(views.iter().map(|v| &v.id).collect::<Vec<_>>(), [&c, &d]);
    assert!(
        views
            .iter()
            .all(|v| !v.is_sender && v.meta.text.as_deref().is_some_and(|t| t.trim() == "body"))
    );

    // An expired message leaves everyone's view at once.
    clock.advance(store.policy.retention_days * 86_400 - 90);
    assert_eq!(
        mail.conversation_ids(&ada, &d)
            .await
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [&c, &d]
    );
    assert!(matches!(mail.conversation_ids(&ada, &a).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn unread_counts_follow_reading_and_visibility() {
    let (_dir, store, clock) = crate::testing::store().await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'Smiles', 'smiles.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let ada = user(&store, "ada@smiles.example", "doctor", Some(1)).await;
    let pat = user(&store, "pat@example.org", "patient", None).await;
    let roles = "X-Sealpost-Role: pat@example.org patient\r\n";
    let a = send(&store, &ada, &["pat@example.org"], roles, None).await;
    let b = send(&store, &ada, &["pat@example.org"], roles, None).await;
    // A message waiting for Ada's role choice is not Pat's yet.
    send(&store, &ada, &["new@example.org"], "", None).await;
    let mail = store.mail();
    assert_eq!(mail.unread_count(&pat).await.unwrap(), 2);
    assert_eq!(mail.unread_count(&ada).await.unwrap(), 0, "sent mail is never unread");
    mail.open_message(&pat, &a, "test").await.unwrap();
    assert_eq!(mail.unread_count(&pat).await.unwrap(), 1);
    // Opening again changes nothing; the sender opening changes nothing for Pat.
    mail.open_message(&pat, &a, "test").await.unwrap();
    mail.open_message(&ada, &b, "test").await.unwrap();
    assert_eq!(mail.unread_count(&pat).await.unwrap(), 1);
    // Expired: no longer counted.
    clock.advance(store.policy.retention_days * 86_400);
    assert_eq!(mail.unread_count(&pat).await.unwrap(), 0);
}
