//! Tests of the orphan sweep: what a crash leaves goes, what is still someone's
//! stays, and a young file (about to get its row) is left alone.

use std::time::Duration;

use crate::crypto::DataKey;
use crate::ids::{MessageId, UserId};
use crate::testing::store;

async fn sender(store: &crate::Store) -> UserId {
    UserId(sqlx::Row::get(
        &sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ('a@x.example', 'doctor', 'active', 0) RETURNING id")
            .fetch_one(&store.db)
            .await
            .unwrap(),
        "id",
    ))
}

async fn spool_file(store: &crate::Store) -> crate::spool::Spooled {
    crate::testing::spool_in_file(store, "Subject: [secure] x\r\n\r\n").await
}

async fn message_blob(store: &crate::Store, id: &MessageId) {
    let key = DataKey::generate();
    let mut blob = store
        .blobs
        .create(
            &crate::layout::MessageBlob::Meta.key(id),
            &key,
            crate::layout::BLOB_META,
        )
        .await
        .unwrap();
    blob.write(b"{}").await.unwrap();
    blob.finish().await.unwrap();
}

#[tokio::test]
async fn a_crash_s_leftovers_are_swept_and_live_work_is_kept() {
    let (dir, store, _) = store().await;
    let sender = sender(&store).await;
    // Acknowledged: file and row.
    let kept = spool_file(&store).await;
    store
        .queue()
        .accept_secure(&kept, "a@x.example", &["p@y.example".to_owned()], sender)
        .await
        .unwrap();
    // Renamed into place, then the process died before its row was written.
    let orphan = spool_file(&store).await;
    // Half-written.
    let in_dir = dir.path().join("data/spool/in");
    std::fs::write(in_dir.join(format!("{}.tmp", MessageId::generate())), b"partial").unwrap();
    // Blobs of a message being sealed (its spool row exists), and of one whose
    // sealing never committed (no row at all), with a local staging file.
    message_blob(&store, &kept.id).await;
    let unsealed = MessageId::generate();
    message_blob(&store, &unsealed).await;
    let staging = dir.path().join(format!("blobs/messages/{unsealed}/visible#123"));
    std::fs::write(&staging, b"cut short").unwrap();

    // A running server's periodic sweep leaves files younger than its grace.
    let young = store.queue().sweep_orphans(Duration::from_hours(1)).await.unwrap();
    assert_eq!(young.spool_files, 0);
    assert!(in_dir.join(orphan.id.as_str()).exists());
    assert!(staging.exists());

    let swept = store.queue().sweep_orphans(Duration::ZERO).await.unwrap();
    assert_eq!(swept.spool_files, 2, "the file without a row and the .tmp");
    assert_eq!(swept.blob_messages, 1);
    let left: Vec<String> = std::fs::read_dir(&in_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [kept.id.as_str().to_owned()]);
    assert!(!staging.exists());
    assert!(
        dir.path().join(format!("blobs/messages/{}/meta", kept.id)).exists(),
        "a message being sealed keeps its blobs"
    );
    assert!(!dir.path().join(format!("blobs/messages/{unsealed}/meta")).exists());
    // The kept message still seals... as far as its row goes: it is still due.
    assert_eq!(store.queue().due_spool(10).await.unwrap(), [kept.id.clone()]);
    assert_eq!(
        store.queue().sweep_orphans(Duration::ZERO).await.unwrap().total(),
        0,
        "a second sweep finds nothing"
    );
}

#[tokio::test]
async fn a_queue_file_stays_while_a_delivery_reads_it_and_goes_after() {
    let (dir, store, _) = store().await;
    let spooled = spool_file(&store).await;
    store
        .queue()
        .accept_plain(&spooled, "a@x.example", &["p@y.example".to_owned()])
        .await
        .unwrap();
    let path = dir.path().join("data/spool/in").join(spooled.id.as_str());
    assert_eq!(store.queue().sweep_orphans(Duration::ZERO).await.unwrap().total(), 0);
    assert!(path.exists(), "a queued delivery reads it");
    // Delivered, and the process died before it removed the file.
    sqlx::query("UPDATE outbound SET state = 'sent'")
        .execute(&store.db)
        .await
        .unwrap();
    assert_eq!(
        store.queue().sweep_orphans(Duration::ZERO).await.unwrap().spool_files,
        1
    );
    assert!(!path.exists());
}

/// The hourly pass finds a shred's leftover blobs from the database (messages
/// whose key went since the last pass), without listing the whole store: a
/// live message's blobs and an older shred's stay out of its sight.
#[tokio::test]
async fn the_incremental_pass_takes_the_blobs_of_messages_shredded_since_the_last() {
    let (dir, store, clock) = store().await;
    let sender = sender(&store).await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'P', 'p.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let message = |ended: Option<i64>| {
        let store = std::sync::Arc::clone(&store);
        async move {
            let id = MessageId::generate();
            sqlx::query(
                "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, size, attachment_count, state, created_at, expires_at, ended_at)
                 VALUES ($1, $2, 1, 'k', $3, 10, 0, $4, 0, $5, $6)",
            )
            .bind(id.as_str())
            .bind(sender.0)
            .bind(ended.is_none().then(|| vec![1u8; 8]))
            .bind(if ended.is_some() { "expired" } else { "sealed" })
            .bind(store.now() + 86_400)
            .bind(ended)
            .execute(&store.db)
            .await
            .unwrap();
            message_blob(&store, &id).await;
            id
        }
    };
    let meta = |id: &MessageId| dir.path().join(format!("blobs/messages/{id}/meta"));
    let since = store.now();
    let old = message(Some(since - 3600)).await; // before the watermark: the full pass's
    let live = message(None).await;
    clock.advance(100);
    let cut_short = message(Some(store.now())).await; // shredded, its blob delete never ran

    let (removed, next) = store.queue().sweep_shredded_blobs(since).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!meta(&cut_short).exists());
    assert!(meta(&live).exists(), "a message with its key keeps its blobs");
    assert!(meta(&old).exists(), "older than the watermark: not looked at");
    assert!(next < store.now() && next > since, "the next pass starts about now");
    assert_eq!(store.queue().sweep_shredded_blobs(next).await.unwrap().0, 0);
    // The full pass still finds the old one.
    assert_eq!(store.queue().sweep_message_blobs(Duration::ZERO).await.unwrap(), 1);
    assert!(!meta(&old).exists());
}
