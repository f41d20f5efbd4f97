//! The sealer's claims: a sealing attempt is counted before it is made, and
//! counting it is what claims the message. One statement counts the attempt
//! only if the message is still due, and sets when it is due again (the wait
//! after a failed attempt n, [`seal_retry_delay`]`(n)`): of two workers that
//! saw it due, one gets it, and the wait keeps it from being due again while
//! the attempt runs ([`crate::claims::Claim::Seal`] renews it). A message that
//! used its [`MAX_SEAL_ATTEMPTS`] is not counted again but handed out as
//! [`SealAttempt::GiveUp`], for the quarantine.
//!
//! Under load the sealer claims its messages in batches
//! ([`Queue::claim_seals`]): one write for a batch, where one per message
//! held the database's write lock in turn for each (issue 14).

use sqlx::Row;

use crate::ids::MessageId;
use crate::spool::{MAX_SEAL_ATTEMPTS, SealAttempt, seal_retry_delay};
use crate::{Queue, Result};

/// The `SET` that counts an attempt at a row still under the limit and sets
/// its wait (`now` and `max` name the statement's parameters); a row at the
/// limit keeps both, so it stays due until it is quarantined. Only numbers
/// and parameter names from this file are formatted in.
fn count_attempt(now: &str, max: &str) -> String {
    let delays: Vec<String> = (1..=MAX_SEAL_ATTEMPTS)
        .map(|attempt| format!("WHEN {} THEN {}", attempt - 1, seal_retry_delay(attempt)))
        .collect();
    format!(
        "attempts = CASE WHEN attempts < {max} THEN attempts + 1 ELSE attempts END,
         next_attempt_at = CASE WHEN attempts < {max} THEN {now} + CASE attempts {} ELSE 3600 END
                                ELSE next_attempt_at END",
        delays.join(" ")
    )
}

/// A row the counting statement returned: counted (its wait now lies ahead)
/// or at the limit (left due).
fn attempt_from_row(row: &sqlx::any::AnyRow, now: i64) -> Result<SealAttempt> {
    let attempts: i64 = row.try_get("attempts")?;
    let next: i64 = row.try_get("next_attempt_at")?;
    Ok(if next > now {
        SealAttempt::Try(attempts)
    } else {
        SealAttempt::GiveUp
    })
}

