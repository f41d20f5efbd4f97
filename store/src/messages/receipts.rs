//! Read receipts for a message's sender: per recipient, when they first opened
//! it, each attachment download, and their replies. Read from the audit log
//! (the record of every view and download, portal and IMAP alike) and from the
//! conversation, never kept anywhere else; only the sender asks.

use std::collections::HashMap;

use sqlx::Row;

use crate::accounts::User;
use crate::ids::{MessageId, UserId};
use crate::states::RecipientState;
use crate::{Error, Mail, Result};

/// Something a recipient did with the message after opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Downloaded (or viewed in the page) attachment `index`.
    Attachment { index: usize, viewed_only: bool },
    /// Wrote message `id` in the same conversation.
    Reply { id: MessageId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptEvent {
    /// Unix seconds.
    pub at: i64,
    pub kind: ReceiptKind,
}

/// One recipient's receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub user_id: UserId,
    pub email: String,
    /// The sender has not said yet how they know this recipient (not notified).
    pub awaiting_role: bool,
    /// When they first opened the message.
    pub opened_at: Option<i64>,
    /// Downloads and replies, oldest first.
    pub events: Vec<ReceiptEvent>,
}

/// The user id in an audit actor `user:<id>`.
fn actor_id(actor: &str) -> Option<i64> {
    actor.strip_prefix("user:")?.parse().ok()
}

/// The attachment index in an audit object `message:<id>/attachment:<n>`.
fn attachment_index(object: &str) -> Option<usize> {
    object.rsplit_once("/attachment:")?.1.parse().ok()
}

impl Mail<'_> {
    /// The receipts of message `id`, one per recipient in address order. Only
    /// its sender may ask; anyone else gets [`Error::NotFound`].
    pub async fn receipts(&self, user: &User, id: &MessageId) -> Result<Vec<Receipt>> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::NotFound);
        }
        let message = sqlx::query(
            "SELECT attachment_count, created_at, COALESCE(conversation_id, id) AS conversation FROM messages WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_one(&self.db)
        .await?;
        let attachments: i64 = message.try_get("attachment_count")?;
        let created_at: i64 = message.try_get("created_at")?;
        let conversation: String = message.try_get("conversation")?;

        let mut receipts = Vec::new();
        let mut by_user = HashMap::new();
        for row in sqlx::query(
            "SELECT r.user_id, u.email, r.state, r.read_at FROM message_recipients r JOIN users u ON u.id = r.user_id
             WHERE r.message_id = $1 ORDER BY u.email",
        )
        .bind(id.as_str())
        .fetch_all(&self.db)
        .await?
        {
            let user_id: i64 = row.try_get("user_id")?;
            by_user.insert(user_id, receipts.len());
            receipts.push(Receipt {
                user_id: UserId(user_id),
                email: row.try_get("email")?,
                awaiting_role: RecipientState::parse(&row.try_get::<String, _>("state")?)?
                    == RecipientState::AwaitingRole,
                // Marked read without an audited view (an IMAP client setting \Seen).
                opened_at: row.try_get("read_at")?,
                events: Vec::new(),
            });
        }

        self.audited_receipts(id, attachments, &by_user, &mut receipts).await?;

        // Replies: their later messages in the same conversation.
        for row in sqlx::query(
            "SELECT id, sender_id, created_at FROM messages
             WHERE COALESCE(conversation_id, id) = $1 AND id <> $2 AND created_at >= $3 ORDER BY created_at, id",
        )
        .bind(&conversation)
        .bind(id.as_str())
        .bind(created_at)
        .fetch_all(&self.db)
        .await?
        {
            let Some(receipt) = by_user
                .get(&row.try_get::<i64, _>("sender_id")?)
                .and_then(|at| receipts.get_mut(*at))
            else {
                continue;
            };
            receipt.events.push(ReceiptEvent {
                at: row.try_get("created_at")?,
                kind: ReceiptKind::Reply {
                    id: MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id"))?,
                },
            });
        }
        for receipt in &mut receipts {
            receipt.events.sort_by_key(|e| e.at);
        }
        Ok(receipts)
    }

    /// Adds to `receipts` what the audit log holds of message `id` and its
    /// `attachments`: first views and downloads, by recipient (`by_user`: user
    /// id to their place in `receipts`).
    async fn audited_receipts(
        &self,
        id: &MessageId,
        attachments: i64,
        by_user: &HashMap<i64, usize>,
        receipts: &mut [Receipt],
    ) -> Result<()> {
        // The message's own audit entries and its attachments', by exact object
        // (the index on `audit.object` serves each).
        let mut objects = vec![format!("message:{id}")];
        objects.extend((0..attachments.clamp(0, 1000)).map(|n| format!("message:{id}/attachment:{n}")));
        let placeholders: Vec<String> = (1..=objects.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT at, actor, action, object FROM audit WHERE object IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        // Only numbered placeholders are formatted in; the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for object in &objects {
            query = query.bind(object);
        }
        let mut opened: HashMap<usize, i64> = HashMap::new();
        for row in query.fetch_all(&self.db).await? {
            let Some(at) = actor_id(&row.try_get::<String, _>("actor")?).and_then(|u| by_user.get(&u).copied()) else {
                continue;
            };
            let when: i64 = row.try_get("at")?;
            let action: String = row.try_get("action")?;
            let object: String = row.try_get("object")?;
            match action.as_str() {
                "message.view" => {
                    opened.entry(at).or_insert(when);
                }
                "attachment.download" | "attachment.view" => {
                    if let (Some(index), Some(receipt)) = (attachment_index(&object), receipts.get_mut(at)) {
                        receipt.events.push(ReceiptEvent {
                            at: when,
                            kind: ReceiptKind::Attachment {
                                index,
                                viewed_only: action == "attachment.view",
                            },
                        });
                    }
                }
                _ => {}
            }
        }
        for (at, when) in opened {
            if let Some(receipt) = receipts.get_mut(at) {
                receipt.opened_at = Some(receipt.opened_at.map_or(when, |read| read.min(when)));
            }
        }

        Ok(())
    }
}
