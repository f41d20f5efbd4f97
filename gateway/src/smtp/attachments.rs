//! The attachment rules on mail arriving over SMTP: the same accepted types,
//! size per message and free accounts' ZIP/STL/DICOM rule as portal uploads
//! (`store::uploads::rules`). While the data streams in, [`AttachmentScan`]
//! walks its MIME parts (the store's splitter) and counts each attachment's
//! decoded size, holding no more than one piece of the message; at the end,
//! a secure message whose files break a rule gets a 5xx naming the file:
//! `554 5.6.1` for a type not accepted, `552 5.3.4` for too many bytes,
//! `550 5.7.1` for what a free account may not send there.

use mail_parser::{MessageParser, MimeHeaders};
use store::ingest::decode::Decoder;
use store::ingest::mime::{Event, Splitter};
use store::uploads::rules::{NETWORK_ONLY, extension};

use super::reply::Reply;

/// Attachments counted per message; past this the rest are counted as one.
const MAX_FILES: usize = 1000;
/// Longest file name put in a reply.
const MAX_NAME_IN_REPLY: usize = 100;

/// The attachment being read.
struct Current {
    name: Option<String>,
    decoder: Decoder,
    size: u64,
}

/// Learns a message's attachments (name, decoded size) as it streams.
pub(crate) struct AttachmentScan {
    splitter: Splitter,
    events: Vec<Event>,
    scratch: Vec<u8>,
    current: Option<Current>,
    /// Named attachments, and the bytes of unnamed ones under `""`.
    files: Vec<(String, u64)>,
}

impl AttachmentScan {
    pub(crate) fn new() -> Self {
        Self {
            splitter: Splitter::new(),
            events: Vec::new(),
            scratch: Vec::new(),
            current: None,
            files: Vec::new(),
        }
    }

    /// Feeds the next piece of the (line-normalised) message.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.splitter.push(data, &mut self.events);
        self.take_events();
    }

    /// The message's attachments: (name, decoded bytes).
    pub(crate) fn finish(mut self) -> Vec<(String, u64)> {
        let splitter = std::mem::take(&mut self.splitter);
        splitter.finish(&mut self.events);
        self.take_events();
        self.end_part();
        self.files
    }

    fn take_events(&mut self) {
        for event in std::mem::take(&mut self.events) {
            match event {
                Event::MessageHeaders(_) => {}
                Event::PartStart(block) => {
                    self.end_part();
                    self.current = attachment(&block);
                }
                Event::PartData(bytes) => {
                    if let Some(current) = self.current.as_mut() {
                        current.decoder.push(&bytes, &mut self.scratch);
                        current.size += self.scratch.len() as u64;
                        self.scratch.clear();
                    }
                }
                Event::PartEnd => self.end_part(),
            }
        }
    }

    fn end_part(&mut self) {
        let Some(current) = self.current.take() else { return };
        let Current {
            name,
            decoder,
            mut size,
        } = current;
        decoder.finish(&mut self.scratch);
        size += self.scratch.len() as u64;
        self.scratch.clear();
        let name = name.unwrap_or_default();
        if self.files.len() < MAX_FILES {
            self.files.push((name, size));
        } else if let Some(last) = self.files.last_mut() {
            last.1 = last.1.saturating_add(size);
        }
    }
}

/// The attachment a part's header block describes, if it is one (as the
/// store decides when it seals the message: a file name, or `attachment`).
fn attachment(block: &[u8]) -> Option<Current> {
    let parsed = MessageParser::default().parse_headers(block)?;
    let name = parsed.attachment_name().map(str::to_owned);
    let disposition = parsed.content_disposition().map(|d| d.ctype().to_ascii_lowercase());
    if name.is_none() && disposition.as_deref() != Some("attachment") {
        return None;
    }
    Some(Current {
        name,
        decoder: Decoder::for_encoding(parsed.content_transfer_encoding()),
        size: 0,
    })
}

/// A file name as it may appear in a reply: ASCII, one line, not too long.
fn for_reply(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    if safe.len() > MAX_NAME_IN_REPLY {
        let ext = extension(name).unwrap_or_default();
        safe.truncate(MAX_NAME_IN_REPLY - ext.len() - 4);
        safe = format!("{safe}....{ext}");
    }
    safe
}

