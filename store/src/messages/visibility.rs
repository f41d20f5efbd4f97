//! Who may see a sealed message: the one definition of the rule, written once
//! as SQL every list, mailbox and read query is built from, and the check one
//! message passes before anything of it is shown.
//!
//! - Its **sender** sees it while it is sealed and not expired.
//! - A **recipient** sees it while it is sealed and not expired, once the
//!   sender has chosen their role (no longer `awaiting_role`), unless they hid
//!   it (IMAP expunge from INBOX).
//!
//! Anyone else, and everyone once it expires or is deleted, gets
//! [`Error::NotFound`], as if it did not exist (DESIGN.md: a stranger learns
//! nothing). Expiry and hiding take effect at once, not at the next purge.
//!
//! What a visible message *shows* a recipient (its header fields without Bcc
//! and `X-Sealpost-*`) is `crate::visible`'s rule.

use crate::accounts::User;
use crate::ids::MessageId;
use crate::{Error, Mail, Result};

use super::MessageRow;

/// SQL condition: user `$1` may see, at time `$2` (Unix seconds), message `m`
/// through their recipient row `r`. Used with `concat!` so queries stay
/// `&'static str`; the state texts are [`RecipientState::AwaitingRole`] and
/// [`MessageState::Sealed`] (checked by the tests below).
///
/// [`RecipientState::AwaitingRole`]: crate::states::RecipientState::AwaitingRole
/// [`MessageState::Sealed`]: crate::states::MessageState::Sealed
macro_rules! recipient_sees {
    () => {
        "r.user_id = $1 AND r.state <> 'awaiting_role' AND r.hidden_at IS NULL AND m.state = 'sealed' AND m.expires_at > $2"
    };
}
pub(crate) use recipient_sees;

/// SQL condition: user `$1` sent message `m` and may see it at time `$2`.
macro_rules! sender_sees {
    () => {
        "m.sender_id = $1 AND m.state = 'sealed' AND m.expires_at > $2"
    };
}
pub(crate) use sender_sees;

