//! The end of a message: the sender deletes it for everyone, or it expires.
//! Either way its wrapped data key goes first (crypto-shredding), then its blobs.

use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::MessageId;
use crate::states::MessageState;
use crate::{Error, Mail, Result};

impl Mail<'_> {
    /// Destroys a message for everyone: its wrapped key first (after that nothing
    /// can decrypt it), then its blobs.
    async fn shred(&self, id: &MessageId, state: MessageState) -> Result<()> {
        sqlx::query("UPDATE messages SET wrapped_key = NULL, sealed_subject = NULL, state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id.as_str())
            .execute(&self.db)
            .await?;
        self.signal_mail();
        self.blobs.delete_prefix(&crate::layout::message_prefix(id)).await
    }

    /// The sender deletes a message for everyone.
    pub async fn delete_message(&self, user: &User, id: &MessageId, client: &str) -> Result<()> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::Forbidden("only its sender may delete a message"));
        }
        self.shred(id, MessageState::Deleted).await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "message.delete",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        // The wrapped key's old bytes may still be in the write-ahead log (db.rs).
        self.wipe_freed_pages().await;
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
            self.shred(&id, MessageState::Expired).await?;
            self.audit(AuditEvent {
                actor: "system",
                action: "message.expire",
                object: &format!("message:{id}"),
                client: "",
            })
            .await?;
            count += 1;
        }
        if count > 0 {
            // Once for the whole batch: the old keys may still be in the write-ahead log (db.rs).
            self.wipe_freed_pages().await;
        }
        Ok(count)
    }
}
