//! A message's end, end to end on a clock the test moves: expiry makes it
//! unreadable at once (portal page, attachment, IMAP) before any purge; the
//! purge then destroys the wrapped key (absent from the database file's bytes)
//! and the blob files; the tombstone stays ("deleted on …" for the recipient),
//! and `sealpost audit verify` still passes. Delete for everyone in the portal
//! is an EXPUNGE for the recipient's IMAP client.

use std::process::Stdio;
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::audit_at_rest::sealpost;
use super::harness::{Instance, browser, csrf_in, files_containing, set_password, sign_in};
use super::imap::{client, setup, wait_sealed};
use super::secure_send::{ada_sends, canary};

const DAY: i64 = 86_400;

async fn database(instance: &Instance) -> AnyConnection {
    AnyConnection::connect(&instance.config.database_url()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_at_once_then_the_purge_shreds_key_and_blobs_and_the_tombstone_stays() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"%PDF-1.4 scan", None).await;
    let id = wait_sealed(&instance, "bob@smiles.example").await;
    let mut db = database(&instance).await;
    let key: Vec<u8> = sqlx::query("SELECT wrapped_key FROM messages WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(&mut db)
        .await
        .unwrap()
        .try_get("wrapped_key")
        .unwrap();
    let data = instance.config.data_dir.clone();
    let on_sqlite = instance.config.database_url().starts_with("sqlite:");
    if on_sqlite {
        assert!(!files_containing(&data, &key).is_empty(), "the scan finds a live key");
    }
    let blobs = data.join("blobs/messages").join(id.as_str());
    assert!(blobs.exists());

    // Bob reads it and downloads its attachment.
    let http = browser();
    let page = sign_in(
        &http,
        &instance,
        "bob@smiles.example",
        "Staff-Pass-77",
        &format!("/m/{id}"),
    )
    .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Deletes in 30 days"));
    let download = http.get(instance.url(&format!("/m/{id}/a/0"))).send().await.unwrap();
    assert_eq!(download.status(), 200);

    // Its date passes: unreadable at once, before any purge.
    instance.clock.advance(30 * DAY);
    let http = browser();
    let gone = sign_in(
        &http,
        &instance,
        "bob@smiles.example",
        "Staff-Pass-77",
        &format!("/m/{id}"),
    )
    .await;
    assert_eq!(gone.status(), 410);
    let text = gone.text().await.unwrap();
    assert!(
        text.contains("This message was deleted on") && !text.contains(&canary),
        "{text}"
    );
    let download = http.get(instance.url(&format!("/m/{id}/a/0"))).send().await.unwrap();
    assert_eq!(download.status(), 404);
    let imap = client(
        &instance,
        "tls",
        "bob@smiles.example",
        &bob_pw,
        &instance.dir.path().join("none.eml"),
    )
    .await;
    assert!(imap.contains("inbox 0"), "{imap}");
    assert!(blobs.exists(), "not purged yet");

    // The purge destroys the wrapped key and the blob files.
    assert_eq!(instance.store().mail().purge_expired().await.unwrap(), 1);
    assert!(!blobs.exists(), "the sealed blob files are gone");
    let row = sqlx::query("SELECT wrapped_key, sealed_subject, state, ended_at, sender_id FROM messages WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(row.try_get::<Option<Vec<u8>>, _>("wrapped_key").unwrap().is_none());
    assert!(row.try_get::<Option<Vec<u8>>, _>("sealed_subject").unwrap().is_none());
    // The tombstone: who, when, how it ended; its recipients stay listed.
    assert_eq!(row.try_get::<String, _>("state").unwrap(), "expired");
    assert!(row.try_get::<Option<i64>, _>("ended_at").unwrap().is_some());
    let recipients: i64 = sqlx::query("SELECT COUNT(*) AS n FROM message_recipients WHERE message_id = $1")
        .bind(id.as_str())
        .fetch_one(&mut db)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(recipients, 1);
    drop(db);
    if on_sqlite {
        assert_eq!(
            files_containing(&data, &key),
            Vec::<std::path::PathBuf>::new(),
            "the wrapped key is still in a file under data/"
        );
    }
    assert!(files_containing(instance.dir.path(), canary.as_bytes()).is_empty());
    let page = http.get(instance.url(&format!("/m/{id}"))).send().await.unwrap();
    assert_eq!(page.status(), 410, "the tombstone outlives the purge");

    // The audit trail of its life, and the chain verifies.
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    let object = format!("message:{id}");
    for action in ["message.view", "message.expire"] {
        assert!(
            audit.iter().any(|(_, a, o)| a == action && o == &object),
            "{action} audited"
        );
    }
    let verify = sealpost(&instance, &["audit", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// imaplib holding INBOX open: says "ready", waits for a line on stdin, then
/// NOOPs and prints the EXPUNGE responses it got.
const WATCHER: &str = r#"
import imaplib, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
typ, data = m.select("INBOX")
print("ready", data[0].decode(), flush=True)
sys.stdin.readline()
m.noop()
print("expunge", m.response("EXPUNGE")[1], flush=True)
typ, data = m.select("INBOX")
print("after", data[0].decode(), flush=True)
m.logout()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_for_everyone_in_the_portal_is_an_expunge_in_the_recipients_mail_app() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-88").await;
    ada_sends(&instance, "bob@smiles.example", &canary(), b"%PDF-1.4 x", None).await;
    let id = wait_sealed(&instance, "bob@smiles.example").await;

    let mut watcher = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(WATCHER)
        .arg(instance.running.addresses.imap_tls.port().to_string())
        .arg("bob@smiles.example")
        .arg(&bob_pw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ready, "ready 1");

    // Ada deletes it for everyone from the portal.
    let http = browser();
    let page = sign_in(
        &http,
        &instance,
        "ada@smiles.example",
        "Doctor-Pass-88",
        &format!("/m/{id}"),
    )
    .await;
    let page = page.text().await.unwrap();
    assert!(page.contains("Deleting will delete this message for all users and on both ends"));
    let deleted = http
        .post(instance.url(&format!("/m/{id}/delete")))
        .form(&[("csrf", csrf_in(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.url().path(), "/sent");

    let mut stdin = watcher.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
        out.push(line);
    }
    let out = out.join("\n");
    assert!(out.contains("expunge [b'1']") && out.contains("after 0"), "{out}");
    assert!(watcher.wait().await.unwrap().success());

    // Bob's portal says when; the audit says who.
    let http = browser();
    let gone = sign_in(
        &http,
        &instance,
        "bob@smiles.example",
        "Staff-Pass-77",
        &format!("/m/{id}"),
    )
    .await;
    assert_eq!(gone.status(), 410);
    assert!(gone.text().await.unwrap().contains("This message was deleted on"));
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, a, o)| a == "message.delete" && o == &format!("message:{id}"))
    );
}
