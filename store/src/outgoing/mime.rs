//! Writing a portal message as MIME (RFC 5322, RFC 2045–2047, RFC 2231) straight
//! into a spool file: the header block from `mail-builder`'s header encoders,
//! then the text and each attachment, base64-encoded as it is read (RFC 2045
//! §6.8: lines of 76 characters), so no attachment is ever whole in memory.

use base64::Engine as _;
use futures::StreamExt as _;
use mail_builder::headers::Header;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId as MsgIds;
use mail_builder::headers::text::Text;

use crate::spool::SpoolWriter;
use crate::uploads::OutgoingAttachment;
use crate::{Error, Result};

/// Bytes of input per base64 line (57 bytes make 76 characters).
const LINE_INPUT: usize = 57;
/// Input encoded per write to the spool: whole lines only.
const BLOCK_INPUT: usize = LINE_INPUT * 1024;

/// The header fields of one portal message, already checked.
#[derive(Debug)]
pub(crate) struct Headers<'a> {
    pub from_name: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub subject: &'a str,
    /// Unix seconds.
    pub date: i64,
    /// Without angle brackets.
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub note: Option<&'a str>,
    /// `X-Sealpost-Role` pairs for new recipients (address, role text).
    pub roles: &'a [(String, &'static str)],
}

fn field(out: &mut Vec<u8>, name: &str, value: &impl Header) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    value.write_header(out, name.len() + 2);
}

fn addresses<'a>(list: &'a [String]) -> Address<'a> {
    Address::new_list(list.iter().map(|a| Address::new_address(None::<&str>, a.as_str())).collect())
}

/// The header block, ending with the blank line, for a message whose body is
/// `multipart/mixed` with `boundary`.
pub(crate) fn header_block(headers: &Headers<'_>, boundary: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    field(&mut out, "Message-ID", &MsgIds::new(headers.message_id));
    field(&mut out, "Date", &Date::new(headers.date));
    let from_name = (!headers.from_name.is_empty()).then_some(headers.from_name);
    field(&mut out, "From", &Address::new_address(from_name, headers.from));
    if !headers.to.is_empty() {
        field(&mut out, "To", &addresses(headers.to));
    }
    if !headers.cc.is_empty() {
        field(&mut out, "Cc", &addresses(headers.cc));
    }
    field(&mut out, "Subject", &Text::new(headers.subject));
    if let Some(parent) = headers.in_reply_to {
        field(&mut out, "In-Reply-To", &MsgIds::new(parent));
    }
    if !headers.references.is_empty() {
        let ids: Vec<&str> = headers.references.iter().map(String::as_str).collect();
        field(&mut out, "References", &MsgIds::from(ids.as_slice()));
    }
    // The markers the relay reads from the Outlook add-in (DESIGN.md): sealing
    // reads them the same way, and no recipient's copy shows them.
    out.extend_from_slice(b"X-Sealpost-Secure: 1\r\n");
    if let Some(note) = headers.note.filter(|n| !n.trim().is_empty()) {
        field(&mut out, "X-Sealpost-Notice", &Text::new(note));
    }
    if !headers.roles.is_empty() {
        let pairs: Vec<String> = headers.roles.iter().map(|(a, r)| format!("{a} {r}")).collect();
        out.extend_from_slice(format!("X-Sealpost-Role: {}\r\n", pairs.join(", ")).as_bytes());
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    field(
        &mut out,
        "Content-Type",
        &ContentType::new("multipart/mixed").attribute("boundary", boundary),
    );
    out.extend_from_slice(b"\r\n");
    out
}

/// The text part: the secure body, UTF-8, base64.
pub(crate) fn text_part(boundary: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    for line in body.as_bytes().chunks(LINE_INPUT) {
        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(line).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A content type safe to put in a header: `type/subtype` of token characters
/// (RFC 2045 §5.1), else `application/octet-stream`.
fn safe_content_type(content_type: &str) -> &str {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match content_type.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => content_type,
        _ => "application/octet-stream",
    }
}

/// Writes one attachment part, encoding its body as it streams in. A body
/// longer or shorter than it said is an error: the message is not sent.
pub(crate) async fn write_attachment(
    spool: &mut SpoolWriter,
    boundary: &str,
    mut attachment: OutgoingAttachment,
) -> Result<()> {
    let mut head = format!("--{boundary}\r\n").into_bytes();
    field(
        &mut head,
        "Content-Type",
        &ContentType::new(safe_content_type(&attachment.content_type).to_ascii_lowercase()),
    );
    field(
        &mut head,
        "Content-Disposition",
        &ContentType::new("attachment").attribute("filename", attachment.file_name.as_str()),
    );
    head.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
    spool.write(&head).await?;
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK_INPUT + LINE_INPUT);
    let mut encoded = Vec::with_capacity(BLOCK_INPUT / 57 * 78);
    let mut total = 0u64;
    while let Some(chunk) = attachment.body.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        if pending.len() >= BLOCK_INPUT {
            let whole = pending.len() - pending.len() % LINE_INPUT;
            encode_lines(&pending[..whole], &mut encoded);
            spool.write(&encoded).await?;
            encoded.clear();
            pending.drain(..whole);
        }
    }
    encode_lines(&pending, &mut encoded);
    spool.write(&encoded).await?;
    if total != attachment.size {
        return Err(Error::invalid("An attachment changed while it was being sent; please try again."));
    }
    Ok(())
}

