//! The upload engine against a real store: resuming after a cut, refusing a
//! wrong offset, hiding uploads from everyone but their owner, sweeping the
//! abandoned ones, and never writing a byte of a file or its name in clear.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::*;
use crate::accounts::Role;
use crate::crypto::CHUNK;
use crate::testing::store;
use crate::{ManualClock, Store};

/// A file's bytes: a repeating phrase nobody else writes, so a scan of the
/// disk can look for it.
fn canary(len: usize) -> Vec<u8> {
    b"CANARY-upload-plaintext-7f3a "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// A body in 10 000-byte pieces.
fn body(bytes: &[u8]) -> BoxStream<'static, std::io::Result<Bytes>> {
    let pieces: Vec<std::io::Result<Bytes>> = bytes.chunks(10_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(pieces).boxed()
}

/// A body whose connection breaks after `bytes`.
fn cut_body(bytes: &[u8]) -> BoxStream<'static, std::io::Result<Bytes>> {
    body(bytes)
        .chain(stream::once(async {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))
        }))
        .boxed()
}

async fn read(store: &Store, owner: &User, id: &UploadId) -> Vec<u8> {
    let file = store.uploads().open(owner, id).await.unwrap();
    let chunks: Vec<Bytes> = file.body.try_collect().await.unwrap();
    chunks.concat()
}

async fn person(store: &Store, email: &str, domain: &str, paid: bool) -> User {
    if store.accounts().add_practice(domain, domain).await.is_err() {
        // The practice is there already.
    }
    store
        .accounts()
        .add_practice_user(email, "Someone", Role::Doctor, domain, paid, false)
        .await
        .unwrap()
        .0
}

async fn setup() -> (tempfile::TempDir, Arc<Store>, Arc<ManualClock>, User, User) {
    let (dir, store, clock) = store().await;
    let owner = person(&store, "owner@a.example", "a.example", true).await;
    let other = person(&store, "other@a.example", "a.example", true).await;
    (dir, store, clock, owner, other)
}

#[tokio::test]
async fn a_cut_upload_resumes_from_the_last_sealed_chunk() {
    let (_dir, store, _clock, owner, _) = setup().await;
    let file = canary(3 * CHUNK + 1234);
    let up = store
        .uploads()
        .create(&owner, "scan.pdf", file.len() as u64)
        .await
        .unwrap();
    assert_eq!((up.offset, up.length), (0, file.len() as u64));
    // Cut at ~70%: the whole chunks that arrived are kept, the rest is not.
    let cut_at = 2 * CHUNK + 5000;
    let after_cut = store
        .uploads()
        .append(&owner, &up.id, 0, cut_body(&file[..cut_at]))
        .await
        .unwrap();
    assert_eq!(after_cut.offset, 2 * CHUNK as u64);
    assert!(!after_cut.is_complete());
    assert_eq!(
        store.uploads().status(&owner, &up.id).await.unwrap().offset,
        2 * CHUNK as u64
    );
    assert!(
        store.uploads().open(&owner, &up.id).await.is_err(),
        "unfinished uploads can't be sent"
    );
    // A second cut that seals nothing new changes nothing.
    let nothing = store
        .uploads()
        .append(
            &owner,
            &up.id,
            after_cut.offset,
            cut_body(&file[2 * CHUNK..2 * CHUNK + 100]),
        )
        .await
        .unwrap();
    assert_eq!(nothing.offset, 2 * CHUNK as u64);
    let done = store
        .uploads()
        .append(&owner, &up.id, nothing.offset, body(&file[2 * CHUNK..]))
        .await
        .unwrap();
    assert!(done.is_complete());
    assert_eq!(done.file_name, "scan.pdf");
    let opened = store.uploads().open(&owner, &up.id).await.unwrap();
    assert_eq!(
        (opened.size, opened.content_type.as_str()),
        (file.len() as u64, "application/pdf")
    );
    assert_eq!(read(&store, &owner, &up.id).await, file);
}

