//! Data at rest: a shredded message's wrapped key is gone from the database files;
//! the audit chain is keyed and checked against an anchor (also by the CLI); and a
//! delivery error keeps the reply codes, not the remote server's text.

use std::process::Output;
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};
use store::audit::{Anchor, AuditBreak, AuditEvent};
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

/// Runs the real `sealpost` binary against the instance's folder and database.
pub(super) fn sealpost(instance: &Instance, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", &instance.config.data_dir)
        .env("SEALPOST_DATABASE_URL", instance.config.database_url())
        .env("SEALPOST_LOG", "error")
        .output()
        .unwrap()
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
        .mail()
        .delete_message(ada, &first, "127.0.0.1")
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
    assert_eq!(instance.store().mail().purge_expired().await.unwrap(), 1);

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

/// The first audit chains used plain SHA-256 over this input.
fn plain_chain_hash(prev: &[u8], at: i64, fields: [&str; 4]) -> Vec<u8> {
    let at = at.to_string();
    let mut input = prev.to_vec();
    for field in std::iter::once(at.as_str()).chain(fields) {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field.as_bytes());
    }
    store::crypto::sha256(&input)
}

/// Re-chains every row from `from_id` on with plain SHA-256, as someone with
/// write access to the database but without the audit key would.
async fn rechain_plain(db: &mut AnyConnection, from_id: i64) {
    let rows = sqlx::query("SELECT id, at, actor, action, object, client, hash FROM audit ORDER BY id")
        .fetch_all(&mut *db)
        .await
        .unwrap();
    let mut prev: Option<Vec<u8>> = None;
    for row in rows {
        let id: i64 = row.try_get("id").unwrap();
        if id < from_id {
            prev = Some(row.try_get("hash").unwrap());
            continue;
        }
        let prev_hash = prev.clone().unwrap_or_else(|| vec![0u8; 32]);
        let fields: [String; 4] = ["actor", "action", "object", "client"].map(|c| row.try_get(c).unwrap());
        let hash = plain_chain_hash(
            &prev_hash,
            row.try_get("at").unwrap(),
            [&fields[0], &fields[1], &fields[2], &fields[3]],
        );
        sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev_hash)
            .bind(&hash)
            .bind(id)
            .execute(&mut *db)
            .await
            .unwrap();
        prev = Some(hash);
    }
}

