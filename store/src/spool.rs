//! The inbound spool: a message is sealed into a local file as it arrives over SMTP
//! and fsynced, and only then recorded in the database; the gateway answers 250
//! after both (the row in a group commit with other sessions' rows, which also
//! fsyncs the spool folder once for the batch: `group_commit.rs`). Secure messages are later sealed into the store
//! ([`crate::Mail::seal_spooled`](crate::Mail::seal_spooled)); ordinary mail goes
//! straight to the outbound queue.
//!
//! Sealing is tried a bounded number of times: each attempt is counted before it
//! starts (so one that kills the process counts too) and the next waits longer.
//! After [`MAX_SEAL_ATTEMPTS`] the message is *quarantined*: it stays here as it
//! arrived, sealed under its own key, and the sealer passes it by, so one bad
//! message never holds up the others (issue 9).

use std::sync::Arc;

use sqlx::Row;

use crate::ids::{MessageId, UserId};
use crate::{Queue, Result};

pub use crate::spool_file::{SpoolWriter, Spooled};

/// How many times sealing one spooled message is tried before it is quarantined.
pub const MAX_SEAL_ATTEMPTS: i64 = 5;

/// Seconds before attempt `attempts + 1` to seal a message: 1 min, 2, 4, 8 … at
/// most an hour.
pub fn seal_retry_delay(attempts: i64) -> i64 {
    (60_i64 << attempts.saturating_sub(1).clamp(0, 6)).min(3600)
}

/// What the sealer does with a due spooled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealAttempt {
    /// Try to seal it: this is attempt `n` (from 1), already counted.
    Try(i64),
    /// It has failed [`MAX_SEAL_ATTEMPTS`] times: quarantine it.
    GiveUp,
}

/// The sealing state of a spooled message (for the sealer, admins and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub id: MessageId,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub quarantined_at: Option<i64>,
    pub received_at: i64,
}

/// A message just quarantined, and whom to tell (no content: only the envelope).
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub id: MessageId,
    /// The envelope sender (empty for a bounce: then nobody is told).
    pub mail_from: String,
    pub received_at: i64,
    /// Messages in quarantine now, this one included.
    pub total: i64,
}

fn entry_from_row(row: &sqlx::any::AnyRow) -> Result<SpoolEntry> {
    let id: String = row.try_get("id")?;
    Ok(SpoolEntry {
        id: MessageId::parse(&id).ok_or(crate::Error::Corrupt("spooled message id"))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        quarantined_at: row.try_get("quarantined_at")?,
        received_at: row.try_get("received_at")?,
    })
}

/// The ids of spool rows (see [`spool_id`]).
fn spool_ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<MessageId>> {
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        ids.extend(spool_id(row)?);
    }
    Ok(ids)
}

/// A spool row's id. One that is not a message id (no file can have that
/// name) is corrupt: `None`, logged each time it is passed by, never silently.
pub(crate) fn spool_id(row: &sqlx::any::AnyRow) -> Result<Option<MessageId>> {
    let id: String = row.try_get("id")?;
    let parsed = MessageId::parse(&id);
    if parsed.is_none() {
        // Ids are random, never PHI.
        tracing::error!(%id, "corrupt data: a spool row with a malformed id is passed by");
    }
    Ok(parsed)
}

