//! How long a message lives, and what is left of it after: the sender or the
//! practice's User Manager keeps it longer or deletes it sooner (by
//! `Policy::extend_step_days`, never past `Policy::max_retention_days` after
//! sending); a practice's own retention for new messages; and the tombstone a
//! participant sees once a message ended ("deleted on …") instead of nothing.
//!
//! Expiry itself is the visibility rule's (`visibility.rs`): a message past
//! `expires_at` is unreadable at once, whether or not the purge ran.

use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::{MessageId, PracticeId};
use crate::states::MessageState;
use crate::{Error, Mail, Result};

const DAY: i64 = 86_400;

/// Which way a message's life changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryChange {
    /// One step later, up to the maximum.
    Extend,
    /// One step sooner, but never within a day from now (to end it now, delete it).
    Shorten,
}

/// Why a message a participant asks for is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its sender deleted it for everyone.
    Deleted,
    /// It reached its self-destruct date.
    Expired,
    /// The reader (a recipient) deleted it for themself.
    Hidden,
}

/// What a participant learns about a message that ended: how and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub ending: Ending,
    /// When (Unix seconds); unknown for messages that ended before it was kept.
    pub at: Option<i64>,
}

/// A readable message of a practice, as its User Manager lists them to keep
/// longer or delete sooner: who sent it and when, no content.
#[derive(Debug, Clone)]
pub struct PracticeMessage {
    pub id: MessageId,
    /// The sender's name, else address.
    pub sender: String,
    pub recipients: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Mail<'_> {
    /// A User Manager's practice's readable messages, soonest to self-destruct
    /// first (at most `limit`).
    pub async fn practice_messages(&self, user: &User, limit: i64) -> Result<Vec<PracticeMessage>> {
        let practice = match user.practice_id {
            Some(practice) if user.user_manager => practice,
            _ => return Err(Error::Forbidden("only a practice's User Manager lists its messages")),
        };
        let rows = sqlx::query(
            "SELECT m.id, m.created_at, m.expires_at,
                CASE WHEN u.full_name = '' THEN u.email ELSE u.full_name END AS sender,
                (SELECT COUNT(*) FROM message_recipients r WHERE r.message_id = m.id) AS recipients
             FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.practice_id = $1 AND m.state = $2 AND m.expires_at > $3
             ORDER BY m.expires_at, m.id LIMIT $4",
        )
        .bind(practice.0)
        .bind(MessageState::Sealed.as_str())
        .bind(self.now())
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PracticeMessage {
                    id: MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id"))?,
                    sender: row.try_get("sender")?,
                    recipients: row.try_get("recipients")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// May `user` change how long message `id` lives? Its sender, or a User
    /// Manager of the practice it was sent under, while it is readable.
    /// Returns (`created_at`, `expires_at`).
    async fn lifetime_for(&self, user: &User, id: &MessageId) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT sender_id, practice_id, created_at, expires_at FROM messages
             WHERE id = $1 AND state = $2 AND expires_at > $3",
        )
        .bind(id.as_str())
        .bind(MessageState::Sealed.as_str())
        .bind(self.now())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let sender = row.try_get::<i64, _>("sender_id")? == user.id.0;
        let manager = user.user_manager && user.practice_id.map(|p| p.0) == Some(row.try_get("practice_id")?);
        if !sender && !manager {
            // A recipient who may read it learns nothing more than a stranger.
            return Err(Error::NotFound);
        }
        Ok((row.try_get("created_at")?, row.try_get("expires_at")?))
    }

