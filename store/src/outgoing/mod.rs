//! Messages written in the portal: a draft (To, Cc, Bcc, the notification
//! note, the secure subject and body, staged uploads or a forward's
//! attachments) becomes a MIME message in the inbound spool, recorded exactly
//! as the SMTP relay records one (`record_spooled`; a reply through
//! `accept_thread_reply`), so sealing, threading, the Sent folder, IMAP and
//! notifications are the same code for both. The message threads the way an
//! Outlook reply does: its own Message-ID, `In-Reply-To` and `References`
//! (`prefill.rs`). Who may write to whom is `rules.rs`; the MIME writing,
//! streamed, `mime.rs`.

mod mime;
mod prefill;
mod rules;

use crate::accounts::{Relationship, User, normalize_email};
use crate::audit::AuditEvent;
use crate::ids::MessageId;
use crate::threads::normalize_msg_id;
use crate::uploads::OutgoingAttachment;
use crate::{Error, Mail, Result, Sealed};

pub use prefill::{Answer, Prefill};
pub use rules::DraftProblem;
use rules::Route;

/// The most recipients (To, Cc and Bcc together) of one message.
pub const MAX_RECIPIENTS: usize = 100;
/// The longest secure body accepted from the form, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;
/// The longest notification note, in characters (it is a line in an email).
pub const MAX_NOTE: usize = 500;

/// A message as written in the portal.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// Relationships for new addresses, from the form's role question.
    pub roles: Vec<(String, Relationship)>,
    /// The notification note: goes by ordinary email, so never PHI.
    pub note: String,
    pub subject: Sealed<String>,
    pub body: Sealed<String>,
    /// The message this replies to (reply or reply all).
    pub reply_to: Option<MessageId>,
    /// The message this forwards, whose attachments go along.
    pub forward_of: Option<MessageId>,
}

/// Lower-cased, checked and without repeats; an address that is not one is
/// named in the error.
fn clean_addresses(lists: [&[String]; 3]) -> Result<[Vec<String>; 3]> {
    let mut seen: Vec<String> = Vec::new();
    let mut out: [Vec<String>; 3] = Default::default();
    for (list, into) in lists.into_iter().zip(out.iter_mut()) {
        for raw in list {
            if raw.trim().is_empty() {
                continue;
            }
            let address = normalize_email(raw)
                .map_err(|_| Error::invalid(format!("“{}” is not a valid email address.", raw.trim())))?;
            if !seen.contains(&address) {
                seen.push(address.clone());
                into.push(address);
            }
        }
    }
    if seen.len() > MAX_RECIPIENTS {
        return Err(Error::invalid(format!(
            "A message can go to at most {MAX_RECIPIENTS} people."
        )));
    }
    Ok(out)
}

impl Draft {
    /// Everyone it goes to: To, Cc, then Bcc, checked and without repeats.
    pub fn recipients(&self) -> Result<Vec<String>> {
        Ok(clean_addresses([&self.to, &self.cc, &self.bcc])?.concat())
    }

    fn check_sizes(&self) -> Result<()> {
        if self.body.expose().len() > MAX_BODY {
            return Err(Error::invalid("The message is too long to send from the portal; attach it as a file."));
        }
        if self.note.chars().count() > MAX_NOTE {
            return Err(Error::invalid(format!(
                "The notification note can be at most {MAX_NOTE} characters."
            )));
        }
        if self.reply_to.is_some() && self.forward_of.is_some() {
            return Err(Error::invalid("A message can be a reply or a forward, not both."));
        }
        Ok(())
    }
}

