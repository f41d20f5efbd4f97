//! Best-method delivery's queue: a secure message goes to a recipient at a
//! partner domain as the message itself (a *direct copy*), over a TLS
//! connection whose certificate was verified, instead of a notification —
//! when the sending practice allows it (`accounts/direct_delivery.rs`) and the
//! gateway's configuration names the domain. The gateway decides; this module
//! queues the copy, reads it out of the sealed message when it is sent (it is
//! never copied into the queue), and records which path each recipient got in
//! the audit log (`delivery.direct`, `delivery.direct_fallback`,
//! `delivery.notification`), naming the message and the recipient's id only.
//!
//! A direct copy that cannot go over verified TLS *falls back*: its row ends,
//! and a notification job for the same recipient is added in the same
//! transaction, so the portal path follows and nothing goes out unverified.
//! A recipient gets at most one direct copy of a message: once one was queued,
//! every later notification of that recipient for that message is one.

use bytes::BytesMut;
use futures::StreamExt as _;
use sqlx::Row;

use crate::audit::AuditEvent;
use crate::crypto::WrappedKey;
use crate::direct_copy::DirectCopy;
use crate::ids::{MessageId, UserId};
use crate::job_kind::JobKind;
use crate::jobs::{DeliveryOutcome, MailJob, OutboundItem};
use crate::states::{MessageState, OutboundState};
use crate::{Error, Queue, Result, Sealed};

/// What the notifier weighs before it writes a notification for one job.
#[derive(Debug, Clone)]
pub struct DirectChoice {
    pub copy: DirectCopy,
    /// The sending practice lets its messages go directly.
    pub allowed: bool,
    /// The recipient's address (the envelope's `RCPT TO`).
    pub recipient: String,
    /// The sender's address (the envelope's `MAIL FROM`).
    pub sender: String,
    /// The recipients' copy of the message, in bytes.
    pub size: i64,
    /// A direct copy was queued for this recipient and message before: this
    /// job is its fallback (or a later notification), never a second copy.
    pub tried: bool,
}

/// The message a direct copy carries, as it is read out of the store.
#[derive(Debug)]
pub enum DirectBody {
    /// The recipients' copy of the original (no Bcc, no `X-Sealpost-*`).
    Message(Sealed<Vec<u8>>),
    /// Larger than the caller's limit: it goes the portal way.
    TooLarge,
    /// Deleted or expired meanwhile (its key is destroyed): nothing to send.
    Gone,
}

/// Why a direct copy fell back to a notification (the audit log's word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The domain had no verified TLS at delivery time (no `verify` policy,
    /// no MTA-STS `enforce`, no DANE records).
    NotVerified,
    /// The TLS handshake or its verification failed, or STARTTLS was missing.
    Tls,
    /// The partner refused the message, or could not be reached in time.
    Refused,
    /// The message is larger than direct delivery sends.
    TooLarge,
    /// Direct delivery is not possible on this route (not `mx`).
    Route,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotVerified => "not-verified",
            Self::Tls => "tls",
            Self::Refused => "refused",
            Self::TooLarge => "too-large",
            Self::Route => "route",
        }
    }
}

fn object(copy: &DirectCopy) -> String {
    format!("message:{}/recipient:{}", copy.message, copy.recipient)
}

