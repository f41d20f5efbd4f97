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
//! Also here: the backlog the SMTP listener compares with its limit before it
//! takes new mail.

use std::path::Path;

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

impl Queue<'_> {
    /// Claims up to `limit` mail jobs not yet done, oldest first, for the
    /// caller alone. A job that can never be composed is set aside
    /// ([`Queue::park_job`]) instead of returned. End each with
    /// [`Queue::queue_mail`], [`Queue::skip_job`] or [`Queue::park_job`], or give it
    /// back with [`Queue::release_job`].
    pub async fn claim_jobs(&self, limit: i64) -> Result<Vec<MailJob>> {
        let now = self.now();
        let rows = sqlx::query(
            "UPDATE mail_jobs SET claimed_until = $3, claimed_by = $4
             WHERE id IN (SELECT id FROM mail_jobs WHERE done_at IS NULL AND claimed_until <= $1 ORDER BY id LIMIT $2)
               AND done_at IS NULL AND claimed_until <= $1
             RETURNING id, kind, user_id, message_id",
        )
        .bind(now)
        .bind(limit)
        .bind(now + self.policy.job_lease)
        .bind(self.node.as_str())
        .fetch_all(&self.db)
        .await?;
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
        sqlx::query("UPDATE mail_jobs SET claimed_until = 0 WHERE id = $1 AND done_at IS NULL")
            .bind(job)
            .execute(&self.db)
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

    /// Work waiting now: secure messages not yet sealed (quarantined ones
    /// aside), mail jobs not yet composed, and deliveries due. The SMTP
    /// listener refuses new mail with a 4xx while this is past its limit.
    pub async fn backlog(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM spool WHERE quarantined_at IS NULL)
                  + (SELECT COUNT(*) FROM mail_jobs WHERE done_at IS NULL)
                  + (SELECT COUNT(*) FROM outbound WHERE state = $1 AND next_attempt_at <= $2) AS n",
        )
        .bind(crate::states::OutboundState::Queued.as_str())
        .bind(self.now())
        .fetch_one(&self.db)
        .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
