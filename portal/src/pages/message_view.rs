//! One message of a conversation as the message page shows it: what the
//! notification said, its header fields, its sanitised body, its attachments
//! and, for its sender, who has read it. Times are in the reader's zone.

use store::messages::MessageView;

use super::message_attachments::{self, AttachmentRow};
use crate::sanitize::{SafeHtml, sanitize_html_bounded};
use crate::time::{Shown, Zone};

pub(super) struct RecipientRow {
    pub email: String,
    pub status: &'static str,
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
                })
                .collect(),
        }
    }
}
