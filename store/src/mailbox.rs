//! Mailboxes for IMAP: per user an INBOX (messages received) and a Sent folder
//! (messages sent), stable UIDs and UIDVALIDITY, flags (`\Seen` in INBOX is the
//! read state the portal shows), expunge under the lifecycle rules, and the
//! decrypted original streamed for FETCH.

use bytes::Bytes;
use futures::stream::BoxStream;
use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::MessageId;
use crate::messages::visibility::{recipient_sees, sender_sees};
use crate::{Error, Mail, Result};

mod fetch;
pub use fetch::{KeyCache, Readable};

/// The two mailboxes every user has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxName {
    Inbox,
    Sent,
}

impl MailboxName {
    /// Mailbox names are case-sensitive except INBOX (RFC 3501 §5.1).
    pub fn parse(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"INBOX") {
            Some(Self::Inbox)
        } else if name == b"Sent" {
            Some(Self::Sent)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "INBOX",
            Self::Sent => "Sent",
        }
    }
}

/// IMAP system flags kept per message and mailbox (bits as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub i64);

impl Flags {
    pub const ANSWERED: i64 = 1;
    pub const FLAGGED: i64 = 2;
    pub const DELETED: i64 = 4;
    pub const DRAFT: i64 = 8;
    pub const SEEN: i64 = 16;

    pub fn has(self, bit: i64) -> bool {
        self.0 & bit != 0
    }
}

/// A mailbox's identity and next UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxInfo {
    pub uid_validity: u32,
    pub uid_next: u32,
}

/// One message as a mailbox lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailEntry {
    pub uid: u32,
    pub id: MessageId,
    /// Exact size of the original message in octets.
    pub size: u64,
    /// When the gateway sealed it (Unix seconds).
    pub internal_date: i64,
    pub flags: Flags,
}

// The mailboxes list what the visibility rule (`messages/visibility.rs`) lets
// their owner see: `$1` the owner, `$2` now.
const INBOX_CANDIDATES: &str = concat!(
    "SELECT m.id FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE ",
    recipient_sees!(),
    " AND NOT EXISTS (SELECT 1 FROM imap_messages i WHERE i.user_id = $1 AND i.mailbox = 'INBOX' AND i.message_id = m.id)
     ORDER BY m.created_at, m.id"
);
const SENT_CANDIDATES: &str = concat!(
    "SELECT m.id FROM messages m WHERE ",
    sender_sees!(),
    " AND NOT EXISTS (SELECT 1 FROM imap_messages i WHERE i.user_id = $1 AND i.mailbox = 'Sent' AND i.message_id = m.id)
     ORDER BY m.created_at, m.id"
);
const INBOX_LIST: &str = concat!(
    "SELECT i.uid, m.id, m.size, m.created_at, i.flags, r.read_at
     FROM imap_messages i JOIN messages m ON m.id = i.message_id
       JOIN message_recipients r ON r.message_id = m.id AND r.user_id = i.user_id
     WHERE i.user_id = $1 AND i.mailbox = 'INBOX' AND ",
    recipient_sees!(),
    " ORDER BY i.uid"
);
const SENT_LIST: &str = concat!(
    "SELECT i.uid, m.id, m.size, m.created_at, i.flags, 0 AS read_at
     FROM imap_messages i JOIN messages m ON m.id = i.message_id
     WHERE i.user_id = $1 AND i.mailbox = 'Sent' AND ",
    sender_sees!(),
    " ORDER BY i.uid"
);

