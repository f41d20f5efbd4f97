//! One message of a conversation as the message page shows it: what the
//! notification said, its header fields, its sanitised body, its attachments
//! and, for its sender, who has read it. Times are in the reader's zone.
//! Its countdown, and what its sender sees of each recipient (read receipts),
//! are added by [`MessageBlock::lifecycle`].

use store::messages::MessageView;
use store::messages::receipts::{Receipt, ReceiptKind};

use super::message_attachments::{self, AttachmentRow};
use crate::sanitize::{SafeHtml, sanitize_html_bounded};
use crate::time::{Shown, Zone};

pub(super) struct RecipientRow {
    pub email: String,
    pub status: &'static str,
    /// What they did, oldest first: "Opened …", "Downloaded x.pdf …", "Replied …".
    pub events: Vec<ReceiptLine>,
}

/// One line of a recipient's receipt.
pub(super) struct ReceiptLine {
    pub what: String,
    pub when: Shown,
    /// A link to their reply, for a reply.
    pub href: Option<String>,
}

/// One message of the conversation.
pub(super) struct MessageBlock {
    pub id: String,
    /// Shown folded (an earlier message), opened with its summary.
    pub collapsed: bool,
    pub sender_name: String,
    pub practice_name: String,
    pub notice: Option<String>,
    pub sent_on: Shown,
    pub expires_on: Shown,
    expires_at: i64,
    /// "Deletes in 12 days".
    pub countdown: String,
    /// A day or less is left.
    pub ends_soon: bool,
    /// The reader may keep it longer or delete it sooner.
    pub can_change_expiry: bool,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub date: Shown,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    /// The HTML body was too large or too deeply nested to show.
    pub body_too_complex: bool,
    /// The start of the text, for the folded line (plain text only).
    pub snippet: String,
    pub attachments: Vec<AttachmentRow>,
    pub is_sender: bool,
    pub recipients: Vec<RecipientRow>,
    pub awaiting_roles: bool,
}

/// How many characters of the text the folded line shows.
const SNIPPET: usize = 90;

impl MessageBlock {
    /// The block for `view`; its HTML body is sanitised here.
    pub(super) async fn new(mut view: MessageView, zone: Zone) -> Self {
        let html = match view.meta.html.take() {
            Some(body) => Some(sanitize_html_bounded(body).await),
            None => None,
        };
        let meta = view.meta;
        let body_too_complex = html == Some(SafeHtml::TooComplex);
        let body_html = match html {
            Some(SafeHtml::Clean(clean)) if !clean.trim().is_empty() => Some(clean),
            _ => None,
        };
        let text = meta.text.filter(|t| !t.trim().is_empty());
        let snippet = text.as_deref().map_or_else(String::new, |t| {
            let words = t.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut snippet: String = words.chars().take(SNIPPET).collect();
            if words.chars().count() > SNIPPET {
                snippet.push('…');
            }
            snippet
        });
        let body_text = if body_html.is_some() { None } else { text };
        let subject = meta.subject.trim();
        Self {
            id: view.id.to_string(),
            collapsed: false,
            sender_name: view.sender.display_name().to_owned(),
            practice_name: view.practice.name,
            notice: meta.notice.filter(|n| !n.trim().is_empty()),
            sent_on: zone.show(view.created_at),
            expires_on: zone.show(view.expires_at),
            expires_at: view.expires_at,
            countdown: String::new(),
            ends_soon: false,
            can_change_expiry: false,
            subject: if subject.is_empty() {
                "(no subject)".to_owned()
            } else {
                subject.to_owned()
            },
            from: meta.from,
            to: meta.to.join(", "),
            cc: meta.cc.join(", "),
            date: zone.show(meta.date.unwrap_or(view.created_at)),
            body_html,
            body_text,
            body_too_complex,
            snippet,
            attachments: message_attachments::rows(meta.attachments),
            is_sender: view.is_sender,
            awaiting_roles: view.recipients.iter().any(|r| r.awaiting_role),
            recipients: view
                .recipients
                .into_iter()
                .map(|r| RecipientRow {
                    status: match (r.awaiting_role, r.read) {
                        (true, _) => "Waiting for you to choose how you know them",
                        (false, true) => "Read",
                        (false, false) => "Not read yet",
                    },
                    email: r.email,
                    events: Vec::new(),
                })
                .collect(),
        }
    }

    /// Adds the countdown at `now`, whether the reader may change it, and the
    /// sender's receipts (times in the reader's zone).
    pub(super) fn lifecycle(&mut self, now: i64, can_change_expiry: bool, receipts: Vec<Receipt>, zone: Zone) {
        self.countdown = super::countdown::deletes_in(now, self.expires_at);
        self.ends_soon = super::countdown::soon(now, self.expires_at);
        self.can_change_expiry = can_change_expiry;
        for receipt in receipts {
            let Some(row) = self.recipients.iter_mut().find(|r| r.email == receipt.email) else {
                continue;
            };
            if let Some(opened) = receipt.opened_at {
                row.status = "Read";
                row.events.push(ReceiptLine {
                    what: "Opened".to_owned(),
                    when: zone.show(opened),
                    href: None,
                });
            }
            for event in receipt.events {
                let (what, href) = match event.kind {
                    ReceiptKind::Attachment { index, viewed_only } => {
                        let name = self
                            .attachments
                            .iter()
                            .find(|a| a.index == index)
                            .map_or_else(|| format!("attachment {}", index + 1), |a| a.name.clone());
                        let verb = if viewed_only { "Viewed" } else { "Downloaded" };
                        (format!("{verb} {name}"), None)
                    }
                    ReceiptKind::Reply { id } => ("Replied".to_owned(), Some(format!("/m/{id}"))),
                };
                row.events.push(ReceiptLine {
                    what,
                    when: zone.show(event.at),
                    href,
                });
            }
        }
    }
}
