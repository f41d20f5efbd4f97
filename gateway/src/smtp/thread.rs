//! Replies in a secure conversation. A message without the secure marker whose
//! `In-Reply-To` or `References` names a sealed message is a reply to it, and a
//! reply usually quotes what it answers: it is sealed like a marked message when
//! its sender and recipients take part in the conversation, and otherwise
//! refused with 550 5.7.1. It is never passed on in clear: nothing sealed leaks
//! because someone pressed Reply in a mail client without the add-in.
//!
//! Who may reply: any participant (the sender or a notified recipient of a
//! message the reply names, Bcc included), with no role question; free
//! accounts too (DESIGN.md, "free accounts may reply"), but only to the people
//! shown on those messages (their senders, To and Cc: never a Bcc). Writing to
//! anyone else in the same reply needs an account that may send secure mail
//! anyway (a paid practice user); the usual role rules then apply to the new
//! recipients.

use store::accounts::User;
use store::threads::{Thread, reply_references};

use super::reply::{Reply, common};
use super::session::Session;

impl Session {
    /// The secure conversation an unmarked message replies to, if any.
    pub(super) async fn secure_thread(&self, header_block: &[u8]) -> Result<Option<Thread>, Reply> {
        let ids = reply_references(header_block);
        if ids.is_empty() {
            return Ok(None);
        }
        self.server.store.mail().find_thread(&ids).await.map_err(|error| {
            tracing::error!(%error, "cannot look up the conversation of a reply");
            common::temporary_failure()
        })
    }

    /// The sender of a reply in `thread`, if they and every recipient may take
    /// part; else the refusal to send.
    pub(super) async fn thread_sender(
        &self,
        from: Option<&str>,
        mail_from: &str,
        thread: &Thread,
    ) -> Result<User, Reply> {
        let address = from.unwrap_or(mail_from).to_ascii_lowercase();
        let relay_account = self.relay_account_allows(&[&address, mail_from]).await?;
        if let Some(user) = &self.user
            && !relay_account
            && address != user.email
        {
            return Err(refuse(&format!(
                "this replies to a secure conversation, and the From address {address} is not yours ({})",
                user.email
            )));
        }
        let sender = match self.server.store.accounts().user_by_email(&address).await {
            Ok(Some(user)) if thread.is_participant(&user.email) => user,
            Ok(_) => {
                return Err(refuse(&format!(
                    "this replies to a secure conversation that {address} is not part of, so it can be \
                     neither sealed nor sent in clear; to send it securely, mark it secure"
                )));
            }
            Err(error) => {
                tracing::error!(%error, "cannot look up the sender of a reply");
                return Err(common::temporary_failure());
            }
        };
        if let Some(outsider) = thread.refused_recipient(&sender, &self.tx.rcpt_to) {
            return Err(refuse(&format!(
                "{outsider} is not on the secure message this answers, and {address} may reply only to the \
                 people shown on it (sender, To, Cc)"
            )));
        }
        Ok(sender)
    }
}

fn refuse(why: &str) -> Reply {
    Reply::new(550, "5.7.1", format!("Secure reply refused: {why}"))
}