impl Mail<'_> {
    /// Signalled (the counter moves on) whenever a message is sealed, read in
    /// the portal or destroyed, so IMAP IDLE can look again.
    pub fn mail_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.mail_changed.subscribe()
    }

    pub(crate) fn signal_mail(&self) {
        self.mail_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Gives every message new to `mailbox` the next UID (in the order they were
    /// sealed) and lists the mailbox, lowest UID first.
    pub async fn mailbox_sync(&self, user: &User, mailbox: MailboxName) -> Result<(MailboxInfo, Vec<MailEntry>)> {
        let now = self.now();
        let candidates = match mailbox {
            MailboxName::Inbox => INBOX_CANDIDATES,
            MailboxName::Sent => SENT_CANDIDATES,
        };
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT uid_validity, uid_next FROM imap_mailboxes WHERE user_id = $1 AND mailbox = $2")
            .bind(user.id.0)
            .bind(mailbox.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let (uid_validity, mut uid_next) = match row {
            Some(row) => (
                row.try_get::<i64, _>("uid_validity")?,
                row.try_get::<i64, _>("uid_next")?,
            ),
            None => {
                // UIDVALIDITY: the creation time, so a recreated mailbox differs.
                let validity = now.rem_euclid(i64::from(u32::MAX - 1)) + 1;
                sqlx::query(
                    "INSERT INTO imap_mailboxes (user_id, mailbox, uid_validity, uid_next) VALUES ($1, $2, $3, 1)",
                )
                .bind(user.id.0)
                .bind(mailbox.as_str())
                .bind(validity)
                .execute(&mut *tx)
                .await?;
                (validity, 1)
            }
        };
        let new = sqlx::query(candidates)
            .bind(user.id.0)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let first = uid_next;
        for row in &new {
            // A message in Sent was read by its author.
            let flags = if mailbox == MailboxName::Sent { Flags::SEEN } else { 0 };
            sqlx::query(
                "INSERT INTO imap_messages (user_id, mailbox, uid, message_id, flags) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user.id.0)
            .bind(mailbox.as_str())
            .bind(uid_next)
            .bind(row.try_get::<String, _>("id")?)
            .bind(flags)
            .execute(&mut *tx)
            .await?;
            uid_next += 1;
        }
        if uid_next != first {
            sqlx::query("UPDATE imap_mailboxes SET uid_next = $1 WHERE user_id = $2 AND mailbox = $3")
                .bind(uid_next)
                .bind(user.id.0)
                .bind(mailbox.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let list = match mailbox {
            MailboxName::Inbox => INBOX_LIST,
            MailboxName::Sent => SENT_LIST,
        };
        let rows = sqlx::query(list).bind(user.id.0).bind(now).fetch_all(&self.db).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let mut flags = row.try_get::<i64, _>("flags")?;
            if mailbox == MailboxName::Inbox {
                flags &= !Flags::SEEN;
                if row.try_get::<Option<i64>, _>("read_at")?.is_some() {
                    flags |= Flags::SEEN;
                }
            }
            entries.push(MailEntry {
                uid: u32::try_from(row.try_get::<i64, _>("uid")?).map_err(|_| Error::Corrupt("IMAP UID"))?,
                id: MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id"))?,
                size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                internal_date: row.try_get("created_at")?,
                flags: Flags(flags),
            });
        }
        let info = MailboxInfo {
            uid_validity: u32::try_from(uid_validity).unwrap_or(1),
            uid_next: u32::try_from(uid_next).unwrap_or(u32::MAX),
        };
        Ok((info, entries))
    }

    /// Stores a message's flags. In INBOX `\Seen` sets or clears the read state
    /// the portal shows; in Sent it is kept with the other flags.
    pub async fn mailbox_set_flags(
        &self,
        user: &User,
        mailbox: MailboxName,
        id: &MessageId,
        flags: Flags,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let stored = if mailbox == MailboxName::Inbox {
            sqlx::query("UPDATE message_recipients SET read_at = CASE WHEN $1 = 1 THEN COALESCE(read_at, $2) ELSE NULL END WHERE message_id = $3 AND user_id = $4")
                .bind(i64::from(flags.has(Flags::SEEN)))
                .bind(self.now())
                .bind(id.as_str())
                .bind(user.id.0)
                .execute(&mut *tx)
                .await?;
            flags.0 & !Flags::SEEN
        } else {
            flags.0
        };
        sqlx::query("UPDATE imap_messages SET flags = $1 WHERE user_id = $2 AND mailbox = $3 AND message_id = $4")
            .bind(stored)
            .bind(user.id.0)
            .bind(mailbox.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Expunges one message under the lifecycle rules: from Sent, the sender
    /// deletes it for everyone (its data key is destroyed); from INBOX, the
    /// recipient hides it for themselves (portal inbox included).
    pub async fn mailbox_expunge(&self, user: &User, mailbox: MailboxName, id: &MessageId, client: &str) -> Result<()> {
        match mailbox {
            MailboxName::Sent => match self.delete_message(user, id, client).await {
                // Not theirs to delete (or gone already): nothing to expunge.
                Ok(()) | Err(Error::NotFound | Error::Forbidden(_)) => {}
                Err(other) => return Err(other),
            },
            MailboxName::Inbox => self.hide_for(user, id, client).await?,
        }
        self.signal_mail();
        Ok(())
    }

    /// Streams the original message, decrypted, as recipients may see it: without
    /// `X-Sealpost-*` fields or Bcc (`visible.rs`). With `audit` (a view of its
    /// content) the view is appended to the audit log, as the portal does.
    pub async fn open_original(
        &self,
        user: &User,
        id: &MessageId,
        client: &str,
        audit: bool,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (row, _) = self.authorized(user, id).await?;
        let key = self.keys.unwrap(&row.key)?;
        // The recipients' copy (`visible.rs`); a message sealed before there
        // was one has only the original as received.
        let stream = match self
            .blobs
            .open_piece(id, &key, crate::layout::MessageBlob::Visible)
            .await
        {
            Err(Error::NotFound) => {
                self.blobs
                    .open_piece(id, &key, crate::layout::MessageBlob::Original)
                    .await?
            }
            other => other?,
        };
        if audit {
            self.audit(AuditEvent {
                actor: &format!("user:{}", user.id),
                action: "message.view",
                object: &format!("message:{id}"),
                client,
            })
            .await?;
        }
        Ok(stream)
    }
}
