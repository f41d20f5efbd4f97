//! What the compose form starts with when someone replies, replies to all or
//! forwards: the addresses, `Re:`/`Fwd:` subject and quoted text a mail client
//! would fill in, and the ids a reply threads by (RFC 5322 §3.6.4).

use futures::StreamExt as _;

use crate::accounts::User;
use crate::ids::MessageId;
use crate::ingest::headers::raw_header_values;
use crate::ingest::mime::MAX_HEADER_BLOCK;
use crate::threads::normalize_msg_id;
use crate::{Mail, Result, Sealed};

/// At most this many ids are carried in a reply's `References`: the first
/// (the conversation's start) and the newest.
const MAX_REFERENCES: usize = 20;

/// Which button was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Reply,
    ReplyAll,
    Forward,
}

/// A compose form filled in from the message it answers.
#[derive(Debug, Clone)]
pub struct Prefill {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Sealed<String>,
    pub body: Sealed<String>,
    /// A forward's attachments (name, size), carried without uploading again.
    pub attachments: Vec<(Sealed<String>, u64)>,
}

/// The ids a reply to a message carries: its `In-Reply-To` (the parent's
/// Message-ID) and `References` (the parent's `References`, or else its
/// `In-Reply-To`, then the parent's id), as Outlook and RFC 5322 write them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReplyIds {
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

fn prefixed(prefix: &str, subject: &str) -> String {
    let subject = subject.trim();
    let already = subject
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    if already {
        subject.to_owned()
    } else {
        format!("{prefix} {subject}")
    }
}

/// The text of a message to quote: its plain text, else its HTML without tags.
fn text_of(meta: &crate::ingest::SealedMeta) -> String {
    if let Some(text) = meta.text.as_ref().filter(|t| !t.trim().is_empty()) {
        return text.clone();
    }
    let html = meta.html.as_deref().unwrap_or_default();
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The msg-ids of a header value as written (case kept, so the reply quotes
/// them exactly), without folding whitespace; comments are not expected here.
fn ids_as_written(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>'))
        .map(|(id, _)| id.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|id| normalize_msg_id(id).is_some() && id.contains('@'))
        .collect()
}

impl Mail<'_> {
    /// The form for answering message `id`, which `user` must be able to see
    /// (anyone else gets `NotFound`). Opening it is a view of its content, audited.
    pub async fn prefill(&self, user: &User, id: &MessageId, answer: Answer, client: &str) -> Result<Prefill> {
        let view = self.open_message(user, id, client).await?;
        let meta = view.meta;
        let me = user.email.as_str();
        let sender = view.sender.email.clone();
        let not_me = |list: &[String]| -> Vec<String> { list.iter().filter(|a| *a != me).cloned().collect() };
        let (to, cc) = match answer {
            Answer::Forward => (Vec::new(), Vec::new()),
            // Replying to one's own message goes to its recipients.
            Answer::Reply if sender == me => (meta.to.clone(), Vec::new()),
            Answer::Reply => (vec![sender.clone()], Vec::new()),
            Answer::ReplyAll => {
                let mut to = if sender == me { Vec::new() } else { vec![sender.clone()] };
                for address in not_me(&meta.to) {
                    if !to.contains(&address) {
                        to.push(address);
                    }
                }
                let cc = not_me(&meta.cc).into_iter().filter(|a| !to.contains(a)).collect();
                (to, cc)
            }
        };
        let date = crate::clock::format_utc(meta.date.unwrap_or(view.created_at));
        let original = text_of(&meta);
        let (subject, body) = if answer == Answer::Forward {
            let mut body = format!(
                "\n\n---------- Forwarded message ----------\nFrom: {}\nDate: {date}\nSubject: {}\nTo: {}\n",
                meta.from,
                meta.subject,
                meta.to.join(", ")
            );
            if !meta.cc.is_empty() {
                body.push_str(&format!("Cc: {}\n", meta.cc.join(", ")));
            }
            body.push('\n');
            body.push_str(&original);
            (prefixed("Fwd:", &meta.subject), body)
        } else {
            let quoted: String = original.lines().map(|l| format!("> {l}\n")).collect();
            let who = if meta.from.is_empty() { sender.as_str() } else { meta.from.as_str() };
            (prefixed("Re:", &meta.subject), format!("\n\nOn {date}, {who} wrote:\n{quoted}"))
        };
        let attachments = if answer == Answer::Forward {
            meta.attachments
                .iter()
                .map(|a| (Sealed::new(a.name.clone()), a.size))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Prefill {
            to,
            cc,
            subject: Sealed::new(subject),
            body: Sealed::new(body),
            attachments,
        })
    }

    /// The ids a reply to `parent` threads by, read from the header block of
    /// the copy `user` may see.
    pub(crate) async fn reply_ids(&self, user: &User, parent: &MessageId) -> Result<ReplyIds> {
        let mut stream = self.open_original(user, parent, "", false).await?;
        let mut block = Vec::new();
        while let Some(chunk) = stream.next().await {
            block.extend_from_slice(&chunk?);
            if let Some(end) = block.windows(4).position(|w| w == b"\r\n\r\n") {
                block.truncate(end + 2);
                break;
            }
            if block.len() > MAX_HEADER_BLOCK {
                break;
            }
        }
        let first = |name: &str| -> Vec<String> {
            raw_header_values(&block, name)
                .iter()
                .flat_map(|v| ids_as_written(v))
                .collect()
        };
        let Some(parent_id) = first("Message-ID").into_iter().next() else {
            return Ok(ReplyIds::default());
        };
        let mut references = first("References");
        if references.is_empty() {
            // RFC 5322 §3.6.4: a single In-Reply-To id stands for References.
            let in_reply_to = first("In-Reply-To");
            if in_reply_to.len() == 1 {
                references = in_reply_to;
            }
        }
        let same = |a: &str, b: &str| normalize_msg_id(a) == normalize_msg_id(b);
        references.retain(|id| !same(id, &parent_id));
        if references.len() >= MAX_REFERENCES {
            let keep = references.len() - (MAX_REFERENCES - 2);
            references.drain(1..keep);
        }
        references.push(parent_id.clone());
        Ok(ReplyIds {
            in_reply_to: Some(parent_id),
            references,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_get_one_prefix() {
        assert_eq!(prefixed("Re:", "Lab results"), "Re: Lab results");
        assert_eq!(prefixed("Re:", "RE: Lab results"), "RE: Lab results");
        assert_eq!(prefixed("Fwd:", "Re: x"), "Fwd: Re: x");
    }

    #[test]
    fn html_is_quoted_as_text() {
        let meta = crate::ingest::SealedMeta {
            html: Some("<p>Take <b>two</b> &amp; rest</p>".into()),
            ..Default::default()
        };
        assert_eq!(text_of(&meta), "Take two & rest");
    }
}