    /// Whether `user` may extend or shorten message `id` (see [`ExpiryChange`]).
    pub async fn may_change_expiry(&self, user: &User, id: &MessageId) -> Result<bool> {
        match self.lifetime_for(user, id).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Moves message `id`'s self-destruct date one step; returns the new date.
    /// Audited as `message.extend` or `message.shorten`.
    pub async fn change_expiry(&self, user: &User, id: &MessageId, change: ExpiryChange, client: &str) -> Result<i64> {
        let (created_at, expires_at) = self.lifetime_for(user, id).await?;
        let step = self.policy.extend_step_days * DAY;
        let now = self.now();
        let (new, action) = match change {
            ExpiryChange::Extend => {
                let latest = created_at + self.policy.max_retention_days * DAY;
                let new = (expires_at + step).min(latest);
                if new <= expires_at {
                    return Err(Error::invalid(format!(
                        "This message is already kept as long as allowed: {} days after it was sent.",
                        self.policy.max_retention_days
                    )));
                }
                (new, "message.extend")
            }
            ExpiryChange::Shorten => {
                let new = (expires_at - step).max(now + DAY);
                if new >= expires_at {
                    return Err(Error::invalid(
                        "This message already deletes within a day. To remove it now, delete it.",
                    ));
                }
                (new, "message.shorten")
            }
        };
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let changed =
            sqlx::query("UPDATE messages SET expires_at = $1 WHERE id = $2 AND state = $3 AND expires_at = $4")
                .bind(new)
                .bind(id.as_str())
                .bind(MessageState::Sealed.as_str())
                .bind(expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Err(Error::Conflict(
                "Someone changed this message's date at the same time. Look again, then try once more.".into(),
            ));
        }
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: &format!("user:{}", user.id),
                action,
                object: &format!("message:{id}"),
                client,
            },
        )
        .await?;
        tx.commit().await?;
        drop(guard);
        Ok(new)
    }

    /// How many days new messages of `practice` live: its own setting, else
    /// the configured default.
    pub async fn practice_retention_days(&self, practice: PracticeId) -> Result<i64> {
        let own: Option<i64> = sqlx::query("SELECT retention_days FROM practices WHERE id = $1")
            .bind(practice.0)
            .fetch_optional(&self.db)
            .await?
            .map(|row| row.try_get("retention_days"))
            .transpose()?
            .flatten();
        Ok(own.unwrap_or(self.policy.retention_days))
    }

    /// A User Manager sets their practice's retention for new messages (`None`:
    /// back to the configured default). Audited as `practice.retention`.
    pub async fn set_practice_retention(&self, user: &User, days: Option<i64>, client: &str) -> Result<()> {
        let practice = match user.practice_id {
            Some(practice) if user.user_manager => practice,
            _ => return Err(Error::Forbidden("only a practice's User Manager sets its retention")),
        };
        if let Some(days) = days
            && !(1..=self.policy.max_retention_days).contains(&days)
        {
            return Err(Error::invalid(format!(
                "Choose between 1 and {} days.",
                self.policy.max_retention_days
            )));
        }
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE practices SET retention_days = $1 WHERE id = $2")
            .bind(days)
            .bind(practice.0)
            .execute(&mut *tx)
            .await?;
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: &format!("user:{}", user.id),
                action: "practice.retention",
                object: &format!(
                    "practice:{}/retention:{}",
                    practice.0,
                    days.map_or_else(|| "default".to_owned(), |d| d.to_string())
                ),
                client,
            },
        )
        .await?;
        tx.commit().await?;
        drop(guard);
        Ok(())
    }

    /// What `user` may learn about message `id` that they can no longer see:
    /// only its sender or a recipient (once told of it) gets a tombstone;
    /// anyone else, and a message still readable, is [`Error::NotFound`].
    pub async fn tombstone(&self, user: &User, id: &MessageId) -> Result<Tombstone> {
        let row = sqlx::query(
            "SELECT m.sender_id, m.state, m.expires_at, m.ended_at, r.hidden_at, r.state AS recipient_state
             FROM messages m LEFT JOIN message_recipients r ON r.message_id = m.id AND r.user_id = $1
             WHERE m.id = $2",
        )
        .bind(user.id.0)
        .bind(id.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let is_sender = row.try_get::<i64, _>("sender_id")? == user.id.0;
        let recipient_state: Option<String> = row.try_get("recipient_state")?;
        let is_recipient = recipient_state
            .as_deref()
            .is_some_and(|s| s != crate::states::RecipientState::AwaitingRole.as_str());
        if !is_sender && !is_recipient {
            return Err(Error::NotFound);
        }
        let ended_at: Option<i64> = row.try_get("ended_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let tombstone = match MessageState::parse(&row.try_get::<String, _>("state")?)? {
            MessageState::Deleted => Tombstone {
                ending: Ending::Deleted,
                at: ended_at,
            },
            // It ended at its date, whenever the purge came by.
            MessageState::Expired => Tombstone {
                ending: Ending::Expired,
                at: Some(expires_at.min(ended_at.unwrap_or(expires_at))),
            },
            MessageState::Sealed if expires_at <= self.now() => Tombstone {
                ending: Ending::Expired,
                at: Some(expires_at),
            },
            MessageState::Sealed => match row.try_get::<Option<i64>, _>("hidden_at")? {
                Some(at) if !is_sender => Tombstone {
                    ending: Ending::Hidden,
                    at: Some(at),
                },
                _ => return Err(Error::NotFound),
            },
        };
        Ok(tombstone)
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
