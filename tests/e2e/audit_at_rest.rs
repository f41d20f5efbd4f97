//! Data at rest: a shredded message's wrapped key is gone from the database files;
//! a delivery error keeps the reply codes, not the remote server's text.

use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};
use store::ids::MessageId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::harness::{Instance, files_containing};
use super::secure_send::{canary, secure_message, send_via_relay};

async fn database(instance: &Instance) -> AnyConnection {
    AnyConnection::connect(&instance.config.database_url()).await.unwrap()
}

fn on_sqlite(instance: &Instance) -> bool {
    instance.config.database_url().starts_with("sqlite:")
}

/// The sealed messages' ids and wrapped keys, once there are `count`.
async fn sealed_keys(instance: &Instance, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut db = database(instance).await;
    for _ in 0..300 {
        let rows = sqlx::query("SELECT id, wrapped_key FROM messages WHERE state = 'sealed' ORDER BY created_at, id")
            .fetch_all(&mut db)
            .await
            .unwrap();
        if rows.len() >= count {
            return rows
                .iter()
                .map(|r| (r.try_get("id").unwrap(), r.try_get("wrapped_key").unwrap()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} messages were not sealed within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_expired_message_leaves_no_wrapped_key_in_the_database_files() {
    let instance = Instance::start().await;
    let ada = instance.practice_with_doctor().await;
    shred_and_scan(&instance, &ada).await;
}

/// The same in a database file in WAL mode (as sqlx before 0.9 made them, and
/// the mode stays with the file), where the log keeps older page images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_leaves_no_wrapped_key_in_the_write_ahead_log() {
    let instance = Instance::start().await;
    if !on_sqlite(&instance) {
        return;
    }
    let stopped = instance.stop().await;
    let mut db = AnyConnection::connect(&stopped.config.database_url()).await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode = WAL")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(mode, "wal");
    db.close().await.unwrap();
    let instance = stopped.start().await;
    let ada = instance.practice_with_doctor().await;
    shred_and_scan(&instance, &ada).await;
    let wal = instance.config.data_dir.join("sealpost.db-wal");
    assert!(wal.exists(), "the database should be in WAL mode");
}

async fn shred_and_scan(instance: &Instance, ada: &store::accounts::User) {
    for to in ["p1@example.org", "p2@example.org", "p3@example.org"] {
        let message = secure_message(to, &canary(), b"report", Some("patient"));
        send_via_relay(instance, "ada@smiles.example", &[to], &message)
            .await
            .expect("accepted with 250");
    }
    let keys = sealed_keys(instance, 3).await;
    let data = &instance.config.data_dir;
    if on_sqlite(instance) {
        for (_, key) in &keys {
            assert!(
                !files_containing(data, key).is_empty(),
                "the scan must find a live wrapped key"
            );
        }
    }

    // The sender deletes the first message.
    let first = MessageId::parse(&keys[0].0).unwrap();
    instance
        .store()
        .delete_message(&ada, &first, "127.0.0.1")
        .await
        .unwrap();
    // The second expires.
    instance.clock.advance(31 * 86_400);
    let mut db = database(instance).await;
    sqlx::query("UPDATE messages SET expires_at = $1 WHERE id <> $2")
        .bind(instance.store().now() + 86_400)
        .bind(&keys[1].0)
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(instance.store().purge_expired().await.unwrap(), 1);

    let nulls: i64 = sqlx::query("SELECT COUNT(*) AS n FROM messages WHERE wrapped_key IS NULL")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(nulls, 2);
    drop(db);
    if on_sqlite(instance) {
        // Not in the database file, not in its write-ahead log, nowhere under data/.
        for (id, key) in &keys[..2] {
            assert_eq!(
                files_containing(data, key),
                Vec::<std::path::PathBuf>::new(),
                "the wrapped key of shredded message {id} is still readable"
            );
        }
        assert!(
            !files_containing(data, &keys[2].1).is_empty(),
            "the live message's key must still be there"
        );
    }
}

/// A smarthost that refuses every recipient the way real servers do: naming them.
async fn refusing_smarthost() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 mx.example.net ESMTP\r\n").await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                        Some("EHLO" | "HELO") => b"250 mx.example.net\r\n",
                        Some("MAIL") => b"250 2.1.0 Ok\r\n",
                        Some("RCPT") => {
                            b"550-5.1.1 <vendor@example.com>: Recipient address rejected:\r\n550 5.1.1 Jane Vendor is unknown here\r\n"
                        }
                        Some("QUIT") => {
                            write.write_all(b"221 2.0.0 Bye\r\n").await.ok();
                            return;
                        }
                        _ => b"502 5.5.2 Error\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_stores_the_reply_codes_not_the_remote_text() {
    let port = refusing_smarthost().await;
    let instance = Instance::start_with(|c| {
        c.outbound.mode = "smarthost".into();
        c.outbound.smarthost = format!("127.0.0.1:{port}");
        c.outbound.smarthost_tls = "none".into();
    })
    .await;
    let message =
        b"From: staff@smiles.example\r\nTo: vendor@example.com\r\nSubject: Order\r\n\r\nPlease send gloves.\r\n";
    send_via_relay(&instance, "staff@smiles.example", &["vendor@example.com"], message)
        .await
        .unwrap();
    let mut db = database(&instance).await;
    let mut errors = Vec::new();
    for _ in 0..100 {
        errors =
            sqlx::query("SELECT last_error FROM outbound WHERE rcpt_to = 'vendor@example.com' AND state = 'failed'")
                .fetch_all(&mut db)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    r.try_get::<Option<String>, _>("last_error")
                        .unwrap()
                        .unwrap_or_default()
                })
                .collect();
        if !errors.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        errors,
        ["smarthost refused: 550 5.1.1"],
        "the refusal, reduced to its codes"
    );
}
