//! Two nodes on one PostgreSQL database and one S3-compatible store (issue 16):
//! node A takes secure mail, seals it into the bucket and claims the
//! notifications' deliveries, then is killed (SIGKILL) while its smarthost
//! holds them; node B, started afterwards with its own data folder, takes the
//! claims over once their lease lapses and delivers each exactly once.
//! Needs `SEALPOST_TEST_POSTGRES_URL` (the PostgreSQL half of the suite) and
//! moto (see `s3.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};

use super::harness::{RawSmtp, database_url};
use super::s3::Moto;
use super::shutdown::{Ports, Server, free_port, log_of, sealpost};

const MESSAGES: usize = 6;

fn ports() -> Ports {
    Ports {
        relay: free_port(),
        submission: free_port(),
        imap: free_port(),
        imaps: free_port(),
        portal: free_port(),
    }
}

fn admin(dir: &Path, ports: &Ports, env: &[(&str, String)], args: &[&str]) {
    let output = sealpost(dir, ports)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "sealpost {args:?}: {output:?}");
}

/// (queued deliveries claimed by `node`, queued in all, sent in all, spool rows).
async fn queue_state(url: &str, node: &str) -> (i64, i64, i64, i64) {
    let mut db = AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM outbound WHERE state = 'queued' AND claimed_by = $1 AND claimed_until > 0) AS claimed,
                (SELECT COUNT(*) FROM outbound WHERE state = 'queued') AS queued,
                (SELECT COUNT(*) FROM outbound WHERE state = 'sent') AS sent,
                (SELECT COUNT(*) FROM spool) AS spooled",
    )
    .bind(node)
    .fetch_one(&mut db)
    .await
    .unwrap();
    let state = (
        row.get("claimed"),
        row.get("queued"),
        row.get("sent"),
        row.get("spooled"),
    );
    db.close().await.unwrap();
    state
}

/// The node's name, which it writes while opening its store: waited for (up
/// to 30 s) because a loaded machine may answer the port probe first.
async fn node_id(dir: &Path) -> String {
    let path = dir.join("data/node-id");
    for _ in 0..300 {
        if let Ok(id) = std::fs::read_to_string(&path)
            && !id.trim().is_empty()
        {
            return id.trim().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node-id in {} after 30 s\n{}", dir.display(), log_of(dir));
}

fn outbox_count(dir: &Path, marker: &str) -> usize {
    std::fs::read_dir(dir.join("data/outbox/new"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter(|m| String::from_utf8_lossy(m).contains(marker))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_claimed_deliveries_are_sent_once_by_the_other() {
    let Some(database) = database_url().await else {
        eprintln!("skipped: two nodes need SEALPOST_TEST_POSTGRES_URL");
        return;
    };
    let moto = Moto::start().await;
    moto.bucket("sealpost-nodes").await;
    // A smarthost that accepts connections and never answers: node A's
    // deliveries stay claimed, in flight, until A dies.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming() {
            held.push(stream);
        }
    });
    let shared = vec![
        ("SEALPOST_DATABASE_URL", database.clone()),
        ("SEALPOST_BLOBS_URL", moto.blobs_url("sealpost-nodes", "cluster")),
        ("SEALPOST_SERVER_JOB_LEASE", "3".to_owned()),
        ("SEALPOST_SERVER_DELIVERY_LEASE", "5".to_owned()),
    ];
    let mut env_a = shared.clone();
    env_a.extend([
        ("SEALPOST_OUTBOUND_MODE", "smarthost".to_owned()),
        ("SEALPOST_OUTBOUND_SMARTHOST", hole_addr.to_string()),
        ("SEALPOST_OUTBOUND_SMARTHOST_TLS", "none".to_owned()),
    ]);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ports_a, ports_b) = (ports(), ports());
    admin(dir_a.path(), &ports_a, &shared, &["migrate"]);
    admin(
        dir_a.path(),
        &ports_a,
        &shared,
        &["practice", "add", "--name", "Smiles", "--domain", "smiles.example"],
    );
    admin(
        dir_a.path(),
        &ports_a,
        &shared,
        &[
            "user",
            "add",
            "--email",
            "ada@smiles.example",
            "--name",
            "Dr Ada",
            "--role",
            "doctor",
            "--practice",
            "smiles.example",
            "--paid",
        ],
    );

    let mut node_a = Server::start_with(dir_a.path(), &ports_a, &env_a).await;
    let relay_a: SocketAddr = format!("127.0.0.1:{}", ports_a.relay).parse().unwrap();
    let mut smtp = RawSmtp::connect(relay_a).await;
    smtp.cmd("EHLO client.example", "250").await;
    for n in 0..MESSAGES {
        let to = format!("p{n}x@patients.example");
        smtp.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
        smtp.cmd(&format!("RCPT TO:<{to}>"), "250").await;
        smtp.cmd("DATA", "354").await;
        smtp.send(
            format!(
                "From: Dr Ada <ada@smiles.example>\r\nTo: {to}\r\nSubject: [secure] Results {n}\r\n\
                 X-Sealpost-Role: {to} patient\r\n\r\nYour results.\r\n.\r\n"
            )
            .as_bytes(),
        )
        .await;
        let reply = smtp.read_reply().await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    // Sealed, every notification composed and queued, and A holding claims on
    // deliveries (stuck at its smarthost): give its workers a moment to claim
    // what they will.
    let a = node_id(dir_a.path()).await;
    let mut state = queue_state(&database, &a).await;
    for _ in 0..600 {
        if state.0 == MESSAGES as i64 || (state.0 >= 1 && state.1 == MESSAGES as i64 && state.3 == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = queue_state(&database, &a).await;
    }
    assert!(
        state.0 >= 1 && state.1 == MESSAGES as i64 && state.3 == 0,
        "A holds claims, all queued, spool empty: {state:?}\n{}",
        log_of(dir_a.path())
    );
    let held = state.0;
    node_a.signal("KILL");
    let _ = node_a.exited().await;

    // Node B: its own data folder, the cluster's keys.
    std::fs::create_dir_all(dir_b.path().join("data/keys")).unwrap();
    for entry in std::fs::read_dir(dir_a.path().join("data/keys")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir_b.path().join("data/keys").join(entry.file_name())).unwrap();
    }
    let mut node_b = Server::start_with(dir_b.path(), &ports_b, &shared).await;
    let b = node_id(dir_b.path()).await;
    assert_ne!(a, b);
    let mut state = queue_state(&database, &b).await;
    for _ in 0..600 {
        if state.2 == MESSAGES as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = queue_state(&database, &b).await;
    }
    assert_eq!(
        state.2,
        MESSAGES as i64,
        "all sent by B: {state:?}\n{}",
        log_of(dir_b.path())
    );
    eprintln!("two nodes: A held {held} claimed deliveries when killed; B sent all {MESSAGES}");
    for n in 0..MESSAGES {
        assert_eq!(
            outbox_count(dir_b.path(), &format!("p{n}x@patients.example")),
            1,
            "notification {n} delivered once"
        );
    }
    // The audit chain both nodes wrote verifies.
    admin(dir_b.path(), &ports_b, &shared, &["audit", "verify"]);
    node_b.signal("TERM");
    assert!(node_b.exited().await.success());
}
