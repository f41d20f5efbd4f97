//! Turning a spooled message into a sealed one: read the encrypted spool stream,
//! split its MIME structure, decode each part, and seal the pieces (original,
//! metadata, attachments) under the message's data key. Everything streams: a part
//! of any size passes through in bounded memory.
//!
//! Everything here reads attacker-controlled bytes: positions found in the input
//! are never used to index or slice without a check (`get`, `split_first`,
//! patterns), and nothing unwraps (issue 9: one panic here stopped all sealing).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

pub mod decode;
#[doc(hidden)]
pub mod fuzz;
pub mod headers;
pub mod mime;

use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

use crate::Sealed;
use crate::crypto::{DataKey, Sealer};
use crate::layout::MessageBlob;

use decode::Decoder;
use mime::Event;

/// Blob numbers under one message's data key: defined in [`crate::layout`].
pub use crate::layout::{BLOB_FIRST_PART, BLOB_META, BLOB_ORIGINAL, BLOB_SUBJECT};

/// Text bodies larger than this are kept as attachments instead of shown inline.
const MAX_INLINE_TEXT: usize = 2 * 1024 * 1024;
/// More attachments than this are kept only in the original.
pub const MAX_ATTACHMENTS: usize = 1000;

/// One attachment of a sealed message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// Everything about a message that is PHI or may be: kept only sealed.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SealedMeta {
    pub subject: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub date: Option<i64>,
    pub message_id: Option<String>,
    pub notice: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<AttachmentMeta>,
}

impl std::fmt::Debug for SealedMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedMeta([sealed])")
    }
}

/// One piece of a message being sealed, sans I/O: plaintext in, ciphertext
/// collected in [`out`](Self::out) for the caller to take (to a blob of its
/// own, or into the message's bundle).
pub(crate) struct Piece {
    pub blob: MessageBlob,
    sealer: Option<Sealer>,
    /// Sealed bytes not yet taken.
    pub out: Vec<u8>,
    /// Plaintext bytes sealed so far.
    pub plain_len: u64,
}

impl Piece {
    pub fn new(key: &DataKey, blob: MessageBlob) -> Self {
        Self {
            blob,
            sealer: Some(Sealer::new(key, blob.number())),
            out: Vec::new(),
            plain_len: 0,
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        self.plain_len += data.len() as u64;
        if let Some(sealer) = self.sealer.as_mut() {
            sealer.update(data, &mut self.out);
        }
    }

    /// Seals the last chunk.
    pub fn finish(&mut self) {
        if let Some(sealer) = self.sealer.take() {
            sealer.finish(&mut self.out);
        }
    }

    pub fn is_finished(&self) -> bool {
        self.sealer.is_none()
    }
}

enum Current {
    None,
    Text {
        html: bool,
        headers: Vec<u8>,
        raw: Vec<u8>,
    },
    Attachment {
        decoder: Decoder,
        name: String,
        content_type: String,
    },
}

/// Receives splitter events and seals what they describe, sans I/O: each
/// attachment is a [`Piece`] in [`parts`](Self::parts), whose sealed bytes
/// the caller takes as they come.
pub(crate) struct PartSealer<'a> {
    subject_tag: &'a str,
    key: &'a DataKey,
    current: Current,
    pub meta: SealedMeta,
    pub headers: Option<headers::HeaderFacts>,
    /// Attachment `n` is `parts[n]`; all but the last are finished.
    pub parts: Vec<Piece>,
}

