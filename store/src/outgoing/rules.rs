//! Who may write to whom from the portal, the rule the relay applies to
//! replies (`gateway/src/smtp/thread.rs`) and marked mail, for one draft:
//!
//! - A **reply** belongs to the conversation its `In-Reply-To`/`References`
//!   name. Any participant may reply; a free account only to the people shown
//!   on those messages (sender, To, Cc — never a Bcc).
//! - A **new message** (or a forward) from an account that may send secure
//!   mail goes to anyone; new addresses need their relationship role.
//! - A free account writes new messages only to the doctors and staff of the
//!   practice that invited it (its own practice, or one that has it as a
//!   contact); the message is filed under that practice.

use sqlx::Row;

use crate::accounts::{Relationship, User};
use crate::ids::{MessageId, PracticeId};
use crate::threads::Thread;
use crate::{Mail, Result};

/// Why a draft can't be sent as it is, in words for its writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftProblem {
    /// Nobody to send it to.
    NoRecipients,
    /// These new addresses need their relationship chosen first.
    NeedsRoles(Vec<String>),
    /// A free account may not write to `address`; `practices` are the
    /// practices it may write to (names), for the page that explains it.
    FreeAccount { address: String, practices: Vec<String> },
}

/// How a checked draft enters the spool.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// A reply in this conversation (its newest message named).
    Thread(Thread),
    /// A new conversation filed under the sender's practice.
    New,
    /// A free account's new message to the practice that invited it, filed
    /// under that practice through its newest message with the sender.
    Invited(MessageId),
}

impl Mail<'_> {
    /// The route of a reply in `thread`, or why `sender` may not send it to
    /// `recipients`. `roles` are the relationships the draft gives new addresses.
    pub(crate) async fn reply_route(
        &self,
        sender: &User,
        thread: Thread,
        recipients: &[String],
        roles: &[(String, Relationship)],
    ) -> Result<std::result::Result<Route, DraftProblem>> {
        if sender.may_send_secure().is_err() {
            if let Some(outsider) = recipients.iter().find(|r| !thread.is_visible(r)) {
                return Ok(Err(DraftProblem::FreeAccount {
                    address: outsider.clone(),
                    practices: self.invited_by(sender).await?.into_iter().map(|(_, n)| n).collect(),
                }));
            }
            return Ok(Ok(Route::Thread(thread)));
        }
        let strangers: Vec<String> = recipients.iter().filter(|r| !thread.is_participant(r)).cloned().collect();
        let missing = self.missing_roles(sender, &strangers, roles).await?;
        if !missing.is_empty() {
            return Ok(Err(DraftProblem::NeedsRoles(missing)));
        }
        Ok(Ok(Route::Thread(thread)))
    }

    /// The route of a new message (or a forward), or why not.
    pub(crate) async fn new_route(
        &self,
        sender: &User,
        recipients: &[String],
        roles: &[(String, Relationship)],
    ) -> Result<std::result::Result<Route, DraftProblem>> {
        if sender.may_send_secure().is_ok() {
            let missing = self.missing_roles(sender, recipients, roles).await?;
            if !missing.is_empty() {
                return Ok(Err(DraftProblem::NeedsRoles(missing)));
            }
            return Ok(Ok(Route::New));
        }
        let invited = self.invited_by(sender).await?;
        let refuse = |address: &String| DraftProblem::FreeAccount {
            address: address.clone(),
            practices: invited.iter().map(|(_, n)| n.clone()).collect(),
        };
        let mut practice: Option<PracticeId> = None;
        for address in recipients {
            let row = sqlx::query("SELECT practice_id FROM users WHERE email = $1 AND role IN ('doctor', 'staff')")
                .bind(address)
                .fetch_optional(&self.db)
                .await?;
            let theirs = match row {
                Some(row) => row.try_get::<Option<i64>, _>("practice_id")?.map(PracticeId),
                None => None,
            };
            match theirs {
                Some(p) if invited.iter().any(|(i, _)| *i == p) && practice.is_none_or(|q| q == p) => {
                    practice = Some(p);
                }
                _ => return Ok(Err(refuse(address))),
            }
        }
        let Some(practice) = practice else {
            return Ok(Err(DraftProblem::NoRecipients));
        };
        if sender.practice_id == Some(practice) {
            return Ok(Ok(Route::New));
        }
        match self.newest_with(sender, practice).await? {
            Some(anchor) => Ok(Ok(Route::Invited(anchor))),
            None => Ok(Err(refuse(&recipients[0]))),
        }
    }

    /// Of `addresses`, the ones `sender`'s practice does not know and `roles`
    /// does not describe: sealing would have to ask about them.
    async fn missing_roles(
        &self,
        sender: &User,
        addresses: &[String],
        roles: &[(String, Relationship)],
    ) -> Result<Vec<String>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let known = self.known_contacts(sender, addresses).await?;
        Ok(addresses
            .iter()
            .filter(|a| !known.iter().any(|k| &k.address == *a) && !roles.iter().any(|(r, _)| r == *a))
            .cloned()
            .collect())
    }

    /// The practices a free account may write to, with their names: its own,
    /// and those that have it as a contact (they wrote to it first).
    pub async fn invited_by(&self, user: &User) -> Result<Vec<(PracticeId, String)>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name FROM practices p WHERE p.id = $1
             UNION SELECT p.id, p.name FROM practices p JOIN contacts c ON c.practice_id = p.id WHERE c.user_id = $2
             ORDER BY 2",
        )
        .bind(user.practice_id.map_or(-1, |p| p.0))
        .bind(user.id.0)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| Ok((PracticeId(r.try_get("id")?), r.try_get("name")?)))
            .collect()
    }

    /// The newest message of `practice` that `user` sent or received.
    async fn newest_with(&self, user: &User, practice: PracticeId) -> Result<Option<MessageId>> {
        let row = sqlx::query(
            "SELECT m.id FROM messages m WHERE m.practice_id = $1 AND (m.sender_id = $2 OR EXISTS
               (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND r.user_id = $2))
             ORDER BY m.created_at DESC, m.id LIMIT 1",
        )
        .bind(practice.0)
        .bind(user.id.0)
        .fetch_optional(&self.db)
        .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("id"))
            .transpose()?
            .and_then(|id| MessageId::parse(&id)))
    }
}
