//! The sender's role choices: recipients a message reached before anyone said
//! how they relate to the practice wait (unnotified, unseen) until the sender
//! chooses; each then gets their notification.

use sqlx::Row;

use super::RecipientStatus;
use crate::accounts::{Relationship, User};
use crate::audit::AuditEvent;
use crate::ids::{MessageId, UserId};
use crate::states::RecipientState;
use crate::{Error, Mail, Result};

impl Mail<'_> {
    /// Recipients of `id` still waiting for the sender to choose their role.
    pub async fn pending_roles(&self, user: &User, id: &MessageId) -> Result<Vec<RecipientStatus>> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::Forbidden("only its sender may choose recipients' roles"));
        }
        let rows = sqlx::query(
            "SELECT r.user_id, u.email FROM message_recipients r JOIN users u ON u.id = r.user_id
             WHERE r.message_id = $1 AND r.state = $2 ORDER BY u.email",
        )
        .bind(id.as_str())
        .bind(RecipientState::AwaitingRole.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecipientStatus {
                    user_id: UserId(r.try_get("user_id")?),
                    email: r.try_get("email")?,
                    awaiting_role: true,
                    read: false,
                })
            })
            .collect()
    }

    /// The sender chooses relationships for waiting recipients; each then gets
    /// their notification (an invitation if they have no account).
    pub async fn choose_roles(
        &self,
        user: &User,
        id: &MessageId,
        choices: &[(UserId, Relationship)],
        client: &str,
    ) -> Result<usize> {
        let pending = self.pending_roles(user, id).await?;
        let row = self.message_row(id).await?;
        let mut tx = self.write_tx().await?;
        let mut done = 0;
        for (recipient, relationship) in choices {
            if !pending.iter().any(|p| p.user_id == *recipient) {
                continue;
            }
            self.add_contact(&mut tx, row.practice_id, *recipient, *relationship)
                .await?;
            sqlx::query("UPDATE message_recipients SET state = $3 WHERE message_id = $1 AND user_id = $2")
                .bind(id.as_str())
                .bind(recipient.0)
                .bind(RecipientState::Notify.as_str())
                .execute(&mut *tx)
                .await?;
            crate::job_kind::add_job(
                &mut tx,
                crate::job_kind::JobKind::Notify,
                *recipient,
                Some(id),
                self.now(),
            )
            .await?;
            done += 1;
        }
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "message.roles",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        Ok(done)
    }
}
