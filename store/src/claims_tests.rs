//! Two nodes on one database: each seals and sends only what its own disk
//! holds or what is kept in its row (anyone's), a node that starts keeps its
//! hands off a live node's claims, and a dead node's claimed work is taken over
//! once its lease lapses, by one node.

use std::sync::Arc;

use crate::claims::Claim;
use crate::ids::UserId;
use crate::{Error, Store};

async fn user(store: &Store) -> UserId {
    UserId(sqlx::Row::get(
        &sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ('a@x.example', 'doctor', 'active', 0) RETURNING id")
            .fetch_one(&store.db)
            .await
            .unwrap(),
        "id",
    ))
}

/// A message in a spool file on this node's disk (a small one, kept in its
/// row, is not tied to a disk: see the tests of `spool_file.rs`).
async fn spooled(store: &Store) -> crate::spool::Spooled {
    crate::testing::spool_in_file(store, "Subject: hello\r\n\r\n").await
}

#[tokio::test]
async fn spooled_work_stays_with_the_node_whose_disk_holds_it() {
    let (_dir, a, b, _) = crate::testing::two_nodes().await;
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
async fn a_small_message_kept_in_its_row_is_any_node_s_to_seal_or_relay_once() {
    let (_dir, a, b, _) = crate::testing::two_nodes().await;
    let sender = user(&a).await;
    let small = || async {
        let mut writer = a.queue().spool_writer().await.unwrap();
        writer.write(b"Subject: hello\r\n\r\nbody\r\n").await.unwrap();
        let spooled = writer.finish().await.unwrap();
        assert!(spooled.folder().is_none(), "kept in its row");
        spooled
    };
    let secure = small().await;
    a.queue()
        .accept_secure(&secure, "a@x.example", &["p@y.example".to_owned()], sender)
        .await
        .unwrap();
    let plain = small().await;
    a.queue()
        .accept_plain(&plain, "a@x.example", &["lab@y.example".to_owned()])
        .await
        .unwrap();
    assert_eq!(b.queue().backlog().await.unwrap(), 2, "B may do both");
    assert_eq!(b.queue().due_spool(10).await.unwrap(), [secure.id.clone()]);
    assert!(matches!(
        b.queue().begin_seal_attempt(&secure.id).await,
        Ok(crate::spool::SealAttempt::Try(1))
    ));
    assert!(
        matches!(a.queue().begin_seal_attempt(&secure.id).await, Err(Error::NotFound)),
        "one node's attempt at a time"
    );
    assert!(
        b.queue().renew_claim(Claim::Seal(&secure.id)).await.unwrap(),
        "B holds it"
    );
    assert_eq!(b.queue().due_outbound(10).await.unwrap().len(), 1);
    assert!(a.queue().due_outbound(10).await.unwrap().is_empty(), "claimed by B");
}

#[tokio::test]
async fn a_dead_node_s_claims_are_taken_over_once_and_only_after_their_lease() {
    let (_dir, a, b, clock) = crate::testing::two_nodes().await;
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
    let (dir, a, b, _) = crate::testing::two_nodes().await;
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

/// A worker whose delivery outlasts its lease: while it runs (and renews), the
/// other node never gets the delivery, however far the clock moves; once it is
/// gone, the claim lapses after one lease and the other node takes it over.
#[tokio::test]
async fn a_long_delivery_keeps_its_claim_while_it_renews_and_loses_it_once_its_worker_is_gone() {
    let (_dir, a, b, clock) = crate::testing::two_nodes().await;
    let lease = a.policy.delivery_lease;
    a.queue()
        .queue_mail(None, "", "p@y.example", b"Subject: hi\r\n\r\nhi\r\n")
        .await
        .unwrap();
    let mut due = a.queue().due_outbound(1).await.unwrap();
    let held = due.pop().unwrap();
    let renewal = std::time::Duration::from_millis(20);

    // Three leases pass while A's worker sends, renewing as it goes.
    let queue = a.queue();
    let work = async {
        for _ in 0..6 {
            clock.advance(lease / 2);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert!(
                b.queue().due_outbound(10).await.unwrap().is_empty(),
                "B took a delivery A is still sending"
            );
        }
    };
    queue.renewing_every(Claim::Delivery(&held.id), renewal, work).await;
    assert!(
        a.queue().renew_claim(Claim::Delivery(&held.id)).await.unwrap(),
        "still A's"
    );

    // A dies holding it (nothing renews): within the lease nobody takes it...
    clock.advance(lease - 1);
    assert!(b.queue().due_outbound(10).await.unwrap().is_empty());
    // ...after it, B does, once; A, back, cannot renew B's claim.
    clock.advance(2);
    let taken = b.queue().due_outbound(10).await.unwrap();
    assert_eq!(
        taken.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [held.id.as_str()]
    );
    assert!(!a.queue().renew_claim(Claim::Delivery(&held.id)).await.unwrap());
    assert!(b.queue().renew_claim(Claim::Delivery(&held.id)).await.unwrap());
    // Once its outcome is written, nobody renews it.
    b.queue()
        .outbound_done(&taken[0], &crate::jobs::DeliveryOutcome::Delivered)
        .await
        .unwrap();
    assert!(!b.queue().renew_claim(Claim::Delivery(&held.id)).await.unwrap());
}

/// The same for a mail job, and for a seal on its own node: a renewed sealing
/// attempt is not due again while it runs; an abandoned one is, after its wait.
#[tokio::test]
async fn mail_jobs_and_seals_renew_their_claims_too() {
    let (_dir, a, b, clock) = crate::testing::two_nodes().await;
    let someone = user(&a).await;
    let mut tx = a.write_tx().await.unwrap();
    crate::job_kind::add_job(&mut tx, crate::job_kind::JobKind::SetPassword, someone, None, a.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = a.queue().claim_jobs(1).await.unwrap().pop().unwrap();
    clock.advance(a.policy.job_lease - 10);
    assert!(a.queue().renew_claim(Claim::Job(job.id)).await.unwrap());
    clock.advance(20);
    assert!(b.queue().claim_jobs(10).await.unwrap().is_empty(), "renewed: still A's");
    clock.advance(a.policy.job_lease);
    assert_eq!(b.queue().claim_jobs(10).await.unwrap().len(), 1, "lapsed: B's");
    assert!(!a.queue().renew_claim(Claim::Job(job.id)).await.unwrap());

    let secure = spooled(&a).await;
    a.queue()
        .accept_secure(&secure, "a@x.example", &["p@y.example".to_owned()], someone)
        .await
        .unwrap();
    assert_eq!(
        a.queue().begin_seal_attempt(&secure.id).await.unwrap(),
        crate::spool::SealAttempt::Try(1)
    );
    let wait = crate::spool::seal_retry_delay(1);
    for _ in 0..3 {
        clock.advance(wait / 2);
        assert!(a.queue().renew_claim(Claim::Seal(&secure.id)).await.unwrap());
        assert!(a.queue().due_spool(10).await.unwrap().is_empty(), "being sealed");
    }
    assert!(
        !b.queue().renew_claim(Claim::Seal(&secure.id)).await.unwrap(),
        "not B's spool"
    );
    clock.advance(wait);
    assert_eq!(
        a.queue().due_spool(10).await.unwrap(),
        [secure.id.clone()],
        "abandoned: due again"
    );
}

/// Two nodes' SMS workers racing over one queue of texts: each text is claimed
/// by exactly one of them (a code is never sent twice in normal operation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_never_claim_the_same_text() {
    let (_dir, a, b, _) = crate::testing::two_nodes().await;
    let someone = user(&a).await;
    let mut tx = a.write_tx().await.unwrap();
    for n in 0..30 {
        a.queue()
            .queue_sms(
                &mut tx,
                someone,
                &format!("+1201555{:04}", 100 + n),
                crate::accounts::two_step::Channel::Sms,
                "Your code is 123456.",
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let drain = |store: Arc<Store>| async move {
        let mut sent = Vec::new();
        loop {
            let jobs = store.queue().claim_sms(3).await.unwrap();
            if jobs.is_empty() {
                return sent;
            }
            for job in jobs {
                store.queue().sms_done(&job, true).await.unwrap();
                sent.push(job.id);
            }
        }
    };
    let (from_a, from_b) = tokio::join!(tokio::spawn(drain(Arc::clone(&a))), tokio::spawn(drain(Arc::clone(&b))));
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    let mut all: Vec<i64> = from_a.iter().chain(&from_b).copied().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a text claimed by both nodes");
    assert_eq!(all.len(), 30, "A sent {}, B sent {}", from_a.len(), from_b.len());
    assert!(a.queue().pending_sms(100).await.unwrap().is_empty());

    // A claimed text is not due to the other node until its lease lapses.
    let mut tx = a.write_tx().await.unwrap();
    a.queue()
        .queue_sms(
            &mut tx,
            someone,
            "+12015550199",
            crate::accounts::two_step::Channel::Voice,
            "123456",
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.queue().claim_sms(10).await.unwrap().len(), 1);
    assert!(b.queue().claim_sms(10).await.unwrap().is_empty());
    assert_eq!(
        a.queue().pending_sms(10).await.unwrap().len(),
        1,
        "being sent is pending"
    );
}

/// Two nodes' purgers racing over the same expired messages: each message is
/// shredded once, by one of them, with exactly one `message.expire` audit
/// entry, and the audit chain both wrote verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_purges_shred_and_audit_each_expired_message_once() {
    let (_dir, a, b, clock) = crate::testing::two_nodes().await;
    let sender = user(&a).await;
    sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'P', 'p.example', 0)")
        .execute(&a.db)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        let id = crate::ids::MessageId::generate();
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, size, attachment_count, state, created_at, expires_at)
             VALUES ($1, $2, 1, 'no-such-kek', $3, 10, 0, 'sealed', $4, $5)",
        )
        .bind(id.as_str())
        .bind(sender.0)
        .bind(vec![1u8; 8])
        .bind(a.now())
        .bind(a.now() + 60)
        .execute(&a.db)
        .await
        .unwrap();
        let mut blob = a
            .blobs
            .create_raw(&format!("{}/part-0", crate::layout::message_prefix(&id)))
            .await
            .unwrap();
        blob.put(bytes::Bytes::from_static(b"sealed bytes")).await.unwrap();
        blob.finish().await.unwrap();
        ids.push(id);
    }
    assert_eq!(a.blobs.message_ids().await.unwrap().len(), 40);
    clock.advance(61);
    let purge = |store: Arc<Store>| async move { store.mail().purge_expired().await.unwrap() };
    let (by_a, by_b) = tokio::join!(tokio::spawn(purge(Arc::clone(&a))), tokio::spawn(purge(Arc::clone(&b))));
    let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
    assert_eq!(by_a + by_b, 40, "A shredded {by_a}, B {by_b}");

    let entries = a.audit_log().recent_audit(1000).await.unwrap();
    for id in &ids {
        let object = format!("message:{id}");
        let n = entries
            .iter()
            .filter(|(_, action, obj)| action == "message.expire" && *obj == object)
            .count();
        assert_eq!(n, 1, "{object} has {n} message.expire entries");
        let state: String = sqlx::Row::get(
            &sqlx::query("SELECT state FROM messages WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&a.db)
                .await
                .unwrap(),
            "state",
        );
        assert_eq!(state, "expired");
    }
    assert!(a.blobs.message_ids().await.unwrap().is_empty(), "every blob is gone");
    assert!(matches!(a.audit_log().verify_audit().await.unwrap(), Ok(40)));
    assert_eq!(
        a.mail().purge_expired().await.unwrap() + b.mail().purge_expired().await.unwrap(),
        0
    );
}

/// The SMTP backlog a node compares with `smtp.max_queue_depth` counts its own
/// spool and the work it could take, not another node's spooled mail.
#[tokio::test]
async fn a_node_s_backlog_counts_its_own_spool_and_the_shared_work() {
    let (_dir, a, b, _) = crate::testing::two_nodes().await;
    let sender = user(&a).await;
    for _ in 0..3 {
        let secure = spooled(&a).await;
        a.queue()
            .accept_secure(&secure, "a@x.example", &["p@y.example".to_owned()], sender)
            .await
            .unwrap();
    }
    let plain = spooled(&a).await;
    a.queue()
        .accept_plain(&plain, "a@x.example", &["lab@y.example".to_owned()])
        .await
        .unwrap();
    assert_eq!(a.queue().backlog().await.unwrap(), 4, "three to seal, one to relay");
    assert_eq!(b.queue().backlog().await.unwrap(), 0, "A's spool is not B's backlog");
    // A notification kept in its row is anyone's to send: both count it.
    a.queue()
        .queue_mail(None, "", "p@y.example", b"Subject: hi\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert_eq!(a.queue().backlog().await.unwrap(), 5);
    assert_eq!(b.queue().backlog().await.unwrap(), 1);
}