impl Mail<'_> {
    /// Whether `sender` may send `draft` as it is; `Ok(Err(_))` says what the
    /// form must ask or explain. A reply or forward of a message `sender` may
    /// not see is `NotFound`.
    pub async fn check_draft(&self, sender: &User, draft: &Draft) -> Result<std::result::Result<(), DraftProblem>> {
        Ok(self.route(sender, draft).await?.map(|_| ()))
    }

    async fn route(&self, sender: &User, draft: &Draft) -> Result<std::result::Result<Route, DraftProblem>> {
        draft.check_sizes()?;
        let recipients = draft.recipients()?;
        if recipients.is_empty() {
            return Ok(Err(DraftProblem::NoRecipients));
        }
        if let Some(id) = &draft.forward_of {
            self.authorized(sender, id).await?;
        }
        let Some(parent) = &draft.reply_to else {
            return self.new_route(sender, &recipients, &draft.roles).await;
        };
        self.authorized(sender, parent).await?;
        // The conversation as the relay would find it from the reply's
        // headers; a parent without a Message-ID is its own conversation.
        let ids = self.reply_ids(sender, parent).await?;
        let normalized: Vec<String> = ids.references.iter().rev().filter_map(|i| normalize_msg_id(i)).collect();
        let thread = match self.find_thread(&normalized).await? {
            Some(thread) => thread,
            None => self.thread_of(parent).await?,
        };
        self.reply_route(sender, thread, &recipients, &draft.roles).await
    }

    /// Sends `draft` from `sender` with `uploads` (staged files, opened): the
    /// message is written to the spool, streamed, and recorded for sealing.
    /// `host` names the portal in the Message-ID. Returns the new message's
    /// id, or what must change first (nothing is spooled then).
    pub async fn send_draft(
        &self,
        sender: &User,
        draft: &Draft,
        uploads: Vec<OutgoingAttachment>,
        host: &str,
        client: &str,
    ) -> Result<std::result::Result<MessageId, DraftProblem>> {
        let route = match self.route(sender, draft).await? {
            Ok(route) => route,
            Err(problem) => return Ok(Err(problem)),
        };
        let [to, cc, _] = clean_addresses([&draft.to, &draft.cc, &draft.bcc])?;
        let recipients = draft.recipients()?;
        let mut attachments = uploads;
        if let Some(id) = &draft.forward_of {
            let count = self.message_meta_unchecked(id).await?.attachments.len();
            for index in 0..count {
                let (meta, body) = self.open_attachment(sender, id, index, client).await?;
                attachments.push(OutgoingAttachment {
                    file_name: meta.name,
                    content_type: meta.content_type,
                    size: meta.size,
                    body,
                });
            }
        }
        let files: Vec<(String, u64)> = attachments.iter().map(|a| (a.file_name.clone(), a.size)).collect();
        self.uploads().check_outgoing(sender, &recipients, &files).await?;
        let reply_ids = match &draft.reply_to {
            Some(parent) => self.reply_ids(sender, parent).await?,
            None => prefill::ReplyIds::default(),
        };
        let roles: Vec<(String, &'static str)> = draft
            .roles
            .iter()
            .filter(|(a, _)| recipients.contains(a))
            .map(|(a, r)| (a.clone(), r.as_str()))
            .collect();

        let mut spool = self.queue().spool_writer().await?;
        let message_id = format!("{}@{}", spool.id(), host);
        let boundary = format!("=_sealpost_{}", crate::crypto::random_hex(12));
        let head = mime::header_block(
            &mime::Headers {
                from_name: &sender.full_name,
                from: &sender.email,
                to: &to,
                cc: &cc,
                subject: draft.subject.expose(),
                date: self.now(),
                message_id: &message_id,
                in_reply_to: reply_ids.in_reply_to.as_deref(),
                references: &reply_ids.references,
                note: Some(draft.note.as_str()),
                roles: &roles,
            },
            &boundary,
        );
        let written = async {
            spool.write(&head).await?;
            spool.write(&mime::text_part(&boundary, draft.body.expose())).await?;
            for attachment in attachments {
                mime::write_attachment(&mut spool, &boundary, attachment).await?;
            }
            spool.write(&mime::closing(&boundary)).await
        }
        .await;
        if let Err(error) = written {
            spool.discard().await;
            return Err(error);
        }
        let spooled = spool.finish().await?;
        let recorded = match &route {
            Route::Thread(thread) => {
                self.accept_thread_reply(&spooled, &sender.email, &recipients, sender.id, &thread.message)
                    .await
            }
            Route::New => {
                self.queue()
                    .accept_secure(&spooled, &sender.email, &recipients, sender.id)
                    .await
            }
            Route::Invited(anchor) => {
                self.queue()
                    .record_spooled(&spooled, &sender.email, &recipients, sender.id, Some(anchor))
                    .await
            }
        };
        let id = spooled.id.clone();
        if let Err(error) = recorded {
            spooled.discard().await;
            return Err(error);
        }
        self.audit(AuditEvent {
            actor: &format!("user:{}", sender.id),
            action: "message.send",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        Ok(Ok(id))
    }
}
