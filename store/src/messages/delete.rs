//! The end of a message: the sender deletes it for everyone, or it expires.
//! Either way its wrapped data key goes first (crypto-shredding), then its
//! blobs; the row stays as its tombstone (ids, people, sizes, times and when
//! it ended: no key, no subject, no content). A recipient's delete only hides
//! it for themself.

use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::MessageId;
use crate::states::MessageState;
use crate::{Error, Mail, Result};

impl Mail<'_> {
    /// Destroys a message for everyone: its wrapped key first (after that
    /// nothing can decrypt it), with the audit entry that says so in the same
    /// transaction, then its blobs. `false` when it was no longer sealed (the
    /// purge and its sender's delete met): nothing is audited twice.
    async fn shred(&self, id: &MessageId, state: MessageState, event: AuditEvent<'_>) -> Result<bool> {
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let shredded = sqlx::query(
            "UPDATE messages SET wrapped_key = NULL, sealed_subject = NULL, state = $1, ended_at = $2
             WHERE id = $3 AND state = $4",
        )
        .bind(state.as_str())
        .bind(self.now())
        .bind(id.as_str())
        .bind(MessageState::Sealed.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if shredded == 0 {
            return Ok(false);
        }
        self.audit_in(&mut tx, event).await?;
        tx.commit().await?;
        drop(guard);
        self.signal_mail();
        self.blobs.delete_prefix(&crate::layout::message_prefix(id)).await?;
        Ok(true)
    }

    /// The sender deletes a message for everyone (both ends: their Sent, every
    /// recipient's inbox, IMAP included).
    pub async fn delete_message(&self, user: &User, id: &MessageId, client: &str) -> Result<()> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::Forbidden("only its sender may delete a message"));
        }
        let actor = format!("user:{}", user.id);
        let object = format!("message:{id}");
        let shredded = self
            .shred(
                id,
                MessageState::Deleted,
                AuditEvent {
                    actor: &actor,
                    action: "message.delete",
                    object: &object,
                    client,
                },
            )
            .await?;
        if !shredded {
            return Err(Error::NotFound);
        }
        // The wrapped key's old bytes may still be in the write-ahead log (db.rs).
        self.wipe_freed_pages().await;
        Ok(())
    }

    /// A recipient deletes a message for themself only: it leaves their inbox
    /// (portal and IMAP); the sender and the other recipients keep it.
    pub async fn hide_message(&self, user: &User, id: &MessageId, client: &str) -> Result<()> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if is_sender {
            return Err(Error::Forbidden("its sender deletes a message for everyone"));
        }
        self.hide_for(user, id, client).await
    }

    /// Hides `id` from `user`'s inbox (no check: IMAP expunges only what its
    /// INBOX listed), audited in the same transaction.
    pub(crate) async fn hide_for(&self, user: &User, id: &MessageId, client: &str) -> Result<()> {
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let hidden = sqlx::query(
            "UPDATE message_recipients SET hidden_at = $1 WHERE message_id = $2 AND user_id = $3 AND hidden_at IS NULL",
        )
        .bind(self.now())
        .bind(id.as_str())
        .bind(user.id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if hidden > 0 {
            self.audit_in(
                &mut tx,
                AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "message.hide",
                    object: &format!("message:{id}"),
                    client,
                },
            )
            .await?;
        }
        tx.commit().await?;
        drop(guard);
        self.signal_mail();
        Ok(())
    }

    /// Shreds every message past its expiry; returns how many.
    pub async fn purge_expired(&self) -> Result<usize> {
        let rows = sqlx::query("SELECT id FROM messages WHERE state = $1 AND expires_at <= $2")
            .bind(MessageState::Sealed.as_str())
            .bind(self.now())
            .fetch_all(&self.db)
            .await?;
        let mut count = 0;
        for row in rows {
            let stored: String = row.try_get("id")?;
            let Some(id) = MessageId::parse(&stored) else {
                // Not one of our ids, so nothing of it can be found to shred;
                // said each pass so that someone looks (ids are random, not PHI).
                tracing::error!(id = %stored, "corrupt data: an expired message with a malformed id is left alone");
                continue;
            };
            let object = format!("message:{id}");
            let shredded = self
                .shred(
                    &id,
                    MessageState::Expired,
                    AuditEvent {
                        actor: "system",
                        action: "message.expire",
                        object: &object,
                        client: "",
                    },
                )
                .await?;
            count += usize::from(shredded);
        }
        if count > 0 {
            // Once for the whole batch: the old keys may still be in the write-ahead log (db.rs).
            self.wipe_freed_pages().await;
        }
        Ok(count)
    }
}