async fn audit_ids(db: &mut AnyConnection) -> Vec<i64> {
    sqlx::query("SELECT id FROM audit ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("id").unwrap())
        .collect()
}

async fn some_events(instance: &Instance, n: usize) {
    for i in 0..n {
        instance
            .store()
            .audit(AuditEvent {
                actor: "user:1",
                action: "message.view",
                object: &format!("message:{i}"),
                client: "127.0.0.1",
            })
            .await
            .unwrap();
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_entry_rewritten_and_rechained_with_sha256_is_caught() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    some_events(&instance, 4).await;
    assert!(instance.store().audit_log().verify_audit().await.unwrap().is_ok());
    let ok = sealpost(&instance, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Someone with database access makes entry 3 say somebody else did it and
    // recomputes the chain from there, as a plain SHA-256 chain verifies.
    let mut db = database(&instance).await;
    let ids = audit_ids(&mut db).await;
    let target = ids[2];
    sqlx::query("UPDATE audit SET actor = 'user:999' WHERE id = $1")
        .bind(target)
        .execute(&mut db)
        .await
        .unwrap();
    rechain_plain(&mut db, target).await;
    drop(db);

    assert_eq!(instance.store().audit_log().verify_audit().await.unwrap(), Err(target));
    let broken = sealpost(&instance, &["audit", "verify"]);
    assert!(!broken.status.success(), "a rewritten log must fail verification");
    assert!(
        stderr(&broken).contains(&format!("audit log broken at entry {target}")),
        "{}",
        stderr(&broken)
    );
    let anchor = sealpost(&instance, &["audit", "anchor"]);
    assert!(!anchor.status.success(), "no anchor from a broken log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_newest_audit_entries_is_caught_against_the_anchor() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    some_events(&instance, 5).await;

    // The admin keeps an anchor (the server also logs one).
    let printed = sealpost(&instance, &["audit", "anchor"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    let anchor_text = String::from_utf8(printed.stdout).unwrap().trim().to_owned();
    let anchor: Anchor = anchor_text.parse().unwrap();
    assert_eq!(
        instance.store().audit_log().audit_anchor().await.unwrap(),
        Some(anchor.clone())
    );
    let reaches = sealpost(&instance, &["audit", "verify", "--anchor", &anchor_text]);
    assert!(reaches.status.success(), "{}", stderr(&reaches));

    // The newest three entries disappear; the rest of the chain is consistent.
    let mut db = database(&instance).await;
    sqlx::query("DELETE FROM audit WHERE id > $1")
        .bind(anchor.id - 3)
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    assert!(instance.store().audit_log().verify_audit().await.unwrap().is_ok());
    assert_eq!(
        instance
            .store()
            .audit_log()
            .verify_audit_against(Some(&anchor))
            .await
            .unwrap(),
        Err(AuditBreak::AnchorMissing { anchor: anchor.clone() })
    );
    let cut = sealpost(&instance, &["audit", "verify", "--anchor", &anchor_text]);
    assert!(!cut.status.success(), "a log cut short must fail against the anchor");
    assert!(
        stderr(&cut).contains(&format!("entry {} is missing, so entries were removed", anchor.id)),
        "{}",
        stderr(&cut)
    );

    // The server keeps appending after the cut: still caught.
    some_events(&instance, 4).await;
    assert!(matches!(
        instance
            .store()
            .audit_log()
            .verify_audit_against(Some(&anchor))
            .await
            .unwrap(),
        Err(AuditBreak::AnchorMissing { .. } | AuditBreak::AnchorMismatch { .. })
    ));

    // A malformed anchor is a clear error, not a pass.
    let bad = sealpost(&instance, &["audit", "verify", "--anchor", "latest"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("an audit anchor looks like"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_from_before_the_keyed_chain_still_verify_and_cannot_be_rewritten() {
    let instance = Instance::start().await;
    let mut db = database(&instance).await;
    // A log written by an older version: plain SHA-256, scheme 1.
    sqlx::query("DELETE FROM audit").execute(&mut db).await.unwrap();
    let mut prev = vec![0u8; 32];
    for i in 0..3 {
        let object = format!("message:old{i}");
        let hash = plain_chain_hash(&prev, 1_700_000_000 + i, ["system", "message.expire", &object, ""]);
        sqlx::query("INSERT INTO audit (at, actor, action, object, client, prev_hash, hash, scheme) VALUES ($1, 'system', 'message.expire', $2, '', $3, $4, 1)")
            .bind(1_700_000_000 + i)
            .bind(&object)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut db)
            .await
            .unwrap();
        prev = hash;
    }
    assert_eq!(instance.store().audit_log().verify_audit().await.unwrap(), Ok(3));
    // The upgraded server appends keyed entries after them.
    some_events(&instance, 2).await;
    assert_eq!(instance.store().audit_log().verify_audit().await.unwrap(), Ok(5));
    let ids = audit_ids(&mut db).await;

    // Rewriting an old entry and re-chaining the old part is caught where the
    // keyed part begins.
    sqlx::query("UPDATE audit SET object = 'message:other' WHERE id = $1")
        .bind(ids[1])
        .execute(&mut db)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT id, at, actor, action, object, client FROM audit WHERE scheme = 1 ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let mut prev = vec![0u8; 32];
    for row in rows {
        let fields: [String; 4] = ["actor", "action", "object", "client"].map(|c| row.try_get(c).unwrap());
        let hash = plain_chain_hash(
            &prev,
            row.try_get("at").unwrap(),
            [&fields[0], &fields[1], &fields[2], &fields[3]],
        );
        sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(row.try_get::<i64, _>("id").unwrap())
            .execute(&mut db)
            .await
            .unwrap();
        prev = hash;
    }
    assert_eq!(instance.store().audit_log().verify_audit().await.unwrap(), Err(ids[3]));

    // Nor can keyed entries be downgraded to plain ones.
    sqlx::query("DELETE FROM audit").execute(&mut db).await.unwrap();
    some_events(&instance, 3).await;
    let ids = audit_ids(&mut db).await;
    sqlx::query("UPDATE audit SET scheme = 1 WHERE id >= $1")
        .bind(ids[1])
        .execute(&mut db)
        .await
        .unwrap();
    rechain_plain(&mut db, ids[1]).await;
    assert_eq!(instance.store().audit_log().verify_audit().await.unwrap(), Err(ids[1]));
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
        c.outbound.mode = sealpost::config::OutboundMode::Smarthost;
        c.outbound.smarthost = format!("127.0.0.1:{port}");
        c.outbound.smarthost_tls = sealpost::config::SmarthostTls::None;
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
    // Nor does the log keep the remote text (it names the recipient).
    let logs = super::harness::logs();
    assert!(
        logs.contains("smarthost refused: 550 5.1.1"),
        "the log says what failed"
    );
    assert!(!logs.contains("Jane Vendor"), "the remote text reached the log");
}
