//! Sealed messages: the types the portal and IMAP show, and the rooms that act
//! on them: sealing a spooled message into the store with its recipients and
//! their relationships (`seal.rs`), who may see a message (`visibility.rs`),
//! the inbox and sent lists, reading and downloading (`read.rs`), conversations
//! and unread counts (`conversation.rs`), the sender's
//! role choices (`roles.rs`), what "Download all" and the viewers read
//! (`archive.rs`), and the lifecycle: how long a message lives and its
//! tombstone (`lifecycle.rs`), expiry and deletion destroy the data key,
//! crypto-shredding (`delete.rs`), and the sender's read receipts
//! (`receipts.rs`).

pub mod archive;
pub mod conversation;
mod delete;
pub mod lifecycle;
mod read;
pub mod receipts;
mod roles;
mod seal;
mod splitting;
pub(crate) mod visibility;

use sqlx::Row;

use crate::accounts::{Practice, User};
use crate::crypto::WrappedKey;
use crate::ids::{MessageId, PracticeId, UserId};
use crate::ingest::SealedMeta;
use crate::states::MessageState;
use crate::{Error, Mail, Result, Sealed};

/// One line of an inbox or sent list.
#[derive(Debug, Clone)]
pub struct MessageSummary {
    pub id: MessageId,
    /// The sender (inbox) or the recipients (sent list).
    pub counterpart: String,
    pub subject: Sealed<String>,
    pub created_at: i64,
    pub unread: bool,
    pub attachments: i64,
    /// When it self-destructs (Unix seconds).
    pub expires_at: i64,
    /// Sent list: how many of its recipients opened it, of how many.
    pub read_by: i64,
    pub recipients: i64,
}

/// A recipient as the sender sees it.
#[derive(Debug, Clone)]
pub struct RecipientStatus {
    pub user_id: UserId,
    pub email: String,
    pub awaiting_role: bool,
    pub read: bool,
}

/// A message opened for reading.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: MessageId,
    pub sender: User,
    pub practice: Practice,
    pub meta: SealedMeta,
    pub created_at: i64,
    pub expires_at: i64,
    /// The viewer sent it.
    pub is_sender: bool,
    pub recipients: Vec<RecipientStatus>,
}

pub(crate) struct MessageRow {
    sender_id: UserId,
    practice_id: PracticeId,
    pub(crate) key: WrappedKey,
    created_at: i64,
    expires_at: i64,
}

impl MessageRow {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(Self {
            sender_id: UserId(row.try_get("sender_id")?),
            practice_id: PracticeId(row.try_get("practice_id")?),
            key: WrappedKey {
                kek_id: row.try_get("kek_id")?,
                // Only a destroyed message has no key, and it is not sealed.
                wrapped: row
                    .try_get::<Option<Vec<u8>>, _>("wrapped_key")?
                    .ok_or(Error::Corrupt("sealed message without a data key"))?,
            },
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    }
}

impl Mail<'_> {
    /// A sealed message's row, whoever asks (for the store's own work: mail
    /// jobs, role choices). What a person may see goes through
    /// [`crate::Mail::authorized`](visibility).
    async fn message_row(&self, id: &MessageId) -> Result<MessageRow> {
        let row = sqlx::query(
            "SELECT sender_id, practice_id, kek_id, wrapped_key, created_at, expires_at FROM messages WHERE id = $1 AND state = $2",
        )
        .bind(id.as_str())
        .bind(MessageState::Sealed.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        MessageRow::from_row(&row)
    }
}