impl Mail<'_> {
    /// The message row, and whether `user` sent it, if `user` may see it (the
    /// rule above); anyone else gets [`Error::NotFound`].
    pub(crate) async fn authorized(&self, user: &User, id: &MessageId) -> Result<(MessageRow, bool)> {
        let row = sqlx::query(concat!(
            "SELECT m.sender_id, m.practice_id, m.kek_id, m.wrapped_key, m.created_at, m.expires_at
             FROM messages m WHERE m.id = $3 AND ((",
            sender_sees!(),
            ") OR EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND ",
            recipient_sees!(),
            "))"
        ))
        .bind(user.id.0)
        .bind(self.now())
        .bind(id.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let row = MessageRow::from_row(&row)?;
        let is_sender = row.sender_id == user.id;
        Ok((row, is_sender))
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::{MessageId, UserId};
    use crate::mailbox::MailboxName;
    use crate::states::{MessageState, RecipientState};
    use crate::{Error, Store};

    const NOW: i64 = crate::testing::START;

    async fn user(store: &Store, email: &str, practice: i64) -> crate::accounts::User {
        let id: i64 = sqlx::Row::get(
            &sqlx::query(
                "INSERT INTO users (email, role, practice_id, paid, status, created_at)
                 VALUES ($1, 'doctor', $2, 1, 'active', 0) RETURNING id",
            )
            .bind(email)
            .bind(practice)
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        );
        store.accounts().user(UserId(id)).await.unwrap()
    }

    /// A message from `sender` to `recipient` in the given states.
    async fn message(
        store: &Store,
        sender: UserId,
        recipient: UserId,
        state: MessageState,
        expires_in: i64,
        recipient_state: RecipientState,
        hidden: bool,
    ) -> MessageId {
        let id = MessageId::generate();
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, size, state, created_at, expires_at)
             VALUES ($1, $2, 1, 'no-such-kek', $3, 10, $4, $5, $6)",
        )
        .bind(id.as_str())
        .bind(sender.0)
        .bind((state == MessageState::Sealed).then(|| vec![1u8; 8]))
        .bind(state.as_str())
        .bind(NOW - 100)
        .bind(NOW + expires_in)
        .execute(&store.db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO message_recipients (message_id, user_id, state, hidden_at) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(recipient.0)
            .bind(recipient_state.as_str())
            .bind(hidden.then_some(NOW - 1))
            .execute(&store.db)
            .await
            .unwrap();
        id
    }

    #[test]
    fn the_sql_rule_names_the_stored_states() {
        let sealed = format!("m.state = '{}'", MessageState::Sealed.as_str());
        assert!(recipient_sees!().contains(&sealed));
        assert!(sender_sees!().contains(&sealed));
        assert!(recipient_sees!().contains(&format!("r.state <> '{}'", RecipientState::AwaitingRole.as_str())));
    }

    #[tokio::test]
    async fn each_condition_hides_a_message_everywhere_it_is_listed_or_opened() {
        let (_dir, store, clock) = crate::testing::store().await;
        sqlx::query("INSERT INTO practices (id, name, domain, created_at) VALUES (1, 'P', 'p.example', 0)")
            .execute(&store.db)
            .await
            .unwrap();
        let sender = user(&store, "doc@p.example", 1).await;
        let recipient = user(&store, "pat@x.example", 1).await;
        let stranger = user(&store, "other@x.example", 1).await;
        let day = 86_400;
        let (sealed, notify) = (MessageState::Sealed, RecipientState::Notify);
        let visible = message(&store, sender.id, recipient.id, sealed, day, notify, false).await;
        let expired = message(&store, sender.id, recipient.id, sealed, 0, notify, false).await;
        let deleted = message(
            &store,
            sender.id,
            recipient.id,
            MessageState::Deleted,
            day,
            notify,
            false,
        )
        .await;
        let awaiting = message(
            &store,
            sender.id,
            recipient.id,
            sealed,
            day,
            RecipientState::AwaitingRole,
            false,
        )
        .await;
        let hidden = message(&store, sender.id, recipient.id, sealed, day, notify, true).await;
        let all = [&visible, &expired, &deleted, &awaiting, &hidden];

        // Opening one message.
        for id in all {
            let seen = store.mail().authorized(&recipient, id).await;
            assert_eq!(seen.is_ok(), id == &visible, "recipient, {id}");
            if id != &visible {
                assert!(matches!(seen, Err(Error::NotFound)));
            }
            let seen = store
                .mail()
                .authorized(&sender, id)
                .await
                .map(|(_, is_sender)| is_sender);
            assert_eq!(
                seen.ok(),
                [&visible, &awaiting, &hidden].contains(&id).then_some(true),
                "sender, {id}"
            );
            assert!(matches!(
                store.mail().authorized(&stranger, id).await,
                Err(Error::NotFound)
            ));
        }

        // Lists: the portal's inbox and sent list, IMAP's INBOX and Sent.
        let ids = |list: Vec<crate::messages::MessageSummary>| {
            let mut ids: Vec<String> = list.into_iter().map(|m| m.id.to_string()).collect();
            ids.sort();
            ids
        };
        let sorted = |ids: &[&MessageId]| {
            let mut ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(store.mail().inbox(&recipient, 50).await.unwrap()),
            sorted(&[&visible])
        );
        assert_eq!(
            ids(store.mail().sent(&sender, 50).await.unwrap()),
            sorted(&[&visible, &awaiting, &hidden])
        );
        assert!(store.mail().inbox(&stranger, 50).await.unwrap().is_empty());
        let mailbox = |user, name| {
            let store = store.clone();
            async move {
                let (_, entries) = store.mail().mailbox_sync(&user, name).await.unwrap();
                let mut ids: Vec<String> = entries.into_iter().map(|e| e.id.to_string()).collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(
            mailbox(recipient.clone(), MailboxName::Inbox).await,
            sorted(&[&visible])
        );
        assert_eq!(
            mailbox(sender.clone(), MailboxName::Sent).await,
            sorted(&[&visible, &awaiting, &hidden])
        );

        // Expiry takes effect at once, before any purge: in the lists IMAP
        // already numbered as in new ones.
        clock.advance(day);
        assert!(store.mail().inbox(&recipient, 50).await.unwrap().is_empty());
        assert!(store.mail().sent(&sender, 50).await.unwrap().is_empty());
        assert!(mailbox(recipient.clone(), MailboxName::Inbox).await.is_empty());
        assert!(mailbox(sender.clone(), MailboxName::Sent).await.is_empty());
        assert!(matches!(
            store.mail().authorized(&recipient, &visible).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            store.mail().authorized(&sender, &visible).await,
            Err(Error::NotFound)
        ));
    }
}
