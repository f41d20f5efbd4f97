//! Conversations and unread counts: which sealed messages belong together
//! (linked when a message is sealed, from the messages it answers), the
//! conversation one reader may see around a message, and how many messages
//! in their inbox they have not read.
//!
//! A conversation holds every message of a thread, but each reader sees only
//! the messages the visibility rule (`visibility.rs`) lets them see: a
//! recipient added late never sees what was said before they were on it, and
//! a Bcc never makes anyone else's view larger.

use std::collections::HashSet;

use sqlx::Row;

use super::MessageView;
use super::visibility::{recipient_sees, sender_sees};
use crate::accounts::User;
use crate::ids::MessageId;
use crate::threads::{MAX_LOOKUP_IDS, msg_id_hash, parse_msg_ids};
use crate::{Error, Mail, Result};

/// At most this many messages of a conversation are shown: the newest ones.
pub const MAX_CONVERSATION: i64 = 50;

/// The msg-ids a message answers, from its raw `In-Reply-To` and `References`
/// values, without repeats; when there are too many, the first (the
/// conversation's start, the direct parent) and the newest.
fn answered_ids(replies_to: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in replies_to.iter().flat_map(|value| parse_msg_ids(value)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_LOOKUP_IDS {
        let tail = ids.split_off(ids.len() - MAX_LOOKUP_IDS / 2);
        ids.truncate(MAX_LOOKUP_IDS / 2);
        ids.extend(tail);
    }
    ids
}

/// Files a message being sealed under its conversation, inside its
/// transaction: the conversation of the newest earlier message it answers
/// (`thread`, the message a reply was made secure by, or any named in
/// `replies_to`); a message that answers none starts its own.
pub(crate) async fn link(
    tx: &mut crate::write_tx::WriteTx,
    id: &MessageId,
    thread: Option<&MessageId>,
    replies_to: &[String],
) -> Result<()> {
    let mut newest: Option<(i64, String)> = None;
    let mut consider = |row: &sqlx::any::AnyRow| -> Result<()> {
        let found: (i64, String) = (row.try_get("created_at")?, row.try_get("conversation")?);
        if newest.as_ref().is_none_or(|n| found.0 > n.0) {
            newest = Some(found);
        }
        Ok(())
    };
    if let Some(thread) = thread {
        let row = sqlx::query(
            "SELECT created_at, COALESCE(conversation_id, id) AS conversation FROM messages WHERE id = $1 AND id <> $2",
        )
        .bind(thread.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = row {
            consider(&row)?;
        }
    }
    for answered in answered_ids(replies_to) {
        let rows = sqlx::query(
            "SELECT m.created_at, COALESCE(m.conversation_id, m.id) AS conversation
             FROM thread_ids t JOIN messages m ON m.id = t.message_id WHERE t.hash = $1 AND m.id <> $2",
        )
        .bind(msg_id_hash(&answered))
        .bind(id.as_str())
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            consider(row)?;
        }
    }
    if let Some((_, conversation)) = newest {
        sqlx::query("UPDATE messages SET conversation_id = $1 WHERE id = $2")
            .bind(conversation)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Mail<'_> {
    /// The ids of the messages of `id`'s conversation that `user` may see,
    /// oldest first (at most the [`MAX_CONVERSATION`] newest, and always `id`).
    /// A message `user` may not see is [`Error::NotFound`].
    pub async fn conversation_ids(&self, user: &User, id: &MessageId) -> Result<Vec<MessageId>> {
        self.authorized(user, id).await?;
        let conversation: String = sqlx::query("SELECT COALESCE(conversation_id, id) AS c FROM messages WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&self.db)
            .await?
            .try_get("c")?;
        let rows = sqlx::query(concat!(
            "SELECT m.id FROM messages m WHERE (m.conversation_id = $3 OR m.id = $3) AND ((",
            sender_sees!(),
            ") OR EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND ",
            recipient_sees!(),
            ")) ORDER BY m.created_at DESC, m.id DESC LIMIT $4"
        ))
        .bind(user.id.0)
        .bind(self.now())
        .bind(&conversation)
        .bind(MAX_CONVERSATION)
        .fetch_all(&self.db)
        .await?;
        let mut ids = rows
            .iter()
            .map(|row| MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id")))
            .collect::<Result<Vec<_>>>()?;
        if !ids.contains(id) {
            ids.push(id.clone());
        }
        ids.reverse();
        Ok(ids)
    }

    /// Opens every message of `id`'s conversation that `user` may see, oldest
    /// first: each is marked read for a recipient and its view audited, as
    /// [`Mail::open_message`] does for one.
    pub async fn open_conversation(&self, user: &User, id: &MessageId, client: &str) -> Result<Vec<MessageView>> {
        let ids = self.conversation_ids(user, id).await?;
        let mut seen = HashSet::new();
        let mut views = Vec::with_capacity(ids.len());
        for message in ids {
            if !seen.insert(message.clone()) {
                continue;
            }
            match self.open_message(user, &message, client).await {
                Ok(view) => views.push(view),
                // Expired or deleted between the two queries: not shown.
                Err(Error::NotFound) if &message != id => {}
                Err(error) => return Err(error),
            }
        }
        Ok(views)
    }

    /// How many messages in `user`'s inbox they have not opened yet.
    pub async fn unread_count(&self, user: &User) -> Result<i64> {
        let row = sqlx::query(concat!(
            "SELECT COUNT(*) AS unread FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE r.read_at IS NULL AND ",
            recipient_sees!()
        ))
        .bind(user.id.0)
        .bind(self.now())
        .fetch_one(&self.db)
        .await?;
        Ok(row.try_get("unread")?)
    }
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
