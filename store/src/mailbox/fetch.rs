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
use crate::{Error, Mail, Result};

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
            .open_piece(id, &message.key, crate::layout::MessageBlob::Visible)
            .await
        {
            Err(Error::NotFound) => {
                self.blobs
                    .open_piece(id, &message.key, crate::layout::MessageBlob::Original)
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

#[cfg(test)]
mod tests {
    use crate::accounts::User;
    use crate::audit::AuditEvent;
    use crate::crypto::DataKey;
    use crate::ids::{MessageId, UserId};

    use super::KeyCache;

    /// Many events in one `audit_all` (more than one multi-row insert) chain
    /// exactly as one `audit` each would: the whole log verifies.
    #[tokio::test]
    async fn a_batch_of_audit_entries_chains_like_single_ones() {
        let (_dir, store, _clock) = crate::testing::store().await;
        store
            .audit(AuditEvent {
                actor: "system",
                action: "test.first",
                object: "-",
                client: "-",
            })
            .await
            .unwrap();
        let objects: Vec<String> = (0..250).map(|i| format!("message:{i}")).collect();
        let events: Vec<AuditEvent<'_>> = objects
            .iter()
            .map(|object| AuditEvent {
                actor: "user:1",
                action: "message.view",
                object,
                client: "imap:127.0.0.1",
            })
            .collect();
        store.audit_all(&events).await.unwrap();
        store.audit_all(&[]).await.unwrap();
        store
            .audit(AuditEvent {
                actor: "system",
                action: "test.last",
                object: "-",
                client: "-",
            })
            .await
            .unwrap();
        assert_eq!(store.audit_log().verify_audit().await.unwrap(), Ok(252));
    }

    async fn user(store: &crate::Store, email: &str) -> User {
        let id: i64 = sqlx::Row::get(
            &sqlx::query(
                "INSERT INTO users (email, role, practice_id, paid, status, created_at)
                 VALUES ($1, 'doctor', 1, 1, 'active', 0) RETURNING id",
            )
            .bind(email)
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        );
        store.accounts().user(UserId(id)).await.unwrap()
    }

    /// Nobody reads what they may not see: a stranger's ids are not in the
    /// answer and cost no key; the sender's key is cached, and dropped from
    /// the cache once the message expires.
    #[tokio::test]
    async fn readable_answers_only_for_visible_messages() {
        let (_dir, store, _clock) = crate::testing::store().await;
        sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'P', 'p.example', 0)")
            .execute(&store.db)
            .await
            .unwrap();
        let sender = user(&store, "doc@p.example").await;
        let stranger = user(&store, "other@x.example").await;
        let wrapped = store.keys.wrap(&DataKey::generate());
        let id = MessageId::generate();
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, size, state, created_at, expires_at)
             VALUES ($1, $2, 1, $3, $4, 10, 'sealed', $5, $6)",
        )
        .bind(id.as_str())
        .bind(sender.id.0)
        .bind(&wrapped.kek_id)
        .bind(&wrapped.wrapped)
        .bind(crate::testing::START - 100)
        .bind(crate::testing::START + 86_400)
        .execute(&store.db)
        .await
        .unwrap();
        let ids = vec![id.clone(), MessageId::generate()];
        let mut keys = KeyCache::default();
        let readable = store.mail().mailbox_readable(&stranger, &ids, &mut keys).await.unwrap();
        assert!(readable.is_empty() && keys.keys.is_empty());
        let readable = store.mail().mailbox_readable(&sender, &ids, &mut keys).await.unwrap();
        assert_eq!(readable.keys().collect::<Vec<_>>(), [&id]);
        assert!(keys.keys.contains_key(&id));
        sqlx::query("UPDATE messages SET expires_at = $1 WHERE id = $2")
            .bind(crate::testing::START - 1)
            .bind(id.as_str())
            .execute(&store.db)
            .await
            .unwrap();
        let readable = store.mail().mailbox_readable(&sender, &ids, &mut keys).await.unwrap();
        assert!(readable.is_empty() && keys.keys.is_empty());
    }
}
