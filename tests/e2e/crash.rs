//! Crash safety (issue 16): a bounded load over several SMTP connections while
//! the real `sealpost serve` is killed with SIGKILL at random moments (a fixed
//! seed in CI; `CRASH_TEST_SEED` and `CRASH_TEST_KILLS` for longer runs)
//! and restarted. Every message answered 250 is delivered (ordinary mail, and a
//! notification for each secure one, counted in the outbox), duplicates are
//! counted and reported, the audit chain verifies, and after a final restart no
//! spool file or blob is left that nothing refers to.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::shutdown::{Ports, Server, free_port, log_of, run, sealpost};

/// Messages each round offers before the kill (the kill may come first).
const PER_ROUND: usize = 30;
const LANES: usize = 4;

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Message `n`: even numbers are secure (to their own new recipient, whose
/// notification carries `p<n>x@`), odd ones ordinary mail carrying `TAG-<n>-END`.
fn message(n: usize) -> (String, String) {
    if n % 2 == 0 {
        let to = format!("p{n}x@patients.example");
        let text = format!(
            "From: Dr Ada <ada@smiles.example>\r\nTo: {to}\r\nSubject: [secure] Results {n}\r\n\
             X-Sealpost-Role: {to} patient\r\n\r\nYour results, part {n}.\r\n"
        );
        (to, text)
    } else {
        let text = format!(
            "From: Dr Ada <ada@smiles.example>\r\nTo: lab@lab.example\r\nSubject: order TAG-{n}-END\r\n\r\nGloves, box {n}.\r\n"
        );
        ("lab@lab.example".to_owned(), text)
    }
}

/// What marks message `n`'s delivery in the outbox.
fn marker(n: usize) -> String {
    if n % 2 == 0 {
        format!("p{n}x@patients.example")
    } else {
        format!("TAG-{n}-END")
    }
}

async fn reply(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other("no reply in time"))??;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(all);
        }
    }
}

/// One lane: sends the numbers `next` hands out below `until` over one
/// connection, recording each one answered 250, until the server dies.
async fn lane(relay: SocketAddr, next: Arc<Mutex<usize>>, until: usize, acked: Arc<Mutex<Vec<usize>>>) {
    let Ok(stream) = tokio::net::TcpStream::connect(relay).await else {
        return;
    };
    let (read, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read);
    let session = async {
        reply(&mut reader).await?;
        writer.write_all(b"EHLO client.example\r\n").await?;
        reply(&mut reader).await?;
        loop {
            let n = {
                let mut next = next.lock().unwrap();
                if *next >= until {
                    return Ok::<_, std::io::Error>(());
                }
                *next += 1;
                *next - 1
            };
            let (to, text) = message(n);
            for command in [
                "MAIL FROM:<ada@smiles.example>".to_owned(),
                format!("RCPT TO:<{to}>"),
                "DATA".to_owned(),
            ] {
                writer.write_all(format!("{command}\r\n").as_bytes()).await?;
                let answer = reply(&mut reader).await?;
                if !answer.starts_with('2') && !answer.starts_with('3') {
                    return Err(std::io::Error::other(answer));
                }
            }
            writer.write_all(text.as_bytes()).await?;
            writer.write_all(b".\r\n").await?;
            if reply(&mut reader).await?.starts_with("250") {
                acked.lock().unwrap().push(n);
            }
        }
    };
    let _ = session.await;
}

/// Offers messages up to `until` over [`LANES`] connections.
fn load(
    relay: SocketAddr,
    next: &Arc<Mutex<usize>>,
    until: usize,
    acked: &Arc<Mutex<Vec<usize>>>,
) -> tokio::task::JoinSet<()> {
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..LANES {
        lanes.spawn(lane(relay, Arc::clone(next), until, Arc::clone(acked)));
    }
    lanes
}

/// How many outbox mails carry each marker.
fn delivered(dir: &Path, markers: &[(usize, String)]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("data/outbox/new")) else {
        return counts;
    };
    let mails: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .collect();
    for (n, marker) in markers {
        let count = mails.iter().filter(|m| m.contains(marker.as_str())).count();
        counts.insert(*n, count);
    }
    counts
}

async fn database(dir: &Path) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", dir.join("data/sealpost.db").display());
    AnyConnection::connect(&url).await.unwrap()
}