#[tokio::test]
async fn a_wrong_offset_and_too_many_bytes_are_refused() {
    let (_dir, store, _clock, owner, _) = setup().await;
    let file = canary(CHUNK + 10);
    let up = store
        .uploads()
        .create(&owner, "a.txt", file.len() as u64)
        .await
        .unwrap();
    let wrong = store.uploads().append(&owner, &up.id, 10, body(&file[10..])).await;
    assert!(matches!(wrong, Err(Error::Conflict(_))), "{wrong:?}");
    let mut longer = file.clone();
    longer.extend_from_slice(b"extra");
    let over = store.uploads().append(&owner, &up.id, 0, body(&longer)).await;
    assert!(matches!(over, Err(Error::Invalid(_))), "{over:?}");
    // What fitted in whole chunks is kept; the rest can still come.
    let status = store.uploads().status(&owner, &up.id).await.unwrap();
    assert_eq!(status.offset, CHUNK as u64);
    store
        .uploads()
        .append(&owner, &up.id, status.offset, body(&file[CHUNK..]))
        .await
        .unwrap();
    assert_eq!(read(&store, &owner, &up.id).await, file);
}

#[tokio::test]
async fn only_the_owner_sees_an_upload() {
    let (_dir, store, _clock, owner, other) = setup().await;
    let up = store.uploads().create(&owner, "a.pdf", 3).await.unwrap();
    let uploads = store.uploads();
    assert!(matches!(uploads.status(&other, &up.id).await, Err(Error::NotFound)));
    assert!(matches!(
        uploads.append(&other, &up.id, 0, body(b"abc")).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(uploads.discard(&other, &up.id).await, Err(Error::NotFound)));
    uploads.append(&owner, &up.id, 0, body(b"abc")).await.unwrap();
    assert!(matches!(uploads.open(&other, &up.id).await, Err(Error::NotFound)));
    assert_eq!(read(&store, &owner, &up.id).await, b"abc");
    uploads.discard(&owner, &up.id).await.unwrap();
    assert!(matches!(uploads.status(&owner, &up.id).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn abandoned_uploads_are_swept_with_their_blobs() {
    let (dir, store, clock, owner, _) = setup().await;
    let file = canary(2 * CHUNK);
    let idle = store
        .uploads()
        .create(&owner, "idle.pdf", file.len() as u64)
        .await
        .unwrap();
    store
        .uploads()
        .append(&owner, &idle.id, 0, cut_body(&file[..CHUNK + 1]))
        .await
        .unwrap();
    clock.advance(store.policy().uploads.abandon_after - 10);
    let fresh = store.uploads().create(&owner, "fresh.pdf", 1).await.unwrap();
    assert_eq!(store.uploads().sweep_abandoned().await.unwrap(), 0);
    clock.advance(20);
    assert_eq!(store.uploads().sweep_abandoned().await.unwrap(), 1);
    assert!(matches!(
        store.uploads().status(&owner, &idle.id).await,
        Err(Error::NotFound)
    ));
    assert!(store.uploads().status(&owner, &fresh.id).await.is_ok());
    let pieces = dir.path().join("blobs/uploads").join(idle.id.as_str());
    assert!(
        !pieces.exists() || std::fs::read_dir(&pieces).unwrap().next().is_none(),
        "the swept upload's pieces are gone"
    );
}

#[tokio::test]
async fn nothing_of_a_file_or_its_name_is_on_disk_in_clear() {
    let (dir, store, _clock, owner, _) = setup().await;
    let file = canary(2 * CHUNK + 77);
    let name = "CANARY-name-Jane-Doe-chart.pdf";
    let up = store.uploads().create(&owner, name, file.len() as u64).await.unwrap();
    store
        .uploads()
        .append(&owner, &up.id, 0, cut_body(&file[..CHUNK + 9]))
        .await
        .unwrap();
    store
        .uploads()
        .append(&owner, &up.id, CHUNK as u64, body(&file[CHUNK..]))
        .await
        .unwrap();
    let staged = store.uploads().stage_stream(&owner, name, body(&file)).await.unwrap();
    assert_eq!(read(&store, &owner, &staged.id).await, file);
    let mut files = vec![dir.path().to_owned()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        scanned += 1;
        for needle in [&b"CANARY-upload"[..], b"CANARY-name"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in clear",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert!(scanned > 3, "the scan saw the database and the blobs");
}

#[tokio::test]
async fn a_plain_form_file_streams_in_up_to_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = crate::Policy::default();
    policy.uploads.max_message_size = 100_000;
    let store = Store::open(
        crate::StoreConfig {
            database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
            blobs_url: format!("file://{}", dir.path().join("blobs").display()),
            data_dir: dir.path().join("data"),
            policy,
        },
        Arc::new(ManualClock::new(crate::testing::START)),
    )
    .await
    .unwrap();
    let owner = person(&store, "owner@a.example", "a.example", true).await;
    let exact = canary(100_000);
    let staged = store
        .uploads()
        .stage_stream(&owner, "C:\\fakepath\\x.pdf", body(&exact))
        .await
        .unwrap();
    assert_eq!(
        (staged.file_name.as_str(), staged.length, staged.is_complete()),
        ("x.pdf", 100_000, true)
    );
    assert_eq!(read(&store, &owner, &staged.id).await, exact);
    let over = store
        .uploads()
        .stage_stream(&owner, "y.pdf", body(&canary(100_001)))
        .await;
    assert!(
        matches!(&over, Err(Error::Invalid(m)) if m.contains("y.pdf") && m.contains("100000 bytes")),
        "{over:?}"
    );
    assert!(store.uploads().create(&owner, "y.pdf", 100_001).await.is_err());
    assert!(store.uploads().create(&owner, "y.pdf", 100_000).await.is_ok());
    let broken = store.uploads().stage_stream(&owner, "z.pdf", cut_body(b"abc")).await;
    assert!(matches!(broken, Err(Error::Invalid(_))), "a broken form is not staged");
    let exe = store.uploads().stage_stream(&owner, "run.exe", body(b"MZ")).await;
    assert!(matches!(&exe, Err(Error::Invalid(m)) if m.contains(".exe") && m.contains(".pdf")));
}

#[tokio::test]
async fn an_empty_file_and_one_of_whole_chunks_complete() {
    let (_dir, store, _clock, owner, _) = setup().await;
    let empty = store.uploads().create(&owner, "e.txt", 0).await.unwrap();
    let done = store.uploads().append(&owner, &empty.id, 0, body(b"")).await.unwrap();
    assert!(done.is_complete());
    assert!(read(&store, &owner, &empty.id).await.is_empty());
    let file = canary(2 * CHUNK);
    let up = store
        .uploads()
        .create(&owner, "w.txt", file.len() as u64)
        .await
        .unwrap();
    store.uploads().append(&owner, &up.id, 0, body(&file)).await.unwrap();
    assert_eq!(read(&store, &owner, &up.id).await, file);
}

#[tokio::test]
async fn free_accounts_send_zip_stl_and_dicom_only_inside_their_network() {
    let (_dir, store, _clock, _, _) = setup().await;
    let free = person(&store, "free@a.example", "a.example", false).await;
    let paid = person(&store, "paid@a.example", "a.example", true).await;
    person(&store, "colleague@a.example", "a.example", true).await;
    person(&store, "outsider@b.example", "b.example", true).await;
    let uploads = store.uploads();
    let zip = vec![("x-rays.zip".to_owned(), 10)];
    let inside = vec!["colleague@a.example".to_owned()];
    let outside = vec!["colleague@a.example".to_owned(), "outsider@b.example".to_owned()];
    assert!(uploads.check_outgoing(&free, &inside, &zip).await.is_ok());
    for name in ["x-rays.zip", "crown.STL", "scan.dcm"] {
        let refused = uploads
            .check_outgoing(&free, &outside, &[(name.to_owned(), 10)])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(name) && refused.contains("outsider@b.example"),
            "{refused}"
        );
    }
    assert!(
        uploads
            .check_outgoing(&free, &outside, &[("a.pdf".into(), 10)])
            .await
            .is_ok()
    );
    assert!(uploads.check_outgoing(&paid, &outside, &zip).await.is_ok());
    assert!(
        uploads
            .check_outgoing(&paid, &outside, &[("a.exe".into(), 1)])
            .await
            .is_err()
    );
    // A free account outside any practice: its network is the practices
    // that invited it (those that have it as a contact).
    let patient_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, role, status, created_at) VALUES ('pat@c.example', 'patient', 'active', 0) RETURNING id",
    )
    .fetch_one(&store.db)
    .await
    .unwrap();
    let practice_a = paid.practice_id.unwrap().0;
    sqlx::query("INSERT INTO contacts (practice_id, user_id, relationship, created_at) VALUES ($1, $2, 'patient', 0)")
        .bind(practice_a)
        .bind(patient_id)
        .execute(&store.db)
        .await
        .unwrap();
    let patient = store.accounts().user(crate::ids::UserId(patient_id)).await.unwrap();
    assert!(uploads.check_outgoing(&patient, &inside, &zip).await.is_ok());
    assert!(uploads.check_outgoing(&patient, &outside, &zip).await.is_err());
}