impl Queue<'_> {
    /// Starts spooling an incoming message.
    pub async fn spool_writer(&self) -> Result<SpoolWriter> {
        SpoolWriter::create(&self.spool_in()).await
    }

    /// Records a spooled secure message from `sender`. When this returns, the
    /// message is durable: the gateway may answer 250.
    pub async fn accept_secure(
        &self,
        spooled: &Spooled,
        mail_from: &str,
        rcpt_to: &[String],
        sender: UserId,
    ) -> Result<()> {
        self.record_spooled(spooled, mail_from, rcpt_to, sender, None).await
    }

    /// The one insert of a spooled secure message, marked or (with `thread`,
    /// the conversation's newest message) a reply made secure by its thread.
    pub(crate) async fn record_spooled(
        &self,
        spooled: &Spooled,
        mail_from: &str,
        rcpt_to: &[String],
        sender: UserId,
        thread: Option<&MessageId>,
    ) -> Result<()> {
        let wrapped = self.keys.wrap(spooled.key());
        let node = Arc::new(self.node.clone());
        let row = Arc::new((
            spooled.id.as_str().to_owned(),
            mail_from.to_owned(),
            serde_json::to_string(rcpt_to).expect("strings serialize"),
            sender.0,
            wrapped,
            i64::try_from(spooled.size).unwrap_or(i64::MAX),
            self.now(),
            thread.map(|t| t.as_str().to_owned()),
            spooled.inline(),
        ));
        // In a group commit with other sessions' messages (`group_commit.rs`).
        self.group_commit(Arc::new(move |_store, tx| {
            let (row, node) = (Arc::clone(&row), Arc::clone(&node));
            Box::pin(async move {
                let (id, mail_from, rcpt_to, sender, wrapped, size, now, thread, inline) = &*row;
                sqlx::query(
                    "INSERT INTO spool (id, mail_from, rcpt_to, sender_id, kek_id, wrapped_key, size, received_at, thread_message_id, node, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(id.as_str())
                .bind(mail_from.as_str())
                .bind(rcpt_to.as_str())
                .bind(*sender)
                .bind(wrapped.kek_id.as_str())
                .bind(wrapped.wrapped.as_slice())
                .bind(*size)
                .bind(*now)
                .bind(thread.as_deref())
                .bind(node.as_str())
                .bind(inline.as_deref())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }), spooled.folder())
        .await
    }

    /// Records a spooled ordinary message for delivery, unchanged but for the
    /// `X-Sealpost-*` headers. When this returns, the gateway may answer 250.
    /// A message kept in memory ([`Spooled::inline`]) is queued in its
    /// deliveries' rows, like a notification: no file.
    pub async fn accept_plain(&self, spooled: &Spooled, mail_from: &str, rcpt_to: &[String]) -> Result<()> {
        let wrapped = Arc::new(self.keys.wrap(spooled.key()));
        let inline = spooled.inline();
        let blob = Arc::new(match inline {
            Some(_) => String::new(),
            None => crate::layout::SpoolDir::In.entry(&spooled.id),
        });
        let (mail_from, rcpt_to, now) = (Arc::new(mail_from.to_owned()), Arc::new(rcpt_to.to_vec()), self.now());
        // A file is on this node's disk; a row any node may send.
        let node = Arc::new(if inline.is_some() {
            String::new()
        } else {
            self.node.clone()
        });
        // In a group commit with other sessions' messages (`group_commit.rs`).
        self.group_commit(
            Arc::new(move |_store, tx| {
                let (wrapped, blob, mail_from, rcpt_to, node, inline) = (
                    Arc::clone(&wrapped),
                    Arc::clone(&blob),
                    Arc::clone(&mail_from),
                    Arc::clone(&rcpt_to),
                    Arc::clone(&node),
                    inline.clone(),
                );
                Box::pin(async move {
                    for rcpt in rcpt_to.iter() {
                        let body = inline.as_deref();
                        crate::jobs::insert_outbound(tx, &blob, body, &mail_from, rcpt, &wrapped, true, now, &node)
                            .await?;
                    }
                    Ok(())
                })
            }),
            spooled.folder(),
        )
        .await
    }

    /// Secure messages spooled but not yet sealed into the store.
    pub async fn pending_spool(&self) -> Result<Vec<MessageId>> {
        let rows = sqlx::query("SELECT id FROM spool ORDER BY received_at")
            .fetch_all(&self.db)
            .await?;
        spool_ids(&rows)
    }

    /// Spooled secure messages due for a sealing attempt, oldest first: on this
    /// node's disk or kept in their row (any node may seal those), not
    /// quarantined, and not waiting after a failed attempt.
    pub async fn due_spool(&self, limit: i64) -> Result<Vec<MessageId>> {
        let sql = format!(
            "SELECT id FROM spool WHERE quarantined_at IS NULL AND next_attempt_at <= $1
                    AND (node = $2 OR data IS NOT NULL)
             ORDER BY received_at, id LIMIT {}",
            crate::db::literal_limit(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.now())
            .bind(self.node.as_str())
            .fetch_all(&self.db)
            .await?;
        spool_ids(&rows)
    }

    /// Sets a message that keeps failing aside: its spool file (sealed as it
    /// arrived) and row stay, the sealer passes it by, and any pieces a failed
    /// attempt left in the blob store go. `None` if it is not in the spool or
    /// already quarantined.
    pub async fn quarantine_spooled(&self, id: &MessageId) -> Result<Option<Quarantined>> {
        // The quarantine and its audit entry commit together.
        let audit_guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE spool SET quarantined_at = $2 WHERE id = $1 AND quarantined_at IS NULL")
            .bind(id.as_str())
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.audit_in(
            &mut tx,
            crate::audit::AuditEvent {
                actor: "system",
                action: "message.quarantine",
                object: &format!("message:{id}"),
                client: "",
            },
        )
        .await?;
        tx.commit().await?;
        drop(audit_guard);
        let row = sqlx::query("SELECT mail_from, received_at FROM spool WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&self.db)
            .await?;
        let sealed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM messages WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
        if sealed == 0 {
            self.blobs.delete_prefix(&crate::layout::message_prefix(id)).await?;
        }
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM spool WHERE quarantined_at IS NOT NULL")
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
        Ok(Some(Quarantined {
            id: id.clone(),
            mail_from: row.try_get("mail_from")?,
            received_at: row.try_get("received_at")?,
            total,
        }))
    }

    /// Puts a quarantined message back in line with a fresh count of attempts
    /// (after the cause is fixed), and audits it. `false` if it is not in
    /// quarantine.
    pub async fn release_quarantined(&self, id: &MessageId) -> Result<bool> {
        // The release and its audit entry commit together.
        let audit_guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE spool SET quarantined_at = NULL, attempts = 0, next_attempt_at = 0
             WHERE id = $1 AND quarantined_at IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let released = done.rows_affected() > 0;
        if released {
            self.audit_in(
                &mut tx,
                crate::audit::AuditEvent {
                    actor: "admin",
                    action: "message.release",
                    object: &format!("message:{id}"),
                    client: "cli",
                },
            )
            .await?;
            tx.commit().await?;
        }
        drop(audit_guard);
        Ok(released)
    }

    /// The sealing state of one spooled message; `None` once it is sealed.
    pub async fn spool_entry(&self, id: &MessageId) -> Result<Option<SpoolEntry>> {
        sqlx::query("SELECT id, attempts, next_attempt_at, quarantined_at, received_at FROM spool WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(entry_from_row)
            .transpose()
    }

    /// Messages in quarantine, oldest first.
    pub async fn quarantined_spool(&self) -> Result<Vec<SpoolEntry>> {
        let rows = sqlx::query(
            "SELECT id, attempts, next_attempt_at, quarantined_at, received_at FROM spool
             WHERE quarantined_at IS NOT NULL ORDER BY received_at, id",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{SealAttempt, seal_retry_delay};
    use crate::testing::{Logs, store};

    #[tokio::test]
    async fn a_spool_row_with_a_malformed_id_is_passed_by_and_logged() {
        let (logs, _guard) = Logs::capture();
        let (_dir, store, _) = store().await;
        let sender: i64 = sqlx::Row::get(
            &sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ('a@x.example', 'doctor', 'active', 0) RETURNING id")
                .fetch_one(&store.db)
                .await
                .unwrap(),
            "id",
        );
        let good = crate::ids::MessageId::generate();
        for id in ["not-an-id", good.as_str()] {
            sqlx::query(
                "INSERT INTO spool (id, mail_from, rcpt_to, sender_id, kek_id, wrapped_key, size, received_at, node)
                 VALUES ($1, '', '[]', $2, 'k', $3, 0, 0, $4)",
            )
            .bind(id)
            .bind(sender)
            .bind(vec![0u8; 8])
            .bind(store.node.as_str())
            .execute(&store.db)
            .await
            .unwrap();
        }
        assert_eq!(store.queue().due_spool(10).await.unwrap().len(), 1);
        assert_eq!(store.queue().pending_spool().await.unwrap().len(), 1);
        assert_eq!(
            store.queue().claim_seals(10).await.unwrap(),
            [(good.clone(), SealAttempt::Try(1))],
            "the sealer's claim passes it by too, and seals the others"
        );
        let text = logs.text();
        assert_eq!(
            text.matches("a spool row with a malformed id is passed by").count(),
            3,
            "{text}"
        );
        assert!(text.contains("id=not-an-id"));
    }

    #[tokio::test]
    async fn quarantine_and_release_each_commit_with_their_audit_entry() {
        let (_dir, store, _) = store().await;
        let sender: i64 = sqlx::Row::get(
            &sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ('a@x.example', 'doctor', 'active', 0) RETURNING id")
                .fetch_one(&store.db)
                .await
                .unwrap(),
            "id",
        );
        let id = crate::ids::MessageId::generate();
        sqlx::query(
            "INSERT INTO spool (id, mail_from, rcpt_to, sender_id, kek_id, wrapped_key, size, received_at, node)
             VALUES ($1, '', '[]', $2, 'k', $3, 0, 0, $4)",
        )
        .bind(id.as_str())
        .bind(sender)
        .bind(vec![0u8; 8])
        .bind(store.node.as_str())
        .execute(&store.db)
        .await
        .unwrap();
        assert!(store.queue().quarantine_spooled(&id).await.unwrap().is_some());
        assert!(store.queue().quarantine_spooled(&id).await.unwrap().is_none(), "once");
        assert!(store.queue().release_quarantined(&id).await.unwrap());
        assert!(!store.queue().release_quarantined(&id).await.unwrap(), "once");
        let audit = store.audit_log().recent_audit(10).await.unwrap();
        let count = |action: &str| audit.iter().filter(|(_, a, _)| a == action).count();
        assert_eq!((count("message.quarantine"), count("message.release")), (1, 1));
        assert!(store.audit_log().verify_audit().await.unwrap().is_ok());
    }

    #[test]
    fn seal_retries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(seal_retry_delay(1), 60);
        assert_eq!(seal_retry_delay(2), 120);
        assert_eq!(seal_retry_delay(4), 480);
        assert_eq!(seal_retry_delay(40), 3600);
    }
}