/// Spool files no row names, and message blob folders of no sealed message
/// (or local staging files), as paths.
async fn orphans(dir: &Path) -> Vec<String> {
    let mut db = database(dir).await;
    let spooled: HashSet<String> = sqlx::query("SELECT id FROM spool")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("id"))
        .collect();
    let queued: HashSet<String> = sqlx::query("SELECT blob FROM outbound WHERE state = 'queued'")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("blob"))
        .collect();
    let sealed: HashSet<String> = sqlx::query("SELECT id FROM messages WHERE wrapped_key IS NOT NULL")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("id"))
        .collect();
    db.close().await.unwrap();
    let mut found = Vec::new();
    for folder in ["in", "out"] {
        for entry in std::fs::read_dir(dir.join("data/spool").join(folder))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = queued.contains(&format!("{folder}/{name}")) || (folder == "in" && spooled.contains(&name));
            if !named {
                found.push(format!("spool/{folder}/{name}"));
            }
        }
    }
    for entry in std::fs::read_dir(dir.join("data/blobs/messages"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !sealed.contains(&id) && !spooled.contains(&id) {
            found.push(format!("blobs/messages/{id}"));
        }
        for file in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
            if file.file_name().to_string_lossy().contains('#') {
                found.push(format!("blobs/messages/{id}/{}", file.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_message() {
    let seed = env_number("CRASH_TEST_SEED", 16);
    let kills = env_number("CRASH_TEST_KILLS", 10).max(10) as usize;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        relay: free_port(),
        submission: free_port(),
        imap: free_port(),
        imaps: free_port(),
        portal: free_port(),
    };
    run(dir.path(), &ports, &["migrate"]);
    run(
        dir.path(),
        &ports,
        &["practice", "add", "--name", "Smiles", "--domain", "smiles.example"],
    );
    run(
        dir.path(),
        &ports,
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
    let relay: SocketAddr = format!("127.0.0.1:{}", ports.relay).parse().unwrap();
    let next = Arc::new(Mutex::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));

    for round in 1..=kills {
        let mut server = Server::start(dir.path(), &ports).await;
        let mut lanes = load(relay, &next, round * PER_ROUND, &acked);
        // Somewhere in the load, or in the sealing and delivery after it.
        tokio::time::sleep(Duration::from_millis(50 + rng.below(1500))).await;
        server.signal("KILL");
        let _ = server.exited().await;
        while lanes.join_next().await.is_some() {}
    }

    // A last run offers the rest and is left to finish.
    let total = (kills + 1) * PER_ROUND;
    let mut server = Server::start(dir.path(), &ports).await;
    let mut lanes = load(relay, &next, total, &acked);
    while lanes.join_next().await.is_some() {}
    let acked: Vec<usize> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= PER_ROUND,
        "the load was mostly refused: {} of {total} acknowledged: {}",
        acked.len(),
        log_of(dir.path())
    );
    let markers: Vec<(usize, String)> = acked.iter().map(|n| (*n, marker(*n))).collect();
    let mut counts = delivered(dir.path(), &markers);
    for _ in 0..1200 {
        if counts.values().all(|c| *c > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = delivered(dir.path(), &markers);
    }
    let lost: Vec<usize> = counts.iter().filter(|(_, c)| **c == 0).map(|(n, _)| *n).collect();
    let duplicates: usize = counts.values().map(|c| c.saturating_sub(1)).sum();
    eprintln!(
        "crash test: seed {seed}, {kills} kills, {} of {total} offered were acknowledged, {} lost, {duplicates} duplicate deliveries",
        acked.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}\n{}",
        log_of(dir.path())
    );

    // Stopped cleanly, the audit chain verifies from end to end.
    server.signal("TERM");
    assert!(server.exited().await.success(), "{}", log_of(dir.path()));
    let verify = sealpost(dir.path(), &ports).args(["audit", "verify"]).output().unwrap();
    assert!(verify.status.success(), "audit verify: {verify:?}");

    // A final restart sweeps what the crashes left: nothing is orphaned.
    let mut server = Server::start(dir.path(), &ports).await;
    let mut left = orphans(dir.path()).await;
    for _ in 0..600 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = orphans(dir.path()).await;
    }
    assert!(left.is_empty(), "orphans after the final restart: {left:?}");
    let mut db = database(dir.path()).await;
    let sealed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM messages WHERE state = 'sealed'")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get("n");
    db.close().await.unwrap();
    let secure_acked = acked.iter().filter(|n| *n % 2 == 0).count();
    assert!(
        usize::try_from(sealed).unwrap() >= secure_acked,
        "{sealed} sealed, {secure_acked} secure acknowledged"
    );
    server.signal("TERM");
    assert!(server.exited().await.success());
}
