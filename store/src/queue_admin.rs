//! The outbound queue as admins see it (`sealpost queue list | retry |
//! delete`), and the once-only mark of a "delayed" notice. Retrying and
//! deleting are audited; neither touches a delivery a worker holds right now.

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::states::OutboundState;
use crate::{Error, Queue, Result};

/// One queued or finished delivery, for a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    pub state: String,
    /// Empty for a DSN (the null sender).
    pub mail_from: String,
    pub rcpt_to: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    /// The codes of the last failure (already redacted when stored).
    pub last_error: Option<String>,
}

impl Queue<'_> {
    /// Deliveries, oldest first: only those still queued unless `all`.
    pub async fn list_outbound(&self, all: bool, limit: i64) -> Result<Vec<QueueEntry>> {
        let rows = sqlx::query(
            "SELECT id, state, mail_from, rcpt_to, attempts, created_at, next_attempt_at, last_error FROM outbound
             WHERE state = $1 OR $2 = 1 ORDER BY created_at, id LIMIT $3",
        )
        .bind(OutboundState::Queued.as_str())
        .bind(i64::from(all))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueEntry {
                    id: row.try_get("id")?,
                    state: row.try_get("state")?,
                    mail_from: row.try_get("mail_from")?,
                    rcpt_to: row.try_get("rcpt_to")?,
                    attempts: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    last_error: row.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// Makes queued deliveries due now (`id`, or every one when `None`);
    /// returns how many. A delivery a worker holds is left to it.
    pub async fn retry_outbound(&self, id: Option<&str>, actor: &str) -> Result<u64> {
        let now = self.now();
        let audit_guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE outbound SET next_attempt_at = $1
             WHERE state = $2 AND claimed_until <= $1 AND (id = $3 OR $3 = '')",
        )
        .bind(now)
        .bind(OutboundState::Queued.as_str())
        .bind(id.unwrap_or(""))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if id.is_some() && changed == 0 {
            return Err(Error::NotFound);
        }
        let object = format!("outbound:{}", id.unwrap_or("*"));
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor,
                action: "queue.retry",
                object: &object,
                client: "cli",
            },
        )
        .await?;
        tx.commit().await?;
        drop(audit_guard);
        Ok(changed)
    }

    /// Removes one delivery that is not being attempted right now, and its
    /// queue file once no other delivery needs it. Nothing is sent about it.
    pub async fn delete_outbound(&self, id: &str, actor: &str) -> Result<()> {
        let now = self.now();
        let audit_guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let blob: Option<String> = sqlx::query("SELECT blob FROM outbound WHERE id = $1 AND claimed_until <= $2")
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("blob"))
            .transpose()?;
        let Some(blob) = blob else {
            return Err(Error::NotFound);
        };
        sqlx::query("DELETE FROM outbound WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let others: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbound WHERE blob = $1 AND blob <> ''")
            .bind(&blob)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let object = format!("outbound:{id}");
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor,
                action: "queue.delete",
                object: &object,
                client: "cli",
            },
        )
        .await?;
        tx.commit().await?;
        drop(audit_guard);
        if !blob.is_empty() && others == 0 {
            let _ = tokio::fs::remove_file(self.spool_entry_path(&blob)).await;
        }
        Ok(())
    }

    /// Marks that the sender of delivery `id` was told it is late; `true`
    /// only for the one caller that marked it first.
    pub async fn claim_delay_notice(&self, id: &str) -> Result<bool> {
        let changed = sqlx::query("UPDATE outbound SET delay_notified = 1 WHERE id = $1 AND delay_notified = 0")
            .bind(id)
            .execute(&self.db)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Gives a claimed delivery back, due at `at`, without counting an
    /// attempt or touching its last error: it was not tried (its destination's
    /// rate was reached). Only the claim's holder calls this.
    pub async fn postpone_outbound(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE outbound SET next_attempt_at = $2, claimed_until = 0 WHERE id = $1 AND state = $3")
            .bind(id)
            .bind(at)
            .bind(OutboundState::Queued.as_str())
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::jobs::DeliveryOutcome;
    use crate::testing::store;

    #[tokio::test]
    async fn admins_list_retry_and_delete_and_a_delay_notice_is_claimed_once() {
        let (_dir, store, clock) = store().await;
        let queue = store.queue();
        queue
            .queue_mail(
                None,
                "ada@smiles.example",
                "pat@example.org",
                b"Subject: a\r\n\r\nx\r\n",
            )
            .await
            .unwrap();
        queue
            .queue_mail(None, "", "ada@smiles.example", b"Subject: b\r\n\r\ny\r\n")
            .await
            .unwrap();
        let listed = queue.list_outbound(false, 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        let first = listed
            .iter()
            .find(|e| e.rcpt_to == "pat@example.org")
            .unwrap()
            .id
            .clone();

        // A deferred delivery is made due now; an unknown id is refused.
        let due = queue.due_outbound(10).await.unwrap();
        let item = due.iter().find(|i| i.id == first).unwrap();
        let retry = DeliveryOutcome::Retry {
            error: "smarthost: 451 4.3.0 busy".into(),
            at: store.now() + 3600,
        };
        queue.outbound_done(item, &retry).await.unwrap();
        for other in due.iter().filter(|i| i.id != first) {
            queue.outbound_done(other, &DeliveryOutcome::Delivered).await.unwrap();
        }
        assert!(queue.due_outbound(10).await.unwrap().is_empty());
        assert!(matches!(
            queue.retry_outbound(Some("nope"), "cli").await,
            Err(crate::Error::NotFound)
        ));
        assert_eq!(queue.retry_outbound(Some(&first), "cli").await.unwrap(), 1);
        let due = queue.due_outbound(10).await.unwrap();
        assert_eq!(due.len(), 1, "due again at once");
        // Held by a worker: neither retried nor deleted under it.
        assert!(matches!(
            queue.delete_outbound(&first, "cli").await,
            Err(crate::Error::NotFound)
        ));
        queue.outbound_done(&due[0], &retry).await.unwrap();

        assert!(queue.claim_delay_notice(&first).await.unwrap());
        assert!(!queue.claim_delay_notice(&first).await.unwrap(), "told once");

        // Postponed (over a destination's rate): due later, no attempt counted.
        let before = queue.list_outbound(false, 10).await.unwrap();
        queue.retry_outbound(Some(&first), "cli").await.unwrap();
        let due = queue.due_outbound(10).await.unwrap();
        queue.postpone_outbound(&due[0].id, store.now() + 60).await.unwrap();
        let after = queue.list_outbound(false, 10).await.unwrap();
        assert_eq!(after[0].attempts, before[0].attempts, "not an attempt");
        assert_eq!(after[0].last_error, before[0].last_error);
        assert_eq!(after[0].next_attempt_at, store.now() + 60);
        assert!(queue.due_outbound(10).await.unwrap().is_empty(), "not due yet");

        clock.advance(1);
        queue.delete_outbound(&first, "cli").await.unwrap();
        assert!(queue.list_outbound(false, 10).await.unwrap().is_empty());
        assert_eq!(
            queue.list_outbound(true, 10).await.unwrap().len(),
            1,
            "the sent one stays listed with --all"
        );
        let audit = store.audit_log().recent_audit(10).await.unwrap();
        let actions: Vec<&str> = audit.iter().map(|(_, action, _)| action.as_str()).collect();
        assert!(
            actions.contains(&"queue.retry") && actions.contains(&"queue.delete"),
            "{actions:?}"
        );
        assert!(store.audit_log().verify_audit().await.unwrap().is_ok());
    }
}
