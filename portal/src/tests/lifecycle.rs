//! A message's end from the portal: the countdown, keep longer / delete
//! sooner (sender and User Manager only), delete for everyone and delete for
//! me, the "deleted on" page, read receipts and the sent list's read mark, and
//! a practice's retention page.

use axum::http::StatusCode;
use store::accounts::{Role, User};
use store::ids::MessageId;

use super::{Env, location, send_message, session_cookie, text, token_of};
use crate::csrf::csrf_for;

const BODY: &str = "From: Dr Alice <alice@clinic.example>\r
To: bob@clinic.example\r
Subject: Scan results\r
X-Sealpost-Secure: 1\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/plain\r
\r
See the scan.\r
--b1\r
Content-Type: application/pdf\r
Content-Disposition: attachment; filename=\"scan.pdf\"\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--b1--\r
";

/// A user of `domain` with a password, and their session cookie.
async fn user_session(env: &Env, email: &str, domain: &str, manager: bool) -> (User, String) {
    let (user, token) = env
        .store
        .accounts()
        .add_practice_user(email, "Someone", Role::Staff, domain, true, manager)
        .await
        .unwrap();
    let response = env
        .post(
            &format!("/password/{token}"),
            &[("password", "Sunny-Orchard-31"), ("confirm", "Sunny-Orchard-31")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    (user, session_cookie(&response))
}

/// Alice (the sender of `send_message`) writes to Bob; returns the message id.
async fn alice_writes_to_bob(env: &Env) -> MessageId {
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let mut writer = env.store.queue().spool_writer().await.unwrap();
    writer.write(BODY.as_bytes()).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    env.store
        .queue()
        .accept_secure(
            &spooled,
            "alice@clinic.example",
            &["bob@clinic.example".to_owned()],
            alice.id,
        )
        .await
        .unwrap();
    env.store.mail().seal_spooled(&spooled.id).await.unwrap();
    MessageId::parse(spooled.id.as_str()).unwrap()
}

/// (sent, self-destructs) of a message Alice sent, from her Sent list.
async fn dates(env: &Env, id: &MessageId) -> (i64, i64) {
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let sent = env.store.mail().sent(&alice, 50).await.unwrap();
    let message = sent.iter().find(|m| &m.id == id).expect("in Alice's Sent list");
    (message.created_at, message.expires_at)
}

async fn expires_at(env: &Env, id: &MessageId) -> i64 {
    dates(env, id).await.1
}

#[tokio::test]
async fn the_sender_extends_then_deletes_for_everyone_and_the_recipient_learns_when() {
    let env = Env::new().await;
    let (alice, _) = send_message(&env).await;
    env.store
        .accounts()
        .add_practice("Other", "other.example")
        .await
        .unwrap();
    let (_, bob) = user_session(&env, "bob@clinic.example", "clinic.example", false).await;
    let (_, carol) = user_session(&env, "carol@other.example", "other.example", false).await;
    let id = alice_writes_to_bob(&env).await;
    let (alice_csrf, bob_csrf, carol_csrf) = (
        csrf_for(token_of(&alice)),
        csrf_for(token_of(&bob)),
        csrf_for(token_of(&carol)),
    );

    // Before Bob opens it: Alice's Sent list marks it unread.
    let sent = text(env.get("/sent", Some(&alice)).await).await;
    assert!(sent.contains("Not read yet") && sent.contains("Deletes in"), "{sent}");

    // Bob reads and downloads: he sees the countdown, may only delete for himself.
    let page = text(env.get(&format!("/m/{id}"), Some(&bob)).await).await;
    assert!(
        page.contains("Deletes in 30 days") || page.contains("Deletes in 29 days"),
        "{page}"
    );
    assert!(page.contains(&format!("/m/{id}/hide")) && !page.contains(&format!("/m/{id}/delete\"")));
    assert!(!page.contains(&format!("/m/{id}/expiry")));
    assert_eq!(
        env.get(&format!("/m/{id}/a/0"), Some(&bob)).await.status(),
        StatusCode::OK
    );

    // Alice sees when he opened it and what he downloaded; the list marks it read.
    let page = text(env.get(&format!("/m/{id}"), Some(&alice)).await).await;
    let receipts = &page[page.find("bob@clinic.example").expect("Bob's receipt")..];
    assert!(receipts.contains("Read") && receipts.contains("Opened") && receipts.contains("Downloaded scan.pdf"));
    let sent = text(env.get("/sent", Some(&alice)).await).await;
    assert!(sent.contains("title=\"Read\""), "{sent}");

    // Neither Bob nor a stranger may change its date or delete it for everyone.
    let before = expires_at(&env, &id).await;
    for (cookie, csrf) in [(&bob, &bob_csrf), (&carol, &carol_csrf)] {
        let extend = [("csrf", csrf.as_str()), ("change", "extend")];
        let response = env.post(&format!("/m/{id}/expiry"), &extend, Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = env
            .post(&format!("/m/{id}/delete"), &[("csrf", csrf)], Some(cookie))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let response = env
        .post(
            &format!("/m/{id}/expiry"),
            &[("csrf", &alice_csrf), ("change", "sideways")],
            Some(&alice),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(expires_at(&env, &id).await, before);

    // Alice keeps it 30 days longer.
    let response = env
        .post(
            &format!("/m/{id}/expiry"),
            &[("csrf", &alice_csrf), ("change", "extend")],
            Some(&alice),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/m/{id}"));
    assert_eq!(expires_at(&env, &id).await, before + 30 * 86_400);

    // Then deletes it for everyone.
    let response = env
        .post(&format!("/m/{id}/delete"), &[("csrf", &alice_csrf)], Some(&alice))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sent");
    let response = env.get(&format!("/m/{id}"), Some(&bob)).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let page = text(response).await;
    assert!(
        page.contains("This message was deleted on") && !page.contains("Scan results"),
        "{page}"
    );
    assert_eq!(
        env.get(&format!("/m/{id}"), Some(&alice)).await.status(),
        StatusCode::GONE
    );
    // A stranger learns nothing; the attachment is gone.
    assert_eq!(
        env.get(&format!("/m/{id}"), Some(&carol)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&format!("/m/{id}/a/0"), Some(&bob)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        !text(env.get("/inbox", Some(&bob)).await)
            .await
            .contains(&format!("/m/{id}\""))
    );
}

#[tokio::test]
async fn a_recipient_deletes_a_message_for_themself_only() {
    let env = Env::new().await;
    let (alice, _) = send_message(&env).await;
    let (_, bob) = user_session(&env, "bob@clinic.example", "clinic.example", false).await;
    let id = alice_writes_to_bob(&env).await;
    let response = env
        .post(
            &format!("/m/{id}/hide"),
            &[("csrf", &csrf_for(token_of(&bob)))],
            Some(&bob),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/inbox");
    let response = env.get(&format!("/m/{id}"), Some(&bob)).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(text(response).await.contains("You deleted this message"));
    assert_eq!(
        env.get(&format!("/m/{id}"), Some(&alice)).await.status(),
        StatusCode::OK
    );
    // The sender hides nothing: their delete is for everyone, on its own route.
    let response = env
        .post(
            &format!("/m/{id}/hide"),
            &[("csrf", &csrf_for(token_of(&alice)))],
            Some(&alice),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_manager_sets_the_practice_retention_and_moves_a_date() {
    let env = Env::new().await;
    let (alice, _) = send_message(&env).await;
    let (manager, um) = user_session(&env, "um@clinic.example", "clinic.example", true).await;
    let (_, bob) = user_session(&env, "bob@clinic.example", "clinic.example", false).await;
    let id = alice_writes_to_bob(&env).await;
    let csrf = csrf_for(token_of(&um));

    // Not for someone who isn't a User Manager (Alice, the practice's first user, is one).
    assert_eq!(
        env.get("/practice/retention", Some(&bob)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get("/practice/retention", Some(&alice)).await.status(),
        StatusCode::OK
    );
    let page = text(env.get("/practice/retention", Some(&um)).await).await;
    assert!(
        page.contains(&format!("/m/{id}/expiry")) && !page.contains("Scan results"),
        "{page}"
    );

    let response = env
        .post("/practice/retention", &[("csrf", &csrf), ("days", "ten")], Some(&um))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = text(response).await;
    assert!(page.contains("Enter a whole number of days.") && page.contains("value=\"ten\""));
    let response = env
        .post("/practice/retention", &[("csrf", &csrf), ("days", "4000")], Some(&um))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("Choose between 1 and 365 days."));
    let response = env
        .post("/practice/retention", &[("csrf", &csrf), ("days", "10")], Some(&um))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let practice = manager.practice_id.unwrap();
    assert_eq!(env.store.mail().practice_retention_days(practice).await.unwrap(), 10);
    // New messages get the practice's retention.
    let newer = alice_writes_to_bob(&env).await;
    let (created, expires) = dates(&env, &newer).await;
    assert_eq!(expires, created + 10 * 86_400);

    // The User Manager shortens the first message from the practice page.
    let before = expires_at(&env, &id).await;
    let now = env.store.now();
    let response = env
        .post(
            &format!("/m/{id}/expiry"),
            &[("csrf", &csrf), ("change", "shorten"), ("back", "practice")],
            Some(&um),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/practice/retention");
    // 30 days sooner, but never within a day from now.
    let after = expires_at(&env, &id).await;
    assert!(after < before && (now + 86_400..=env.store.now() + 86_400).contains(&after));
}