impl<'a> PartSealer<'a> {
    pub fn new(subject_tag: &'a str, key: &'a DataKey) -> Self {
        Self {
            subject_tag,
            key,
            current: Current::None,
            meta: SealedMeta::default(),
            headers: None,
            parts: Vec::new(),
        }
    }

    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::MessageHeaders(block) => {
                self.headers = Some(headers::inspect(&block, self.subject_tag));
            }
            Event::PartStart(block) => self.start_part(block),
            Event::PartData(data) => self.part_data(&data),
            Event::PartEnd => self.end_part(),
        }
    }

    fn start_part(&mut self, block: Vec<u8>) {
        let parsed = MessageParser::default().parse_headers(block.as_slice());
        let (content_type, disposition, filename, encoding) = match &parsed {
            Some(p) => (
                p.content_type().map_or_else(
                    || "text/plain".into(),
                    |c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_ascii_lowercase(),
                ),
                p.content_disposition().map(|d| d.ctype().to_ascii_lowercase()),
                p.attachment_name().map(str::to_owned),
                p.content_transfer_encoding().map(str::to_owned),
            ),
            None => ("text/plain".into(), None, None, None),
        };
        let is_attachment = disposition.as_deref() == Some("attachment") || filename.is_some();
        let html = content_type == "text/html";
        let slot_free = if html {
            self.meta.html.is_none()
        } else {
            self.meta.text.is_none()
        };
        if !is_attachment && slot_free && (html || content_type == "text/plain") {
            self.current = Current::Text {
                html,
                headers: block,
                raw: Vec::new(),
            };
        } else {
            let index = self.meta.attachments.len();
            let name = filename.map_or_else(
                || default_name(index, &content_type),
                |n| safe_filename(&n, index, &content_type),
            );
            self.current = self.attachment(name, content_type, Decoder::for_encoding(encoding.as_deref()));
        }
    }

    fn attachment(&mut self, name: String, content_type: String, decoder: Decoder) -> Current {
        let index = self.meta.attachments.len();
        if index >= MAX_ATTACHMENTS {
            return Current::None;
        }
        self.parts.push(Piece::new(self.key, MessageBlob::Part(index)));
        Current::Attachment {
            decoder,
            name,
            content_type,
        }
    }

    fn part_data(&mut self, data: &[u8]) {
        match &mut self.current {
            Current::None => {}
            Current::Text { raw, .. } if raw.len() + data.len() <= MAX_INLINE_TEXT => raw.extend_from_slice(data),
            Current::Text { .. } => {
                // Too large to show inline: keep it as an attachment instead.
                let Current::Text { html, headers, raw } = std::mem::replace(&mut self.current, Current::None) else {
                    unreachable!()
                };
                let encoding = MessageParser::default()
                    .parse_headers(headers.as_slice())
                    .and_then(|p| p.content_transfer_encoding().map(str::to_owned));
                let index = self.meta.attachments.len();
                let name = format!("message-{}.{}", index + 1, if html { "html" } else { "txt" });
                let content_type = if html { "text/html" } else { "text/plain" };
                self.current = self.attachment(name, content_type.into(), Decoder::for_encoding(encoding.as_deref()));
                self.part_data(&raw);
                self.part_data(data);
            }
            Current::Attachment { decoder, .. } => {
                let mut out = Vec::with_capacity(data.len());
                decoder.push(data, &mut out);
                if let Some(piece) = self.parts.last_mut() {
                    piece.write(&out);
                }
            }
        }
    }

    fn end_part(&mut self) {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::None => {}
            Current::Text { html, mut headers, raw } => {
                headers.extend_from_slice(b"\r\n");
                headers.extend_from_slice(&raw);
                let parsed = MessageParser::default().parse(headers.as_slice());
                let text = parsed
                    .as_ref()
                    .and_then(|m| if html { m.body_html(0) } else { m.body_text(0) })
                    .map(std::borrow::Cow::into_owned);
                if html {
                    self.meta.html = Some(text.unwrap_or_default());
                } else {
                    self.meta.text = Some(text.unwrap_or_default());
                }
            }
            Current::Attachment {
                decoder,
                name,
                content_type,
            } => {
                let mut out = Vec::new();
                decoder.finish(&mut out);
                let Some(piece) = self.parts.last_mut() else { return };
                piece.write(&out);
                piece.finish();
                self.meta.attachments.push(AttachmentMeta {
                    name,
                    content_type,
                    size: piece.plain_len,
                });
            }
        }
    }
}

fn default_name(index: usize, content_type: &str) -> String {
    let ext = match content_type {
        "message/rfc822" => "eml",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/html" => "html",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "bin",
    };
    format!("attachment-{}.{ext}", index + 1)
}

/// A file name safe to offer for download: no paths, no control characters.
fn safe_filename(name: &str, index: usize, content_type: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        default_name(index, content_type)
    } else {
        cleaned
    }
}

/// Wraps the subject for the `sealed_subject` column.
pub(crate) fn seal_subject(key: &DataKey, subject: &Sealed<String>) -> Vec<u8> {
    crate::crypto::seal_all(key, BLOB_SUBJECT, subject.expose().as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_made_safe() {
        assert_eq!(safe_filename("../../etc/passwd", 0, "text/plain"), "passwd");
        assert_eq!(safe_filename("C:\\x\\scan.pdf", 0, "application/pdf"), "scan.pdf");
        assert_eq!(safe_filename("\u{0}\"", 2, "application/pdf"), "attachment-3.pdf");
        assert_eq!(safe_filename(".hidden", 0, "x/y"), "hidden");
    }
}
