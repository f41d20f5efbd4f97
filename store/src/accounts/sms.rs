//! The queue of text messages and voice calls that carry codes. The portal adds
//! to it; the gateway's SMS worker sends each one through the configured
//! provider. A row holds the number, channel and text sealed with the store's
//! keys (the text contains a code), and names the person only by id.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::two_step::Channel;
use crate::ids::UserId;
use crate::{Error, Queue, Result, Sealed};

/// Sending attempts before a text is given up (a code lasts 10 minutes anyway).
const MAX_ATTEMPTS: i64 = 5;

/// Seconds a claimed text stays with its sender: the HTTP provider gives up
/// after 20 seconds, so only a dead worker's claim lapses.
pub const SMS_LEASE: i64 = 60;

/// One text message or voice call to make.
#[derive(Debug, Clone)]
pub struct SmsJob {
    pub id: i64,
    pub attempts: i64,
    pub message: Sealed<SmsMessage>,
}

/// What to send, and to which number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub to: String,
    /// `sms` or `voice`.
    pub channel: String,
    pub text: String,
}

impl Queue<'_> {
    pub(crate) async fn queue_sms(
        &self,
        tx: &mut crate::write_tx::WriteTx,
        user: UserId,
        to: &str,
        channel: Channel,
        text: &str,
    ) -> Result<()> {
        let message = SmsMessage {
            to: to.to_owned(),
            channel: channel.as_str().to_owned(),
            text: text.to_owned(),
        };
        let plain = serde_json::to_vec(&message).map_err(|_| Error::Crypto)?;
        let now = self.now();
        sqlx::query("INSERT INTO sms_jobs (user_id, sealed, created_at, next_at) VALUES ($1, $2, $3, $3)")
            .bind(user.0)
            .bind(self.seal_value(&plain))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Texts and calls not yet sent nor given up, oldest first, whether due,
    /// waiting to be retried or being sent (for status and tests; the sender
    /// uses [`Queue::claim_sms`]).
    pub async fn pending_sms(&self, limit: i64) -> Result<Vec<SmsJob>> {
        let rows = sqlx::query("SELECT id, sealed, attempts FROM sms_jobs WHERE done_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
        self.sms_jobs(&rows)
    }

    /// Claims up to `limit` texts and calls due now, oldest first, for the
    /// caller alone: one conditional `UPDATE` moves each one's `next_at` a
    /// lease ([`SMS_LEASE`]) ahead, so another worker or node sees it due
    /// again only if this one dies before [`Queue::sms_done`]. Two nodes never
    /// send the same code twice in normal operation.
    pub async fn claim_sms(&self, limit: i64) -> Result<Vec<SmsJob>> {
        let now = self.now();
        let rows = sqlx::query(
            "UPDATE sms_jobs SET next_at = $3
             WHERE id IN (SELECT id FROM sms_jobs WHERE done_at IS NULL AND next_at <= $1 ORDER BY id LIMIT $2)
               AND done_at IS NULL AND next_at <= $1
             RETURNING id, sealed, attempts",
        )
        .bind(now)
        .bind(limit)
        .bind(now + SMS_LEASE)
        .fetch_all(&self.db)
        .await?;
        let mut jobs = self.sms_jobs(&rows)?;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    fn sms_jobs(&self, rows: &[sqlx::any::AnyRow]) -> Result<Vec<SmsJob>> {
        rows.iter()
            .map(|row| {
                let plain = self.open_value(&row.try_get::<Vec<u8>, _>("sealed")?)?;
                Ok(SmsJob {
                    id: row.try_get("id")?,
                    attempts: row.try_get("attempts")?,
                    message: Sealed::new(serde_json::from_slice(&plain).map_err(|_| Error::Crypto)?),
                })
            })
            .collect()
    }

    /// Records how sending went: done, or retried in 30 seconds (up to 5 tries).
    pub async fn sms_done(&self, job: &SmsJob, sent: bool) -> Result<()> {
        let give_up = sent || job.attempts + 1 >= MAX_ATTEMPTS;
        sqlx::query("UPDATE sms_jobs SET attempts = attempts + 1, done_at = $1, next_at = $2 WHERE id = $3")
            .bind(give_up.then(|| self.now()))
            .bind(self.now() + 30)
            .bind(job.id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    pub(crate) fn signal_sms(&self) {
        self.sms_added.notify_one();
    }
}
