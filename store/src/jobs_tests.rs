//! Tests of the mail jobs (`jobs.rs`): jobs that can never be composed are set
//! aside and logged, and the rest go on.

use sqlx::Row;

use super::*;
use crate::Store;
use crate::testing::{Logs, store};

async fn user(store: &Store) -> UserId {
    let row = sqlx::query(
        "INSERT INTO users (email, role, status, created_at) VALUES ('pat@example.org', 'patient', 'active', 0) RETURNING id",
    )
    .fetch_one(&store.db)
    .await
    .unwrap();
    UserId(row.get("id"))
}

async fn job(store: &Store, kind: &str, user: UserId, message: Option<&str>) -> i64 {
    sqlx::query("INSERT INTO mail_jobs (kind, user_id, message_id, created_at) VALUES ($1, $2, $3, 0) RETURNING id")
        .bind(kind)
        .bind(user.0)
        .bind(message)
        .fetch_one(&store.db)
        .await
        .unwrap()
        .get("id")
}

async fn state(store: &Store, job: i64) -> (Option<i64>, Option<String>) {
    let row = sqlx::query("SELECT done_at, failure FROM mail_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&store.db)
        .await
        .unwrap();
    (row.get("done_at"), row.get("failure"))
}

#[tokio::test]
async fn jobs_that_cannot_be_composed_are_set_aside_and_logged_and_the_rest_go_on() {
    let (logs, _guard) = Logs::capture();
    let (_dir, store, _) = store().await;
    let user = user(&store).await;
    let message = MessageId::generate();
    let unknown = job(&store, "fax", user, Some(message.as_str())).await;
    let notify_without = job(&store, "notify", user, None).await;
    let roles_without = job(&store, "choose_roles", user, None).await;
    let malformed = job(&store, "notify", user, Some("../../etc/passwd")).await;
    let notify = job(&store, "notify", user, Some(message.as_str())).await;
    let set_password = job(&store, "set_password", user, None).await;

    let pending: Vec<i64> = store
        .queue()
        .pending_jobs(50)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(pending, [notify, set_password], "the good jobs behind the bad ones");
    for (parked, reason) in [
        (unknown, "unknown mail job kind"),
        (notify_without, "without the message id its kind needs"),
        (roles_without, "without the message id its kind needs"),
        (malformed, "malformed message id"),
    ] {
        let (done, failure) = state(&store, parked).await;
        assert_eq!(done, Some(crate::testing::START), "job {parked} marked done");
        assert!(
            failure.as_deref().is_some_and(|f| f.contains(reason)),
            "job {parked}: {failure:?}"
        );
        let line = logs
            .text()
            .lines()
            .find(|l| l.contains(&format!("job={parked} ")))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(line.contains("mail job set aside") && line.contains(reason), "{line}");
    }
    assert!(!logs.text().contains("passwd"), "the stored text is not logged");
    assert_eq!(state(&store, notify).await, (None, None));

    // Set aside once: the next pass sees only the good jobs, and logs nothing new.
    let lines = logs.text().lines().count();
    let again: Vec<i64> = store
        .queue()
        .pending_jobs(50)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(again, [notify, set_password]);
    assert_eq!(logs.text().lines().count(), lines);
}

#[tokio::test]
async fn a_job_without_its_message_is_corrupt_and_one_whose_message_is_gone_is_absent() {
    let (_dir, store, _) = store().await;
    let user = user(&store).await;
    let without = MailJob {
        id: 1,
        kind: JobKind::Notify,
        user_id: user,
        message_id: None,
    };
    let error = store.queue().job_context(&without).await.unwrap_err();
    assert!(matches!(error, Error::Corrupt(_)) && error.is_permanent(), "{error}");
    let gone = MailJob {
        message_id: Some(MessageId::generate()),
        ..without
    };
    let error = store.queue().job_context(&gone).await.unwrap_err();
    assert!(matches!(error, Error::NotFound) && !error.is_permanent(), "{error}");
}

/// A notification's context comes from one row: the recipient, the sender, the practice and
/// the sender's note, sealed in the message row (not in clear); a message
/// sealed before the row kept the note has it read from its sealed metadata.
#[tokio::test]
async fn a_notification_s_context_and_note_come_from_the_message_row_sealed() {
    let (_dir, store, _) = store().await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'Smiles', 'smiles.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let ada: i64 = sqlx::query(
        "INSERT INTO users (email, full_name, role, practice_id, paid, status, created_at)
         VALUES ('ada@smiles.example', 'Dr Ada', 'doctor', 1, 1, 'active', 0) RETURNING id",
    )
    .fetch_one(&store.db)
    .await
    .unwrap()
    .get("id");
    let raw = "From: ada@smiles.example\r\nTo: pat@example.org\r\nSubject: [secure] x\r\n\
               X-Sealpost-Role: pat@example.org patient\r\nX-Sealpost-Notice: Results-ready-note\r\n\r\nbody\r\n";
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer.write(raw.as_bytes()).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    store
        .queue()
        .accept_secure(
            &spooled,
            "ada@smiles.example",
            &["pat@example.org".to_owned()],
            UserId(ada),
        )
        .await
        .unwrap();
    store.mail().seal_spooled(&spooled.id).await.unwrap();
    let sealed: Vec<u8> = sqlx::query("SELECT sealed_notice FROM messages WHERE id = $1")
        .bind(spooled.id.as_str())
        .fetch_one(&store.db)
        .await
        .unwrap()
        .get("sealed_notice");
    assert!(
        !sealed.windows(18).any(|w| w == b"Results-ready-note"),
        "sealed, not clear"
    );

    let jobs = store.queue().claim_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let context = |job| {
        let store = std::sync::Arc::clone(&store);
        async move { store.queue().job_context(&job).await.unwrap().message.unwrap() }
    };
    let message = context(jobs[0].clone()).await;
    assert_eq!(message.id, spooled.id);
    // The recipient comes from the same row, told apart from the sender.
    let whole = store.queue().job_context(&jobs[0]).await.unwrap();
    assert_eq!(whole.recipient.id, jobs[0].user_id);
    assert_eq!(whole.recipient.email, "pat@example.org");
    assert_ne!(whole.recipient.id, UserId(ada));
    let nobody = MailJob {
        user_id: UserId(9999),
        ..jobs[0].clone()
    };
    let error = store.queue().job_context(&nobody).await.unwrap_err();
    assert!(matches!(error, Error::NotFound), "a recipient gone: {error}");
    assert_eq!(
        (message.sender.id, message.sender.full_name.as_str()),
        (UserId(ada), "Dr Ada")
    );
    assert_eq!((message.practice.id.0, message.practice.name.as_str()), (1, "Smiles"));
    assert_eq!(message.notice.as_deref(), Some("Results-ready-note"));

    sqlx::query("UPDATE messages SET sealed_notice = NULL")
        .execute(&store.db)
        .await
        .unwrap();
    let before = context(jobs[0].clone()).await;
    assert_eq!(
        before.notice.as_deref(),
        Some("Results-ready-note"),
        "read from the metadata"
    );
}
