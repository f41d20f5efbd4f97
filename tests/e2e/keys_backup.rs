//! Keys and backups (issue 17): `sealpost keys rotate` interrupted and resumed
//! beside a running server, every message still opening, then the old KEK
//! retired; `sealpost backup` of a running instance restored onto a fresh folder,
//! where a new server reads the old message over IMAP and the audit chain
//! verifies; `sealpost audit export` in both formats, without PHI.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};
use store::audit::AuditEvent;
use store::ids::MessageId;

use super::harness::{Instance, Stopped, database_url};
use super::imap::{client, setup};
use super::secure_send::{ada_sends, canary};

/// Runs the real `sealpost` binary on a data folder and database.
fn sealpost_on(data_dir: &Path, database_url: &str, args: &[&str]) -> Output {
    sealpost_env(data_dir, database_url, &[], args)
}

fn sealpost_env(data_dir: &Path, database_url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", data_dir)
        .env("SEALPOST_DATABASE_URL", database_url)
        .env("SEALPOST_LOG", "error")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn sealpost(instance: &Instance, args: &[&str]) -> Output {
    sealpost_on(&instance.config.data_dir, &instance.config.database_url(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "sealpost failed:\n{}\n{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Bob's inbox, once it holds `count` messages.
async fn inbox(instance: &Instance, count: usize) -> Vec<MessageId> {
    let bob = instance
        .store()
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    for _ in 0..300 {
        let ids: Vec<MessageId> = instance
            .store()
            .mail()
            .inbox(&bob, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        if ids.len() >= count {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bob never had {count} messages");
}

/// Bob opens every message through the store; each must hold its canary.
async fn every_message_opens(instance: &Instance, canaries: &[String]) {
    let bob = instance
        .store()
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let mut texts = Vec::new();
    for id in inbox(instance, canaries.len()).await {
        let mut stream = instance
            .store()
            .mail()
            .open_original(&bob, &id, "test", false)
            .await
            .unwrap();
        let mut text = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            text.extend_from_slice(&chunk.unwrap());
        }
        texts.push(String::from_utf8_lossy(&text).into_owned());
    }
    for canary in canaries {
        assert!(
            texts.iter().any(|t| t.contains(canary.as_str())),
            "a message no longer opens"
        );
    }
}

/// The KEK ids `sealpost keys list` shows, with their counts and status.
fn keks(instance: &Instance) -> Vec<(String, u64, String)> {
    succeeded(&sealpost(instance, &["keys", "list"]))
        .lines()
        .skip(1)
        .map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next().unwrap().to_owned();
            let count = parts.next().unwrap().parse().unwrap();
            (id, count, parts.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_interrupted_and_resumed_beside_a_server_then_the_old_kek_retires() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let mut canaries = Vec::new();
    for _ in 0..3 {
        canaries.push(canary());
        ada_sends(
            &instance,
            "bob@smiles.example",
            canaries.last().unwrap(),
            b"%PDF-1.4",
            None,
        )
        .await;
    }
    inbox(&instance, 3).await;
    let before = keks(&instance);
    assert_eq!(before.len(), 1, "{before:?}");
    let (old, old_count, _) = before[0].clone();
    assert!(old_count >= 3, "three messages at least: {before:?}");

    // Interrupted: one data key per batch, stopping after two.
    let first = succeeded(&sealpost(
        &instance,
        &["keys", "rotate", "--batch", "1", "--max-keys", "2"],
    ));
    assert!(first.contains("Stopped after 2 data keys"), "{first}");
    let new = first.split_whitespace().nth(3).unwrap().to_owned();
    assert_ne!(new, old);
    // (Notifications the server queues meanwhile add keys: counts only grow.)
    let during = keks(&instance);
    assert!(
        during
            .iter()
            .any(|(id, n, status)| *id == old && *n > 0 && status.starts_with("old: run `sealpost keys rotate`")),
        "{during:?}"
    );
    assert!(
        during
            .iter()
            .any(|(id, n, status)| *id == new && *n >= 2 && status == "active"),
        "{during:?}"
    );
    let refused = sealpost(&instance, &["keys", "retire", "--id", &old]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("still wraps"), "{}", stderr(&refused));

    // The running server seals a new message under the new KEK at once, and
    // opens the ones already moved.
    canaries.push(canary());
    ada_sends(
        &instance,
        "bob@smiles.example",
        canaries.last().unwrap(),
        b"%PDF-1.4",
        None,
    )
    .await;
    let ids = inbox(&instance, 4).await;
    let mut db = AnyConnection::connect(&instance.config.database_url()).await.unwrap();
    let newest: String = sqlx::query("SELECT kek_id FROM messages WHERE id = $1")
        .bind(ids[0].as_str())
        .fetch_one(&mut db)
        .await
        .unwrap()
        .try_get("kek_id")
        .unwrap();
    assert_eq!(newest, new, "a message sealed mid-rotation uses the newest KEK");
    every_message_opens(&instance, &canaries).await;

    // Resumed: the progress was kept.
    let second = succeeded(&sealpost(&instance, &["keys", "rotate"]));
    assert!(
        second.contains(&format!("Resuming the rotation to key-encryption key {new}: 2 of")),
        "{second}"
    );
    assert!(second.contains("Rotation finished"), "{second}");
    assert!(second.contains(&format!("sealpost keys retire --id {old}")), "{second}");
    let rows = sqlx::query(
        "SELECT kek_id FROM messages UNION ALL SELECT kek_id FROM outbound UNION ALL SELECT kek_id FROM spool",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(rows.iter().all(|r| r.try_get::<String, _>("kek_id").unwrap() == new));
    let (kept, finished): (i64, Option<i64>) = {
        let row = sqlx::query("SELECT rewrapped, finished_at FROM kek_rotations WHERE kek_id = $1")
            .bind(&new)
            .fetch_one(&mut db)
            .await
            .unwrap();
        (row.try_get("rewrapped").unwrap(), row.try_get("finished_at").unwrap())
    };
    assert!(
        u64::try_from(kept).unwrap() >= old_count,
        "every old key counted: {kept}"
    );
    assert!(finished.is_some());
    every_message_opens(&instance, &canaries).await;

    // Retired: its file is gone, and every message still opens, after a restart too.
    let retired = succeeded(&sealpost(&instance, &["keys", "retire", "--id", &old]));
    assert!(retired.contains("retired"), "{retired}");
    assert!(!instance.config.data_dir.join(format!("keys/kek-{old}.key")).exists());
    let after = keks(&instance);
    assert!(
        matches!(&after[..], [(id, n, status)] if *id == new && *n > old_count && status == "active"),
        "{after:?}"
    );
    let again = sealpost(&instance, &["keys", "retire", "--id", &new]);
    assert!(!again.status.success(), "the active KEK is never retired");
    let instance = instance.stop().await.start().await;
    every_message_opens(&instance, &canaries).await;
    let out = instance.dir.path().join("fetched.eml");
    let text = client(&instance, "tls", "bob@smiles.example", &bob_pw, &out).await;
    assert!(text.contains("inbox 4"), "{text}");
    let fetched = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert!(
        canaries.iter().any(|c| fetched.contains(c.as_str())),
        "IMAP reads a rewrapped message"
    );
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, action, object)| action == "keys.rotate" && *object == format!("kek:{new}"))
    );
    assert!(
        audit
            .iter()
            .any(|(_, action, object)| action == "keys.retire" && *object == format!("kek:{old}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_running_server_restores_on_a_fresh_folder_and_the_old_message_reads() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"%PDF-1.4 old report", None).await;
    inbox(&instance, 1).await;
    // Both DKIM keys (RSA and Ed25519) go with the backup and come back, and
    // so do another signing domain's (`[[dkim.domains]]`).
    succeeded(&sealpost(&instance, &["dkim", "keygen"]));
    succeeded(&sealpost(&instance, &["dkim", "keygen", "--domain", "brite.example"]));
    let brite = [("SEALPOST_DKIM_DOMAINS", r#"[{ domain = "brite.example" }]"#)];
    let dkim_keys = |data_dir: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let root = data_dir.join("dkim");
        let mut keys = Vec::new();
        for dir in [root.clone(), root.join("brite.example")] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_file() {
                    let name = entry.path().strip_prefix(&root).unwrap().to_owned();
                    keys.push((name, std::fs::read(entry.path()).unwrap()));
                }
            }
        }
        keys.sort();
        keys
    };
    let dkim_before = dkim_keys(&instance.config.data_dir);
    assert_eq!(
        dkim_before.len(),
        4,
        "an RSA and an Ed25519 key, twice: {dkim_before:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("backup");
    let keys = elsewhere.path().join("keys-offline");

    // Taken while the server runs; the keys go apart, with a warning.
    let made = sealpost_env(
        &instance.config.data_dir,
        &instance.config.database_url(),
        &brite,
        &["backup", backup.to_str().unwrap(), "--keys-to", keys.to_str().unwrap()],
    );
    succeeded(&made);
    assert!(stderr(&made).contains("WARNING"), "{}", stderr(&made));
    assert!(stderr(&made).contains("never beside the backup"), "{}", stderr(&made));
    assert!(!backup.join("keys").exists(), "the keys are not in the backup folder");
    assert!(keys.join("audit.key").is_file() && keys.join("active").is_file());
    assert!(keys.join("dkim-domains/brite.example/ed25519.key").is_file());
    assert!(
        super::harness::files_containing(&backup, canary.as_bytes()).is_empty(),
        "the backup holds only sealed content"
    );
    let again = sealpost(&instance, &["backup", backup.to_str().unwrap()]);
    assert!(
        !again.status.success() && stderr(&again).contains("not empty"),
        "{}",
        stderr(&again)
    );
    let Stopped { clock, config, dir } = instance.stop().await;
    drop(dir); // The old machine is gone.

    let fresh = tempfile::tempdir().unwrap();
    let data_dir = fresh.path().join("data");
    let url = fresh_database_for(&config, &data_dir).await;
    let without_keys = sealpost_on(&data_dir, &url, &["restore", backup.to_str().unwrap()]);
    assert!(!without_keys.status.success());
    assert!(
        stderr(&without_keys).contains("--keys-from"),
        "{}",
        stderr(&without_keys)
    );
    let restored = succeeded(&sealpost_on(
        &data_dir,
        &url,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--keys-from",
            keys.to_str().unwrap(),
        ],
    ));
    assert!(restored.contains("The audit log verifies"), "{restored}");
    // Restored without brite.example configured: to its default place, with a hint.
    assert!(restored.contains("keys of brite.example restored"), "{restored}");
    assert_eq!(dkim_keys(&data_dir), dkim_before, "every DKIM key is restored");
    let over = sealpost_on(
        &data_dir,
        &url,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--keys-from",
            keys.to_str().unwrap(),
        ],
    );
    assert!(
        !over.status.success() && stderr(&over).contains("not empty"),
        "{}",
        stderr(&over)
    );
    // Another fresh folder, but the database restored already: refused, nothing written.
    let other = fresh.path().join("other");
    let taken = sealpost_on(
        &other,
        &url,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--keys-from",
            keys.to_str().unwrap(),
        ],
    );
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("not empty") || stderr(&taken).contains("exists"),
        "{}",
        stderr(&taken)
    );
    assert!(!other.join("keys").exists());
    let verified = succeeded(&sealpost_on(&data_dir, &url, &["audit", "verify"]));
    assert!(verified.contains("Audit log intact"), "{verified}");

    // A new server on the restored folder: Bob reads the old message over IMAP.
    let mut config = config;
    config.data_dir = data_dir;
    config.database.url = Some(url);
    let instance = Stopped {
        dir: fresh,
        clock,
        config,
    }
    .start()
    .await;
    let out = instance.dir.path().join("fetched.eml");
    let text = client(&instance, "tls", "bob@smiles.example", &bob_pw, &out).await;
    assert!(text.contains("inbox 1"), "{text}");
    assert!(String::from_utf8_lossy(&std::fs::read(&out).unwrap()).contains(&canary));
}

/// A fresh, empty database of the old one's kind: a new `SQLite` file in the new
/// data folder, or a new `PostgreSQL` database.
async fn fresh_database_for(config: &sealpost::config::Config, data_dir: &Path) -> String {
    if config.database_url().starts_with("sqlite:") {
        format!("sqlite://{}/sealpost.db", data_dir.display())
    } else {
        database_url().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_export_gives_ids_not_phi_in_json_and_csv_and_refuses_a_bad_date() {
    let instance = Instance::start().await;
    setup(&instance).await;
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"%PDF-1.4", None).await;
    let id = inbox(&instance, 1).await.remove(0);
    let bob = instance
        .store()
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    instance
        .store()
        .mail()
        .open_message(&bob, &id, "203.0.113.7")
        .await
        .unwrap();
    // An entry naming someone by address (as entries from before ids did).
    instance
        .store()
        .audit(AuditEvent {
            actor: "jane.doe@patients.example",
            action: "signin.failure",
            object: "Jane Doe",
            client: "198.51.100.4",
        })
        .await
        .unwrap();

    let json = succeeded(&sealpost(&instance, &["audit", "export", "--since", "2020-01-01"]));
    let records: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.len() >= 3, "{json}");
    for record in &records {
        let mut keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["action", "actor", "at", "client", "hash", "id", "object", "time"]
        );
    }
    let view = records
        .iter()
        .find(|r| r["action"] == "message.view")
        .expect("the view");
    assert_eq!(view["actor"], format!("user:{}", bob.id));
    assert_eq!(view["object"], format!("message:{id}"));
    assert_eq!(view["client"], "203.0.113.7");
    assert!(view["time"].as_str().unwrap().ends_with('Z'));
    let redacted = records.iter().find(|r| r["action"] == "signin.failure").unwrap();
    assert_eq!(redacted["actor"], "[redacted]");
    assert_eq!(redacted["object"], "[redacted]");
    for phi in [
        canary.as_str(),
        "jane.doe",
        "Jane Doe",
        "bob@smiles.example",
        "ada@smiles.example",
    ] {
        assert!(!json.contains(phi), "{phi} leaked: {json}");
    }

    let csv = succeeded(&sealpost(
        &instance,
        &["audit", "export", "--since", "2020-01-01T00:00:00Z", "--format", "csv"],
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,time,at,actor,action,object,client,hash"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), records.len());
    assert!(
        rows.iter()
            .any(|r| r.contains(&format!(",user:{},message.view,message:{id},203.0.113.7,", bob.id)))
    );
    assert!(!csv.contains("jane.doe") && !csv.contains(&canary));

    // A later --since leaves the earlier entries out; a bad date is refused.
    let none = succeeded(&sealpost(&instance, &["audit", "export", "--since", "2099-01-01"]));
    assert!(none.is_empty(), "{none}");
    for bad in ["yesterday", "2026-02-30", "01/12/2026"] {
        let refused = sealpost(&instance, &["audit", "export", "--since", bad]);
        assert!(!refused.status.success(), "{bad}");
        assert!(stdout(&refused).is_empty());
        assert!(stderr(&refused).contains("is not a date"), "{}", stderr(&refused));
    }
    let format = sealpost(
        &instance,
        &["audit", "export", "--since", "2020-01-01", "--format", "xml"],
    );
    assert!(!format.status.success());
}
