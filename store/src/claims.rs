//! Claims: how several workers share the queues without two of them taking the
//! same job. A worker claims rows with one conditional `UPDATE` (a row is taken
//! only if nobody's claim on it is current), works on them, and records the end
//! (which drops the claim). A claim lasts a lease: if its worker dies, the row is
//! due again once the lease lapses, and a server that starts drops the claims
//! its previous run left (see [`Queue::release_claims`]).
//!
//! The spool's claim is its attempt count ([`Queue::begin_seal_attempt`]); mail
//! jobs and the outbound queue have a `claimed_until` column (migration 0021).
//!
//! Several nodes (`sealpost serve` processes, each with its own data folder) may
//! share one PostgreSQL database and one object store. A node is named by
//! `<data_dir>/node-id`; a claim records its node (`claimed_by`, migration 0028),
//! so a node that starts drops only its own previous run's claims. A spooled
//! message, and a delivery that reads a spool file, belong to the node whose disk
//! holds the file (`node`): only that node seals or sends them. Mail jobs and
//! mails kept in their queue row are anyone's: a dead node's are taken over once
//! their lease lapses.
//!
//! Work that outlasts its lease (a large message to a slow server, a seal of a
//! 2 GB attachment) keeps its claim by renewing it while it runs
//! ([`Queue::renewing`]): the lease only lapses when the worker is gone.
//! Also here: the backlog the SMTP listener compares with its limit before it
//! takes new mail.

use std::path::Path;
use std::time::Duration;

use sqlx::Row;

pub use crate::jobs::OUTBOUND_LEASE;
use crate::jobs::{MailJob, job_from_row};
use crate::{Error, Queue, Result};

/// Seconds a claimed mail job stays with its worker by default (`server.job_lease`; composing takes
/// milliseconds; the lease only matters if the worker died).
pub const JOB_LEASE: i64 = 120;

/// This data folder's node name: read from `node-id`, made (16 random hex
/// digits) the first time. Copying a data folder to a new machine moves the node.
pub(crate) fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = crate::crypto::random_hex(8);
            let staging = data_dir.join("node-id.tmp");
            std::fs::write(&staging, format!("{id}\n"))?;
            std::fs::rename(&staging, &path)?;
            Ok(id)
        }
    }
}

