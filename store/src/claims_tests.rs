//! Two nodes on one database: each seals and sends only what its own disk
//! holds, a node that starts keeps its hands off a live node's claims, and a
//! dead node's claimed work is taken over once its lease lapses, by one node.

use std::sync::Arc;

use crate::ids::UserId;
use crate::testing::START;
use crate::{Error, ManualClock, Store};

/// Two stores on one `SQLite` file and one blob folder, each with its own data
/// folder (spool, node id) and a copy of the same keys.
async fn two_nodes() -> (tempfile::TempDir, Arc<Store>, Arc<Store>, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let open = |name: &str| crate::StoreConfig {
        database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        blobs_url: format!("file://{}", dir.path().join("blobs").display()),
        data_dir: dir.path().join(name),
        policy: crate::Policy::default(),
    };
    let a = Store::open(open("a"), clock.clone()).await.unwrap();
    std::fs::create_dir_all(dir.path().join("b/keys")).unwrap();
    for entry in std::fs::read_dir(dir.path().join("a/keys")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join("b/keys").join(entry.file_name())).unwrap();
    }
    let b = Store::open(open("b"), clock.clone()).await.unwrap();
    assert_ne!(a.node, b.node, "each data folder names its own node");
    (dir, a, b, clock)
}

async fn user(store: &Store) -> UserId {
    UserId(sqlx::Row::get(
        &sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ('a@x.example', 'doctor', 'active', 0) RETURNING id")
            .fetch_one(&store.db)
            .await
            .unwrap(),
        "id",
    ))
}

async fn spooled(store: &Store) -> crate::spool::Spooled {
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer.write(b"Subject: hello\r\n\r\nbody\r\n").await.unwrap();
    writer.finish().await.unwrap()
}

#[tokio::test]
async fn spooled_work_stays_with_the_node_whose_disk_holds_it() {
    let (_dir, a, b, _) = two_nodes().await;
    let sender = user(&a).await;
    let secure = spooled(&a).await;
    a.queue()
        .accept_secure(&secure, "a@x.example", &["p@y.example".to_owned()], sender)
        .await
        .unwrap();
    let plain = spooled(&a).await;
    a.queue()
        .accept_plain(&plain, "a@x.example", &["lab@y.example".to_owned()])
        .await
        .unwrap();

    assert!(b.queue().due_spool(10).await.unwrap().is_empty());
    assert!(matches!(
        b.queue().begin_seal_attempt(&secure.id).await,
        Err(Error::NotFound)
    ));
    assert!(b.queue().due_outbound(10).await.unwrap().is_empty());
    assert_eq!(a.queue().due_spool(10).await.unwrap(), [secure.id.clone()]);
    assert_eq!(a.queue().due_outbound(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_node_s_claims_are_taken_over_once_and_only_after_their_lease() {
    let (_dir, a, b, clock) = two_nodes().await;
    let someone = user(&a).await;
    // A mail kept in its row (anyone's to send) and a mail job (anyone's to compose).
    a.queue()
        .queue_mail(None, "", "p@y.example", b"Subject: hi\r\n\r\nhi\r\n")
        .await
        .unwrap();
    let mut tx = a.write_tx().await.unwrap();
    crate::job_kind::add_job(&mut tx, crate::job_kind::JobKind::SetPassword, someone, None, a.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Node A claims both, then dies holding them.
    assert_eq!(a.queue().due_outbound(10).await.unwrap().len(), 1);
    assert_eq!(a.queue().claim_jobs(10).await.unwrap().len(), 1);
    // Node B restarts meanwhile: A's claims are not its to drop.
    b.queue().release_claims().await.unwrap();
    assert!(b.queue().due_outbound(10).await.unwrap().is_empty());
    assert!(b.queue().claim_jobs(10).await.unwrap().is_empty());

    // Once the leases lapse, B takes each over, and a second look finds nothing more.
    clock.advance(crate::claims::JOB_LEASE + 1);
    assert_eq!(b.queue().claim_jobs(10).await.unwrap().len(), 1);
    assert!(
        b.queue().due_outbound(10).await.unwrap().is_empty(),
        "the delivery's lease is longer"
    );
    clock.advance(crate::claims::OUTBOUND_LEASE);
    assert_eq!(b.queue().due_outbound(10).await.unwrap().len(), 1);
    assert!(b.queue().due_outbound(10).await.unwrap().is_empty());
    assert!(
        a.queue().due_outbound(10).await.unwrap().is_empty(),
        "A, back, finds it taken"
    );

    // A node's own restart drops its own previous run's claims at once.
    b.queue().release_claims().await.unwrap();
    assert_eq!(b.queue().due_outbound(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_node_takes_the_spool_files_on_its_disk_as_it_starts() {
    let (dir, a, b, _) = two_nodes().await;
    let sender = user(&a).await;
    let secure = spooled(&a).await;
    a.queue()
        .accept_secure(&secure, "a@x.example", &["p@y.example".to_owned()], sender)
        .await
        .unwrap();
    // A's data folder moved to B's machine (or restored there from a backup).
    std::fs::create_dir_all(dir.path().join("b/spool/in")).unwrap();
    std::fs::rename(
        dir.path().join("a/spool/in").join(secure.id.as_str()),
        dir.path().join("b/spool/in").join(secure.id.as_str()),
    )
    .unwrap();
    assert_eq!(b.queue().adopt_spool().await.unwrap(), 1);
    assert_eq!(b.queue().due_spool(10).await.unwrap(), [secure.id.clone()]);
    assert!(a.queue().due_spool(10).await.unwrap().is_empty());
    assert_eq!(b.queue().adopt_spool().await.unwrap(), 0, "once");
}