/// Base64 of `input` in lines of 76 characters, each ending in CRLF.
fn encode_lines(input: &[u8], out: &mut Vec<u8>) {
    for line in input.chunks(LINE_INPUT) {
        let start = out.len();
        out.resize(start + line.len().div_ceil(3) * 4, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(line, &mut out[start..])
            .expect("the slice is sized for the encoding");
        out.truncate(start + written);
        out.extend_from_slice(b"\r\n");
    }
}

/// The closing delimiter.
pub(crate) fn closing(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_76_characters_and_decode_back() {
        let input: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        encode_lines(&input, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= 76));
        assert_eq!(text.lines().next().unwrap().len(), 76);
        let joined: String = text.lines().collect();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(joined).unwrap(), input);
    }

    #[test]
    fn headers_encode_words_and_keep_markers_out_of_the_addresses() {
        let to = vec!["pat@example.org".to_owned(), "sam@example.org".to_owned()];
        let refs = vec!["root@x".to_owned(), "parent@x".to_owned()];
        let roles = vec![("sam@example.org".to_owned(), "patient")];
        let block = header_block(
            &Headers {
                from_name: "Dr Ada Lovelace",
                from: "ada@smiles.example",
                to: &to,
                cc: &[],
                subject: "Résultats du labo",
                date: 1_700_000_000,
                message_id: "abc@portal.example",
                in_reply_to: Some("parent@x"),
                references: &refs,
                note: Some("Please sign in"),
                roles: &roles,
            },
            "b1",
        );
        let text = String::from_utf8(block.clone()).unwrap();
        assert!(text.contains("Message-ID: <abc@portal.example>\r\n"), "{text}");
        assert!(text.contains("In-Reply-To: <parent@x>\r\n"), "{text}");
        assert!(text.contains("References: <root@x> <parent@x>"), "{text}");
        assert!(text.contains("X-Sealpost-Role: sam@example.org patient\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Résultats"), "encoded: {text}");
        let facts = crate::ingest::headers::inspect(&block, "[secure]");
        assert!(facts.is_secure());
        assert_eq!(facts.subject.expose(), "Résultats du labo");
        assert_eq!(facts.to, to);
        assert_eq!(facts.message_id.as_deref(), Some("abc@portal.example"));
        assert_eq!(facts.notice.as_deref(), Some("Please sign in"));
        assert_eq!(facts.roles.len(), 1);
        assert_eq!(crate::threads::reply_references(&block), vec!["parent@x", "root@x"]);
    }

    #[test]
    fn odd_content_types_become_octet_stream() {
        assert_eq!(safe_content_type("application/pdf"), "application/pdf");
        assert_eq!(safe_content_type("text/plain\r\nX-Evil: 1"), "application/octet-stream");
        assert_eq!(safe_content_type("nonsense"), "application/octet-stream");
    }
}
