//! What one IMAP FETCH command needs from the store, in as few round trips as
//! it can: one query that checks which of the asked-for messages the user may
//! still see (the visibility rule, `messages/visibility.rs`) and returns their
//! wrapped data keys; the keys unwrapped once per message per session
//! ([`KeyCache`]); the views of the whole command audited in one transaction;
//! `\Seen` for the whole command set in one transaction; and the recipients'
//! copy opened with an already unwrapped key.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::crypto::{DataKey, WrappedKey};
use crate::ids::MessageId;
use crate::messages::visibility::{recipient_sees, sender_sees};
use crate::{Error, Mail, Result, ingest};

use super::{Flags, MailboxName};

/// Ids per query (well under every dialect's limit on bound parameters).
const IDS_PER_QUERY: usize = 400;
/// Keys one session keeps; past this the cache starts over (a mailbox this
/// large is listed in pieces by any client anyway).
const MAX_CACHED_KEYS: usize = 20_000;

/// Data keys a session has unwrapped, by message. Holding a key here grants
/// nothing by itself: every command first asks [`Mail::mailbox_readable`],
/// which checks visibility again; only messages that pass are opened.
#[derive(Default)]
pub struct KeyCache {
    keys: HashMap<MessageId, Arc<DataKey>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache({} keys)", self.keys.len())
    }
}

/// A message the user may see as of this command, ready to be opened.
#[derive(Clone)]
pub struct Readable {
    id: MessageId,
    key: Arc<DataKey>,
}

impl std::fmt::Debug for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readable({})", self.id)
    }
}

impl Readable {
    pub fn id(&self) -> &MessageId {
        &self.id
    }
}

impl Mail<'_> {
    /// Which of `ids` `user` may see now, each with its data key (unwrapped
    /// once per session: `keys` keeps them). Messages gone or hidden meanwhile
    /// are simply absent from the answer.
    pub async fn mailbox_readable(
        &self,
        user: &User,
        ids: &[MessageId],
        keys: &mut KeyCache,
    ) -> Result<HashMap<MessageId, Readable>> {
        let now = self.now();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                concat!(
                    "SELECT m.id, m.kek_id, m.wrapped_key FROM messages m WHERE m.id IN ({}) AND ((",
                    sender_sees!(),
                    ") OR EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND ",
                    recipient_sees!(),
                    "))"
                ),
                placeholders.join(", ")
            );
            // Only numbered placeholders are formatted in; the ids are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.id.0).bind(now);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.db).await? {
                let id = MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id"))?;
                let key = match keys.keys.get(&id) {
                    Some(key) => Arc::clone(key),
                    None => {
                        let wrapped = WrappedKey {
                            kek_id: row.try_get("kek_id")?,
                            wrapped: row
                                .try_get::<Option<Vec<u8>>, _>("wrapped_key")?
                                .ok_or(Error::Corrupt("sealed message without a data key"))?,
                        };
                        let key = Arc::new(self.keys.unwrap(&wrapped)?);
                        if keys.keys.len() >= MAX_CACHED_KEYS {
                            keys.keys.clear();
                        }
                        keys.keys.insert(id.clone(), Arc::clone(&key));
                        key
                    }
                };
                out.insert(id.clone(), Readable { id, key });
            }
        }
        // A key cached for a message no longer visible is dropped with it.
        for id in ids {
            if !out.contains_key(id) {
                keys.keys.remove(id);
            }
        }
        Ok(out)
    }

    /// Streams the recipients' copy of a message (as
    /// [`open_original`](Mail::open_original), with the key already unwrapped;
    /// not audited: the caller audits the command's views with
    /// [`mailbox_audit_views`](Mail::mailbox_audit_views)).
    pub async fn mailbox_open(&self, message: &Readable) -> Result<BoxStream<'static, Result<Bytes>>> {
        let id = &message.id;
        match self
            .blobs
            .open(
                &crate::layout::MessageBlob::Visible.key(id),
                &message.key,
                crate::layout::BLOB_VISIBLE,
            )
            .await
        {
            Err(Error::NotFound) => {
                self.blobs
                    .open(
                        &crate::layout::MessageBlob::Original.key(id),
                        &message.key,
                        ingest::BLOB_ORIGINAL,
                    )
                    .await
            }
            other => other,
        }
    }

    /// Appends one `message.view` per message to the audit log, all in one
    /// transaction.
    pub async fn mailbox_audit_views(&self, user: &User, ids: &[&MessageId], client: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let actor = format!("user:{}", user.id);
        let objects: Vec<String> = ids.iter().map(|id| format!("message:{id}")).collect();
        let events: Vec<AuditEvent<'_>> = objects
            .iter()
            .map(|object| AuditEvent {
                actor: &actor,
                action: "message.view",
                object,
                client,
            })
            .collect();
        self.audit_all(&events).await
    }

    /// Sets `\Seen` on messages of `mailbox` (the portal's read state in
    /// INBOX), all in one transaction.
    pub async fn mailbox_set_seen(&self, user: &User, mailbox: MailboxName, ids: &[&MessageId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.write_tx().await?;
        for id in ids {
            if mailbox == MailboxName::Inbox {
                sqlx::query(
                    "UPDATE message_recipients SET read_at = COALESCE(read_at, $1) WHERE message_id = $2 AND user_id = $3",
                )
                .bind(now)
                .bind(id.as_str())
                .bind(user.id.0)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE imap_messages SET flags = flags | $1 WHERE user_id = $2 AND mailbox = $3 AND message_id = $4",
                )
                .bind(Flags::SEEN)
                .bind(user.id.0)
                .bind(mailbox.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