/// The store's words as reply lines: the accepted-types list on lines of its own.
fn lines(text: &str) -> String {
    let Some((first, list)) = text.split_once(" Accepted types: ") else {
        return text.to_owned();
    };
    let mut out = format!("{first}\nAccepted types:");
    let mut width = 0;
    for item in list.split(' ') {
        if width > 300 {
            out.push('\n');
            width = 0;
        }
        out.push(' ');
        out.push_str(item);
        width += item.len() + 1;
    }
    out
}

/// Whether `sender` may send these attachments to `recipients`; a 5xx naming
/// the first file that breaks a rule.
pub(crate) async fn check(
    store: &store::Store,
    sender: &store::accounts::User,
    recipients: &[String],
    files: &[(String, u64)],
) -> Result<(), Reply> {
    let rules = &store.policy().uploads;
    let files: Vec<(String, u64)> = files.iter().map(|(name, size)| (for_reply(name), *size)).collect();
    for (name, _) in files.iter().filter(|(name, _)| !name.is_empty()) {
        if let Err(error) = rules.check_type(name) {
            return Err(Reply::new(554, "5.6.1", lines(&format!("Message refused: {error}"))));
        }
    }
    let mut total = 0u64;
    for (name, size) in &files {
        total = total.saturating_add(*size);
        if total > rules.max_message_size {
            let name = if name.is_empty() {
                "an unnamed attachment"
            } else {
                name.as_str()
            };
            return Err(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message refused: with \"{name}\" the attachments pass the {} a message may carry",
                    store::uploads::rules::human_size(rules.max_message_size)
                ),
            ));
        }
    }
    let network_only: Vec<(String, u64)> = files
        .into_iter()
        .filter(|(name, _)| extension(name).is_some_and(|e| NETWORK_ONLY.contains(&e.as_str())))
        .collect();
    if network_only.is_empty() {
        return Ok(());
    }
    match store.uploads().check_outgoing(sender, recipients, &network_only).await {
        Ok(()) => Ok(()),
        Err(store::Error::Invalid(text)) => Err(Reply::new(550, "5.7.1", format!("Message refused: {text}"))),
        Err(error) => {
            tracing::error!(%error, "cannot check a message's attachments");
            Err(super::reply::common::temporary_failure())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(message: &[u8], piece: usize) -> Vec<(String, u64)> {
        let mut scan = AttachmentScan::new();
        for chunk in message.chunks(piece) {
            scan.push(chunk);
        }
        scan.finish()
    }

    #[test]
    fn finds_each_attachment_with_its_decoded_size() {
        let message = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nHello\r\n--XX\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\nBgcICQ==\r\n--XX\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%B6ntgen.exe\r\n\r\nMZ\r\n--XX\r\nContent-Disposition: attachment\r\n\r\n123\r\n--XX--\r\n";
        for piece in [1, 7, 1000] {
            let files = scan(message, piece);
            assert_eq!(
                files,
                [
                    ("scan.pdf".to_owned(), 10),
                    ("röntgen.exe".to_owned(), 2),
                    (String::new(), 3)
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn reply_names_are_ascii_and_short_and_the_list_wraps() {
        assert_eq!(for_reply("röntgen.exe"), "r?ntgen.exe");
        let long = format!("{}.pdf", "a".repeat(300));
        assert!(for_reply(&long).len() <= MAX_NAME_IN_REPLY && for_reply(&long).ends_with(".pdf"));
        let text = lines(
            &store::uploads::UploadRules::default()
                .check_type("x.exe")
                .unwrap_err()
                .to_string(),
        );
        let mut out = Vec::new();
        Reply::new(554, "5.6.1", text).write_to(&mut out);
        let wire = String::from_utf8(out).unwrap();
        assert!(wire.lines().all(|l| l.len() < 512 && l.starts_with("554")), "{wire}");
        assert!(wire.contains("x.exe") && wire.contains(".zip"), "{wire}");
    }
}