impl Queue<'_> {
    /// Claims up to `limit` spooled secure messages due for sealing, oldest
    /// first, in one statement: each is on this node's disk or kept in its row
    /// (any node may seal those), not quarantined, and not waiting after a
    /// failed attempt. Each comes with its attempt, already counted (or
    /// [`SealAttempt::GiveUp`]).
    pub async fn claim_seals(&self, limit: i64) -> Result<Vec<(MessageId, SealAttempt)>> {
        let now = self.now();
        let sql = format!(
            "UPDATE spool SET {}
             WHERE id IN (SELECT id FROM spool WHERE quarantined_at IS NULL AND next_attempt_at <= $1
                                 AND (node = $3 OR data IS NOT NULL)
                          ORDER BY received_at, id LIMIT {})
               AND quarantined_at IS NULL AND next_attempt_at <= $1
             RETURNING id, attempts, next_attempt_at, received_at",
            count_attempt("$1", "$2"),
            crate::db::literal_limit(limit)
        );
        let turn = self.write_gate().await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(MAX_SEAL_ATTEMPTS)
            .bind(self.node.as_str())
            .fetch_all(&self.lazy_db)
            .await?;
        drop(turn);
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(parsed) = crate::spool::spool_id(row)? else {
                continue;
            };
            claimed.push((
                row.try_get::<i64, _>("received_at")?,
                parsed,
                attempt_from_row(row, now)?,
            ));
        }
        // `RETURNING` keeps no order: oldest first, as the claim chose them.
        claimed.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        Ok(claimed.into_iter().map(|(_, id, attempt)| (id, attempt)).collect())
    }

    /// Counts an attempt to seal `id` before it is made (the claim of one
    /// message). [`crate::Error::NotFound`] if it is gone, not due, or another
    /// worker holds this attempt; [`SealAttempt::GiveUp`] once it used its
    /// attempts, due or not.
    pub async fn begin_seal_attempt(&self, id: &MessageId) -> Result<SealAttempt> {
        let now = self.now();
        let sql = format!(
            "UPDATE spool SET {}
             WHERE id = $1 AND (node = $2 OR data IS NOT NULL) AND quarantined_at IS NULL
                   AND next_attempt_at <= $3
             RETURNING attempts, next_attempt_at",
            count_attempt("$3", "$4")
        );
        let turn = self.write_gate().await;
        let claimed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(self.node.as_str())
            .bind(now)
            .bind(MAX_SEAL_ATTEMPTS)
            .fetch_optional(&self.lazy_db)
            .await?;
        drop(turn);
        if let Some(row) = claimed {
            return attempt_from_row(&row, now);
        }
        // Not due: given up on (waiting after its last attempt), or not ours.
        let row = sqlx::query(
            "SELECT attempts FROM spool WHERE id = $1 AND quarantined_at IS NULL AND (node = $2 OR data IS NOT NULL)",
        )
        .bind(id.as_str())
        .bind(self.node.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(crate::Error::NotFound)?;
        if row.try_get::<i64, _>("attempts")? >= MAX_SEAL_ATTEMPTS {
            return Ok(SealAttempt::GiveUp);
        }
        Err(crate::Error::NotFound)
    }

    /// Takes back an attempt that failed for a reason outside the message (the
    /// database or the blob store was unavailable), so an outage quarantines
    /// nothing. The wait before the next attempt stays.
    pub async fn refund_seal_attempt(&self, id: &MessageId) -> Result<()> {
        let _turn = self.write_gate().await;
        sqlx::query("UPDATE spool SET attempts = attempts - 1 WHERE id = $1 AND attempts > 0")
            .bind(id.as_str())
            .execute(&self.lazy_db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::ids::{MessageId, UserId};
    use crate::spool::{MAX_SEAL_ATTEMPTS, SealAttempt, seal_retry_delay};
    use crate::{ManualClock, Store};

    /// A small secure message kept in its row, from a fresh sender.
    async fn spool_secure(store: &Store, clock: &ManualClock) -> MessageId {
        let sender = UserId(sqlx::Row::get(
            &sqlx::query(
                "INSERT INTO users (email, role, status, created_at) VALUES ($1, 'doctor', 'active', 0) RETURNING id",
            )
            .bind(format!("{}@x.example", MessageId::generate()))
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        ));
        let mut writer = store.queue().spool_writer().await.unwrap();
        writer.write(b"Subject: hello\r\n\r\nbody\r\n").await.unwrap();
        let spooled = writer.finish().await.unwrap();
        store
            .queue()
            .accept_secure(&spooled, "a@x.example", &["p@y.example".to_owned()], sender)
            .await
            .unwrap();
        // Received one after another.
        clock.advance(1);
        spooled.id
    }

    async fn attempts(store: &Store, id: &MessageId) -> (i64, i64) {
        let row = sqlx::query("SELECT attempts, next_attempt_at FROM spool WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&store.db)
            .await
            .unwrap();
        (
            sqlx::Row::get(&row, "attempts"),
            sqlx::Row::get(&row, "next_attempt_at"),
        )
    }

    /// One statement claims a batch, oldest first, each attempt counted; what
    /// it claimed is not claimed again until its wait is over.
    #[tokio::test]
    async fn a_batch_is_claimed_oldest_first_with_each_attempt_counted_once() {
        let (_dir, store, clock) = crate::testing::store().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(spool_secure(&store, &clock).await);
        }
        let first = store.queue().claim_seals(2).await.unwrap();
        assert_eq!(
            first,
            [
                (ids[0].clone(), SealAttempt::Try(1)),
                (ids[1].clone(), SealAttempt::Try(1))
            ]
        );
        assert_eq!(
            store.queue().claim_seals(10).await.unwrap(),
            [(ids[2].clone(), SealAttempt::Try(1))]
        );
        assert!(store.queue().claim_seals(10).await.unwrap().is_empty(), "all held");
        assert!(matches!(
            store.queue().begin_seal_attempt(&ids[0]).await,
            Err(crate::Error::NotFound)
        ));
        clock.advance(seal_retry_delay(1));
        let again: Vec<SealAttempt> = store
            .queue()
            .claim_seals(10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, attempt)| attempt)
            .collect();
        assert_eq!(again, [SealAttempt::Try(2); 3], "abandoned: the next attempt");
    }

    /// A message that used its attempts is handed out as give-up, uncounted
    /// and still due, until it is quarantined; then it is passed by.
    #[tokio::test]
    async fn a_message_at_the_limit_is_given_up_until_quarantined() {
        let (_dir, store, clock) = crate::testing::store().await;
        let id = spool_secure(&store, &clock).await;
        sqlx::query("UPDATE spool SET attempts = $1 WHERE id = $2")
            .bind(MAX_SEAL_ATTEMPTS)
            .bind(id.as_str())
            .execute(&store.db)
            .await
            .unwrap();
        let before = attempts(&store, &id).await;
        for _ in 0..2 {
            assert_eq!(
                store.queue().claim_seals(10).await.unwrap(),
                [(id.clone(), SealAttempt::GiveUp)]
            );
            assert_eq!(attempts(&store, &id).await, before, "neither counted nor delayed");
        }
        assert_eq!(
            store.queue().begin_seal_attempt(&id).await.unwrap(),
            SealAttempt::GiveUp
        );
        assert!(store.queue().quarantine_spooled(&id).await.unwrap().is_some());
        assert!(store.queue().claim_seals(10).await.unwrap().is_empty(), "set aside");
    }

    /// Two stores on one database claiming at once: every message is claimed
    /// by exactly one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_claimers_racing_never_claim_the_same_message() {
        let (_dir, a, b, clock) = crate::testing::two_nodes().await;
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(spool_secure(&a, &clock).await);
        }
        let claim_all = |store: Arc<Store>| async move {
            let mut got = Vec::new();
            loop {
                let batch = store.queue().claim_seals(3).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|(id, _)| id));
            }
        };
        let (from_a, from_b) = tokio::join!(
            tokio::spawn(claim_all(Arc::clone(&a))),
            tokio::spawn(claim_all(Arc::clone(&b)))
        );
        let mut all: Vec<MessageId> = from_a.unwrap().into_iter().chain(from_b.unwrap()).collect();
        all.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        ids.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(all, ids, "each claimed once, none lost");
    }
}