impl Queue<'_> {
    /// What the notifier needs to choose the path of a notification job;
    /// `None` for another kind of job, or a message or recipient gone.
    pub async fn direct_choice(&self, job: &MailJob) -> Result<Option<DirectChoice>> {
        let (JobKind::Notify, Some(message)) = (job.kind, &job.message_id) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT r.email AS recipient, s.email AS sender, p.direct_delivery, m.size,
                    (SELECT COUNT(*) FROM outbound o WHERE o.direct_message_id = m.id AND o.direct_user_id = r.id) AS tried
             FROM messages m JOIN practices p ON p.id = m.practice_id JOIN users s ON s.id = m.sender_id
                  JOIN users r ON r.id = $2
             WHERE m.id = $1 AND m.state = $3",
        )
        .bind(message.as_str())
        .bind(job.user_id.0)
        .bind(MessageState::Sealed.as_str())
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(DirectChoice {
            copy: DirectCopy {
                message: message.clone(),
                recipient: job.user_id,
            },
            allowed: row.try_get::<i64, _>("direct_delivery")? != 0,
            recipient: row.try_get("recipient")?,
            sender: row.try_get("sender")?,
            size: row.try_get("size")?,
            tried: row.try_get::<i64, _>("tried")? > 0,
        }))
    }

    /// Queues a direct copy instead of a notification and marks the job done,
    /// in one transaction. The row carries no body (an empty one, sealed under
    /// its own key, keeps the queue's rules); the message is read when sent.
    /// Returns the delivery's id.
    pub async fn queue_direct(&self, job: i64, choice: &DirectChoice) -> Result<String> {
        let key = crate::crypto::DataKey::generate();
        let sealed = crate::crypto::seal_all(&key, crate::layout::BLOB_ORIGINAL, b"");
        let wrapped = self.keys.wrap(&key);
        let id = crate::crypto::random_hex(16);
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO outbound (id, blob, mail_from, rcpt_to, kek_id, wrapped_key, strip_markers, next_attempt_at,
                                   state, created_at, body, node, direct_message_id, direct_user_id)
             VALUES ($1, '', $2, $3, $4, $5, 0, $6, $7, $6, $8, '', $9, $10)",
        )
        .bind(&id)
        .bind(&choice.sender)
        .bind(&choice.recipient)
        .bind(&wrapped.kek_id)
        .bind(&wrapped.wrapped)
        .bind(now)
        .bind(OutboundState::Queued.as_str())
        .bind(&sealed)
        .bind(choice.copy.message.as_str())
        .bind(choice.copy.recipient.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE mail_jobs SET done_at = $1 WHERE id = $2")
            .bind(now)
            .bind(job)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records that a recipient of a practice that allows direct delivery got
    /// a notification because their domain is no partner (or the message is
    /// too large): `delivery.notification`.
    pub async fn record_notification_path(&self, copy: &DirectCopy) -> Result<()> {
        self.audit(AuditEvent {
            actor: "system",
            action: "delivery.notification",
            object: &object(copy),
            client: "smtp",
        })
        .await
    }

    /// The message a direct copy carries, read whole (it is DKIM-signed before
    /// it is sent): at most `max` bytes, else [`DirectBody::TooLarge`].
    pub async fn direct_body(&self, copy: &DirectCopy, max: u64) -> Result<DirectBody> {
        let row = sqlx::query("SELECT state, kek_id, wrapped_key, size FROM messages WHERE id = $1")
            .bind(copy.message.as_str())
            .fetch_optional(&self.db)
            .await?;
        let Some(row) = row else { return Ok(DirectBody::Gone) };
        let wrapped: Option<Vec<u8>> = row.try_get("wrapped_key")?;
        let (MessageState::Sealed, Some(wrapped)) =
            (MessageState::parse(&row.try_get::<String, _>("state")?)?, wrapped)
        else {
            return Ok(DirectBody::Gone);
        };
        if u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(u64::MAX) > max {
            return Ok(DirectBody::TooLarge);
        }
        let key = self.keys.unwrap(&WrappedKey {
            kek_id: row.try_get("kek_id")?,
            wrapped,
        })?;
        let id = &copy.message;
        let mut stream = match self
            .blobs
            .open_piece(id, &key, crate::layout::MessageBlob::Visible)
            .await
        {
            // Sealed before there was a recipients' copy: never sent directly
            // (the original as received may carry Bcc and the add-in's fields).
            Err(Error::NotFound) => return Ok(DirectBody::Gone),
            other => other?,
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() as u64 > max {
                return Ok(DirectBody::TooLarge);
            }
        }
        Ok(DirectBody::Message(Sealed::new(body.to_vec())))
    }

    /// A direct copy was taken by the partner over verified TLS: the row is
    /// sent and `delivery.direct` is in the audit log, in one transaction.
    pub async fn direct_delivered(&self, item: &OutboundItem, copy: &DirectCopy) -> Result<()> {
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE outbound SET state = $2, attempts = attempts + 1, last_error = NULL, claimed_until = 0 WHERE id = $1",
        )
        .bind(&item.id)
        .bind(OutboundState::Sent.as_str())
        .execute(&mut *tx)
        .await?;
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: "system",
                action: "delivery.direct",
                object: &object(copy),
                client: "smtp",
            },
        )
        .await?;
        tx.commit().await?;
        drop(guard);
        Ok(())
    }

    /// A direct copy falls back to the portal path: its row fails (no DSN: the
    /// message still reaches the recipient), a notification job for the same
    /// recipient is added, and `delivery.direct_fallback` names the reason —
    /// all in one transaction, so the notification follows exactly once.
    pub async fn direct_fallback(&self, item: &OutboundItem, copy: &DirectCopy, why: Fallback) -> Result<()> {
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE outbound SET state = $2, attempts = attempts + 1, last_error = $3, claimed_until = 0 WHERE id = $1",
        )
        .bind(&item.id)
        .bind(OutboundState::Failed.as_str())
        .bind(format!("direct copy not sent ({}): notified instead", why.as_str()))
        .execute(&mut *tx)
        .await?;
        crate::job_kind::add_job(
            &mut tx,
            JobKind::Notify,
            copy.recipient,
            Some(&copy.message),
            self.now(),
        )
        .await?;
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: "system",
                action: "delivery.direct_fallback",
                object: &format!("{}/reason:{}", object(copy), why.as_str()),
                client: "smtp",
            },
        )
        .await?;
        tx.commit().await?;
        drop(guard);
        self.signal_jobs();
        Ok(())
    }

    /// A direct copy whose message was deleted or expired before it left:
    /// nothing is sent, and nobody is notified of a message that is gone.
    pub async fn direct_gone(&self, item: &OutboundItem) -> Result<()> {
        self.outbound_done(
            item,
            &DeliveryOutcome::Failed {
                error: "direct copy not sent: the message is gone".into(),
            },
        )
        .await
    }

    /// Which path each recipient of `message` got, from the audit log:
    /// `(recipient, action)` in the order written (for tests and support).
    pub async fn delivery_paths(&self, message: &MessageId) -> Result<Vec<(UserId, String)>> {
        let rows = sqlx::query(
            "SELECT action, object FROM audit WHERE action LIKE 'delivery.%' AND object LIKE $1 ORDER BY id",
        )
        .bind(format!("message:{message}/recipient:%"))
        .fetch_all(&self.db)
        .await?;
        let mut paths = Vec::with_capacity(rows.len());
        for row in &rows {
            let object: String = row.try_get("object")?;
            let user = object
                .split('/')
                .find_map(|part| part.strip_prefix("recipient:"))
                .and_then(|id| id.parse().ok())
                .ok_or(Error::Corrupt("delivery audit object"))?;
            paths.push((UserId(user), row.try_get("action")?));
        }
        Ok(paths)
    }
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
