//! The two layouts of a sealed message (`bundle.rs`): a small one as one
//! bundle, a large one as a blob per piece. Each reads back byte for byte
//! (recipients' copy, text, attachments), and nothing of it is in clear on disk.

use futures::StreamExt;

use super::*;
use crate::Store;
use crate::accounts::User;
use crate::ids::UserId;

/// A string that must never be found in clear anywhere under the data folder.
const CANARY: &str = "CANARY-7f3c9e1d-PHI";

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

/// A message with a text body and one attachment of `attachment` (base64 in
/// 76-column lines), each carrying the canary.
fn message(attachment: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(attachment);
    let mut lines = String::new();
    for line in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(line).unwrap());
        lines.push_str("\r\n");
    }
    format!(
        "From: Ada <ada@smiles.example>\r\nTo: pat@example.org\r\nSubject: [secure] {CANARY} subject\r\n\
         X-Sealpost-Role: pat@example.org patient\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nDear Pat, {CANARY} in the body.\r\n\
         --b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"{CANARY}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--b1--\r\n"
    )
    .into_bytes()
}

async fn seal(store: &Store, from: &User, raw: &[u8]) -> MessageId {
    seal_from(store, from, raw).await.0
}

/// Spools, accepts and seals `raw`; says where it waited: in a spool file
/// (`true`) or in its spool row (`false`). Either way nothing is left behind.
async fn seal_from(store: &Store, from: &User, raw: &[u8]) -> (MessageId, bool) {
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer.write(raw).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    store
        .queue()
        .accept_secure(&spooled, &from.email, &["pat@example.org".to_owned()], from.id)
        .await
        .unwrap();
    let file = store.spool_in().join(spooled.id.as_str());
    let in_file = file.exists();
    let data: Option<Vec<u8>> = sqlx::Row::get(
        &sqlx::query("SELECT data FROM spool WHERE id = $1")
            .bind(spooled.id.as_str())
            .fetch_one(&store.db)
            .await
            .unwrap(),
        "data",
    );
    assert_eq!(
        data.is_none(),
        in_file,
        "in its file or in its row, never both or neither"
    );
    store.mail().seal_spooled(&spooled.id).await.unwrap();
    assert!(!file.exists(), "the spool file goes with the seal");
    let left: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM spool")
            .fetch_one(&store.db)
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(left, 0, "the spool row goes with the seal");
    (spooled.id, in_file)
}

async fn collect(mut stream: futures::stream::BoxStream<'static, Result<bytes::Bytes>>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn files_of(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file under `root` (database, its log, blobs, spool), as bytes.
fn every_file(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_small_message_is_one_bundle_a_large_one_a_blob_per_piece_and_both_read_back_whole() {
    let (dir, store, _) = crate::testing::store().await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'Smiles', 'smiles.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let ada = user(&store, "ada@smiles.example", "doctor", Some(1)).await;
    let small_pdf: Vec<u8> = format!("%PDF-1.4 {CANARY} small").into_bytes();
    let mut large_pdf = format!("%PDF-1.4 {CANARY} large ").into_bytes();
    large_pdf.extend((0..400_000u32).map(|i| (i % 251) as u8));
    // Past what the spool keeps in a row (128 KiB sealed), still one bundle.
    let mut medium_pdf = format!("%PDF-1.4 {CANARY} medium ").into_bytes();
    medium_pdf.extend((0..150_000u32).map(|i| (i % 241) as u8));
    let small_raw = message(&small_pdf);
    let medium_raw = message(&medium_pdf);
    let large_raw = message(&large_pdf);
    assert!(medium_raw.len() as u64 <= SMALL_MESSAGE && large_raw.len() as u64 > SMALL_MESSAGE);

    let (small, small_in_file) = seal_from(&store, &ada, &small_raw).await;
    let (medium, medium_in_file) = seal_from(&store, &ada, &medium_raw).await;
    let (large, large_in_file) = seal_from(&store, &ada, &large_raw).await;
    assert_eq!(
        (small_in_file, medium_in_file, large_in_file),
        (false, true, true),
        "a small message waits in its spool row, larger ones in a file"
    );

    let blobs = dir.path().join("blobs/messages");
    for id in [&small, &medium] {
        assert_eq!(
            files_of(&blobs.join(id.as_str())),
            ["sealed"],
            "one file for a small message"
        );
    }
    assert_eq!(
        files_of(&blobs.join(large.as_str())),
        ["meta", "part-0", "visible"],
        "a blob per piece for a large one"
    );

    let pat = store
        .accounts()
        .user_by_email("pat@example.org")
        .await
        .unwrap()
        .unwrap();
    for (id, raw, pdf) in [
        (&small, &small_raw, &small_pdf),
        (&medium, &medium_raw, &medium_pdf),
        (&large, &large_raw, &large_pdf),
    ] {
        // The recipients' copy: the original without the X-Sealpost field.
        let expected: Vec<u8> = String::from_utf8(raw.clone())
            .unwrap()
            .replace("X-Sealpost-Role: pat@example.org patient\r\n", "")
            .into_bytes();
        let copy = collect(store.mail().open_original(&pat, id, "test", false).await.unwrap()).await;
        assert_eq!(copy, expected, "the recipients' copy reads back byte for byte");
        let view = store.mail().open_message(&pat, id, "test").await.unwrap();
        assert_eq!(
            view.meta.text.as_deref(),
            Some(format!("Dear Pat, {CANARY} in the body.").as_str())
        );
        assert_eq!(view.meta.attachments.len(), 1);
        assert_eq!(view.meta.attachments[0].size, pdf.len() as u64);
        let (meta, stream) = store.mail().open_attachment(&pat, id, 0, "test").await.unwrap();
        assert_eq!(meta.name, format!("{CANARY}.pdf"));
        assert_eq!(&collect(stream).await, pdf, "the attachment reads back byte for byte");
        assert!(matches!(
            store.mail().open_attachment(&pat, id, 1, "test").await,
            Err(crate::Error::NotFound)
        ));
        let size: i64 = sqlx::Row::get(
            &sqlx::query("SELECT size FROM messages WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&store.db)
                .await
                .unwrap(),
            "size",
        );
        assert_eq!(size, expected.len() as i64, "the size IMAP announces");
    }

    // Nothing in clear on disk: not the canary, not a line of the attachment.
    store.close().await;
    for (path, bytes) in every_file(dir.path()) {
        for needle in [CANARY.as_bytes(), &large_pdf[30..80], &medium_pdf[40..90]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "clear text in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_bundle_that_was_tampered_with_does_not_open() {
    let (dir, store, _) = crate::testing::store().await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'Smiles', 'smiles.example', 0)")
        .execute(&store.db)
        .await
        .unwrap();
    let ada = user(&store, "ada@smiles.example", "doctor", Some(1)).await;
    let raw = message(b"%PDF small");
    let id = seal(&store, &ada, &raw).await;
    let pat = store
        .accounts()
        .user_by_email("pat@example.org")
        .await
        .unwrap()
        .unwrap();
    let path = dir.path().join(format!("blobs/messages/{id}/sealed"));
    let good = std::fs::read(&path).unwrap();
    // One byte flipped in the last piece (the metadata): the view fails, never
    // shows something else.
    let mut bad = good.clone();
    let last = bad.len() - 20;
    bad[last] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        store.mail().open_message(&pat, &id, "test").await,
        Err(crate::Error::Crypto)
    ));
    std::fs::write(&path, &good).unwrap();
    assert!(store.mail().open_message(&pat, &id, "test").await.is_ok());
}