/// Work this node holds under a lease, which [`Queue::renewing`] keeps current.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    /// A delivery from [`Queue::due_outbound`] (`outbound.claimed_until`,
    /// `server.delivery_lease`).
    Delivery(&'a str),
    /// A mail job from [`Queue::claim_jobs`] (`mail_jobs.claimed_until`,
    /// `server.job_lease`).
    Job(i64),
    /// A sealing attempt from [`Queue::begin_seal_attempt`]: the spool row's
    /// `next_attempt_at`, which keeps the message from being due again while
    /// the attempt runs ([`crate::spool::seal_retry_delay`] of a first attempt).
    Seal(&'a crate::ids::MessageId),
}

impl Queue<'_> {
    /// Seconds a claim of this kind lasts from its last renewal.
    fn lease(&self, claim: Claim<'_>) -> i64 {
        match claim {
            Claim::Delivery(_) => self.policy.delivery_lease,
            Claim::Job(_) => self.policy.job_lease,
            Claim::Seal(_) => crate::spool::seal_retry_delay(1),
        }
    }

    /// Extends a claim this node still holds to a full lease from now; `false`
    /// if it holds it no more (the work ended, or the lease lapsed and another
    /// node took it: that node's claim is left alone).
    pub async fn renew_claim(&self, claim: Claim<'_>) -> Result<bool> {
        let until = self.now() + self.lease(claim);
        let node = self.node.as_str();
        let _turn = self.write_gate().await;
        let renewed = match claim {
            Claim::Delivery(id) => sqlx::query(
                "UPDATE outbound SET claimed_until = $2
                 WHERE id = $1 AND claimed_by = $3 AND claimed_until > 0 AND state = $4",
            )
            .bind(id)
            .bind(until)
            .bind(node)
            .bind(crate::states::OutboundState::Queued.as_str()),
            Claim::Job(id) => sqlx::query(
                "UPDATE mail_jobs SET claimed_until = $2
                 WHERE id = $1 AND claimed_by = $3 AND claimed_until > 0 AND done_at IS NULL",
            )
            .bind(id)
            .bind(until)
            .bind(node),
            // Only ever later: a retry's longer wait stays.
            Claim::Seal(id) => sqlx::query(
                "UPDATE spool SET next_attempt_at = CASE WHEN next_attempt_at < $2 THEN $2 ELSE next_attempt_at END
                 WHERE id = $1 AND (node = $3 OR data IS NOT NULL) AND quarantined_at IS NULL",
            )
            .bind(id.as_str())
            .bind(until)
            .bind(node),
        }
        .execute(&self.lazy_db)
        .await?;
        Ok(renewed.rows_affected() > 0)
    }

    /// Runs `work` while renewing `claim` every third of its lease, so work
    /// that takes longer than the lease is not taken over by another worker or
    /// node. A renewal that finds the claim gone, or the database out of reach,
    /// is logged (no PHI: the claim names a row id) and `work` goes on.
    pub async fn renewing<F: Future>(&self, claim: Claim<'_>, work: F) -> F::Output {
        let every = u64::try_from(self.lease(claim) / 3).unwrap_or(0).max(1);
        self.renewing_every(claim, Duration::from_secs(every), work).await
    }

    /// [`Queue::renewing`] with a given interval (tests use a short one).
    pub(crate) async fn renewing_every<F: Future>(&self, claim: Claim<'_>, every: Duration, work: F) -> F::Output {
        let renew = async {
            let mut lost = false;
            loop {
                tokio::time::sleep(every).await;
                match self.renew_claim(claim).await {
                    Ok(true) => lost = false,
                    Ok(false) if !lost => {
                        lost = true;
                        tracing::warn!(
                            ?claim,
                            "a claim lapsed while its work ran; another worker may have taken it"
                        );
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(?claim, %error, "cannot renew a claim; will try again"),
                }
            }
        };
        let (work, renew) = (std::pin::pin!(work), std::pin::pin!(renew));
        match futures::future::select(work, renew).await {
            futures::future::Either::Left((output, _)) => output,
            futures::future::Either::Right(((), _)) => unreachable!("renewal runs until the work ends"),
        }
    }

    /// Claims up to `limit` mail jobs not yet done, oldest first, for the
    /// caller alone. A job that can never be composed is set aside
    /// ([`Queue::park_job`]) instead of returned. End each with
    /// [`Queue::queue_mail`], [`Queue::skip_job`] or [`Queue::park_job`], or give it
    /// back with [`Queue::release_job`].
    pub async fn claim_jobs(&self, limit: i64) -> Result<Vec<MailJob>> {
        let now = self.now();
        let turn = self.write_gate().await;
        let sql = format!(
            "UPDATE mail_jobs SET claimed_until = $2, claimed_by = $3
             WHERE id IN (SELECT id FROM mail_jobs WHERE done_at IS NULL AND claimed_until <= $1 ORDER BY id LIMIT {})
               AND done_at IS NULL AND claimed_until <= $1
             RETURNING id, kind, user_id, message_id",
            crate::db::literal_limit(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now + self.policy.job_lease)
            .bind(self.node.as_str())
            .fetch_all(&self.lazy_db)
            .await?;
        drop(turn);
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            match job_from_row(row) {
                Ok(job) => jobs.push(job),
                Err(error @ Error::Corrupt(_)) => self.park_job(row.try_get("id")?, &error).await?,
                Err(other) => return Err(other),
            }
        }
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Gives a claimed job back (composing it failed for a reason outside the
    /// job, such as the database): it is due again at once.
    pub async fn release_job(&self, job: i64) -> Result<()> {
        let _turn = self.write_gate().await;
        sqlx::query("UPDATE mail_jobs SET claimed_until = 0 WHERE id = $1 AND done_at IS NULL")
            .bind(job)
            .execute(&self.lazy_db)
            .await?;
        Ok(())
    }

    /// Drops this node's claims (and those made before claims named a node):
    /// only the server calls this, as it starts, when no worker of its own holds
    /// one yet (its previous run's workers are gone). Other nodes' claims stay.
    pub async fn release_claims(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE mail_jobs SET claimed_until = 0
             WHERE done_at IS NULL AND claimed_until > 0 AND claimed_by IN ($1, '')",
        )
        .bind(self.node.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE outbound SET claimed_until = 0 WHERE claimed_until > 0 AND claimed_by IN ($1, '')")
            .bind(self.node.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Work waiting now that this node could do: secure messages in its own
    /// spool or kept in their row, not yet sealed (quarantined ones aside), mail jobs not yet
    /// composed (anyone's), and deliveries due that it may send (kept in their
    /// row, or read from its own spool). The SMTP listener refuses new mail
    /// with a 4xx while this is past its limit (`smtp.max_queue_depth`): a
    /// node whose own spool is deep stops taking mail, the others go on.
    pub async fn backlog(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM spool WHERE quarantined_at IS NULL AND (node = $3 OR data IS NOT NULL))
                  + (SELECT COUNT(*) FROM mail_jobs WHERE done_at IS NULL)
                  + (SELECT COUNT(*) FROM outbound WHERE state = $1 AND next_attempt_at <= $2
                       AND (blob = '' OR node = $3)) AS n",
        )
        .bind(crate::states::OutboundState::Queued.as_str())
        .bind(self.now())
        .bind(self.node.as_str())
        .fetch_one(&self.db)
        .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
