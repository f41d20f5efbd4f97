//! What FETCH says about one message, computed from the decrypted original in
//! bounded memory: the header block (ENVELOPE, BODY[HEADER...], RFC 3501
//! §7.4.2), and for messages up to [`MAX_STRUCTURE`] octets the MIME structure
//! (BODYSTRUCTURE; its part ranges for BODY[n] are in [`super::outline`]).
//! Walks are iterative and the structure is described [`MAX_DEPTH`] levels
//! deep at most: nesting depth is the sender's choice.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::{nstring, string};

/// Largest header block read (as the ingest splitter's limit).
pub const MAX_HEADER: usize = 256 * 1024;
/// Messages up to this size are parsed whole for BODYSTRUCTURE and BODY[n];
/// larger ones are described as one opaque part (BODY[] still streams).
pub const MAX_STRUCTURE: u64 = 32 * 1024 * 1024;
/// Parts nested deeper than this are described as one opaque part each.
pub const MAX_DEPTH: usize = 64;

/// Reads the header block (through the blank line) from a decrypted stream.
pub async fn header_block(mut stream: BoxStream<'static, store::Result<Bytes>>) -> store::Result<Vec<u8>> {
    let mut block = Vec::new();
    while let Some(chunk) = stream.next().await {
        let from = block.len().saturating_sub(3);
        block.extend_from_slice(&chunk?);
        if let Some(end) = blank_line(&block[from..]) {
            block.truncate(from + end);
            return Ok(block);
        }
        if block.len() > MAX_HEADER {
            block.truncate(MAX_HEADER);
            return Ok(block);
        }
    }
    Ok(block)
}

/// Where the first blank line ends (CRLF CRLF or LF LF).
pub(crate) fn blank_line(data: &[u8]) -> Option<usize> {
    (0..data.len()).find_map(|i| {
        if data[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if data[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// The header fields named (or, with `not`, all others) and the blank line.
pub fn header_fields(block: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in block.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default().trim_ascii();
            keep = names.iter().any(|n| n.eq_ignore_ascii_case(name)) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn raw_header(message: &Message<'_>, name: &str) -> Option<Vec<u8>> {
    let raw = message.header_raw(name.to_owned())?;
    let unfolded: String = raw.replace("\r\n", "").replace('\n', "");
    Some(unfolded.trim().as_bytes().to_vec())
}

fn addresses(out: &mut Vec<u8>, list: Option<&Address<'_>>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let mut any = false;
    let mut items = Vec::new();
    for addr in list.iter() {
        let address = addr.address().unwrap_or_default();
        let (mailbox, host) = address.rsplit_once('@').unwrap_or((address, ""));
        items.push(b'(');
        nstring(&mut items, addr.name().map(str::as_bytes));
        items.extend_from_slice(b" NIL ");
        string(&mut items, mailbox.as_bytes());
        items.push(b' ');
        string(&mut items, host.as_bytes());
        items.push(b')');
        any = true;
    }
    if any {
        out.push(b'(');
        out.extend_from_slice(&items);
        out.push(b')');
    } else {
        out.extend_from_slice(b"NIL");
    }
}

/// ENVELOPE (RFC 3501 §7.4.2) from a header block.
pub fn envelope(out: &mut Vec<u8>, block: &[u8]) {
    let Some(message) = MessageParser::default().parse_headers(block) else {
        out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        return;
    };
    envelope_of(out, &message);
}

fn envelope_of(out: &mut Vec<u8>, message: &Message<'_>) {
    out.push(b'(');
    nstring(out, raw_header(message, "Date").as_deref());
    out.push(b' ');
    nstring(out, message.subject().map(str::as_bytes));
    out.push(b' ');
    addresses(out, message.from());
    out.push(b' ');
    // Sender and Reply-To default to From (RFC 3501 §7.4.2).
    addresses(out, message.sender().or(message.from()));
    out.push(b' ');
    addresses(out, message.reply_to().or(message.from()));
    for list in [message.to(), message.cc(), message.bcc()] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstring(out, raw_header(message, "In-Reply-To").as_deref());
    out.push(b' ');
    nstring(out, raw_header(message, "Message-ID").as_deref());
    out.push(b')');
}

/// One step of the BODYSTRUCTURE walk.
enum Task<'a> {
    /// Describe part `index` of a message, `depth` levels down.
    Part(&'a Message<'a>, u32, usize),
    /// Octets that close an open part.
    Close(Vec<u8>),
}

/// BODYSTRUCTURE / BODY (RFC 3501 §7.4.2), without extension data. An explicit
/// stack, not recursion: a message nested 20,000 multiparts deep must not
/// overflow the thread's stack.
pub fn body_structure<'a>(out: &mut Vec<u8>, message: &'a Message<'a>) {
    let mut stack = vec![Task::Part(message, 0, 0)];
    while let Some(task) = stack.pop() {
        match task {
            Task::Close(bytes) => out.extend_from_slice(&bytes),
            Task::Part(message, index, depth) => part_structure(out, &mut stack, message, index, depth),
        }
    }
}

fn params(out: &mut Vec<u8>, part: &MessagePart<'_>) {
    let attributes = part.content_type().and_then(|c| c.attributes()).unwrap_or_default();
    if attributes.is_empty() {
        if part.content_type().is_none() || matches!(part.body, PartType::Text(_)) {
            out.extend_from_slice(b"(\"charset\" \"us-ascii\")");
        } else {
            out.extend_from_slice(b"NIL");
        }
        return;
    }
    out.push(b'(');
    for (i, attribute) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, attribute.name.as_bytes());
        out.push(b' ');
        string(out, attribute.value.as_bytes());
    }
    out.push(b')');
}

fn part_structure<'a>(
    out: &mut Vec<u8>,
    stack: &mut Vec<Task<'a>>,
    message: &'a Message<'a>,
    index: u32,
    depth: usize,
) {
    let Some(part) = message.part(index) else {
        out.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
        return;
    };
    let raw = message.raw_message();
    let origin = origin(message);
    let body = raw
        .get(part.offset_body.saturating_sub(origin) as usize..part.offset_end.saturating_sub(origin) as usize)
        .unwrap_or_default();
    let nests = matches!(part.body, PartType::Multipart(_) | PartType::Message(_));
    if nests && depth >= MAX_DEPTH {
        opaque_structure(out, body.len() as u64, 0);
        return;
    }
    let (ctype, subtype) = part
        .content_type()
        .map_or(("text".to_owned(), "plain".to_owned()), |c| {
            (
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or("octet-stream").to_ascii_lowercase(),
            )
        });
    if let PartType::Multipart(children) = &part.body {
        out.push(b'(');
        let mut close = vec![b' '];
        string(&mut close, subtype.as_bytes());
        close.push(b')');
        stack.push(Task::Close(close));
        for child in children.iter().rev() {
            stack.push(Task::Part(message, *child, depth + 1));
        }
        return;
    }
    out.push(b'(');
    string(out, ctype.as_bytes());
    out.push(b' ');
    string(out, subtype.as_bytes());
    out.push(b' ');
    params(out, part);
    out.push(b' ');
    nstring(out, part.content_id().map(str::as_bytes));
    out.push(b' ');
    nstring(out, part.content_description().map(str::as_bytes));
    out.push(b' ');
    let encoding = part.content_transfer_encoding().unwrap_or("7bit").to_ascii_lowercase();
    string(out, encoding.as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    match &part.body {
        PartType::Message(inner) if ctype == "message" && subtype == "rfc822" => {
            out.push(b' ');
            envelope_of(out, inner);
            out.push(b' ');
            stack.push(Task::Close(format!(" {})", lines(body)).into_bytes()));
            stack.push(Task::Part(inner, 0, depth + 1));
            return;
        }
        _ if ctype == "text" => out.extend_from_slice(format!(" {}", lines(body)).as_bytes()),
        _ => {}
    }
    out.push(b')');
}

/// The offset a message's own raw octets start at: the parser numbers the parts
/// of an embedded message from the start of the outer one when it could parse
/// it in place, from zero when it had to decode it first.
pub(crate) fn origin(message: &Message<'_>) -> u32 {
    message.parts.first().map_or(0, |root| root.offset_header)
}

fn lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

/// The one-part description of a message too large to parse whole.
pub fn opaque_structure(out: &mut Vec<u8>, size: u64, header_len: usize) {
    let body = size.saturating_sub(header_len as u64);
    out.extend_from_slice(format!("(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" {body})").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: Ada <ada@smiles.example>\r\nTo: pat@example.org\r\nSubject: Hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";

    #[test]
    fn header_fields_pick_and_drop() {
        let block = &MAIL[..blank_line(MAIL).unwrap()];
        let picked = header_fields(block, &[b"subject".to_vec()], false);
        assert_eq!(picked, b"Subject: Hi\r\n\r\n");
        let rest = header_fields(block, &[b"subject".to_vec()], true);
        assert!(!rest.windows(7).any(|w| w == b"Subject") && rest.starts_with(b"From:"));
    }

    #[test]
    fn envelope_and_structure() {
        let mut out = Vec::new();
        envelope(&mut out, MAIL);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\"Hi\" ((\"Ada\" NIL \"ada\" \"smiles.example\"))"),
            "{text}"
        );
        let message = MessageParser::default().parse(MAIL).unwrap();
        let mut out = Vec::new();
        body_structure(&mut out, &message);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("((\"text\" \"plain\""), "{text}");
        assert!(
            text.contains("(\"application\" \"pdf\" NIL NIL NIL \"base64\" 4)"),
            "{text}"
        );
        assert!(text.ends_with(" \"mixed\")"), "{text}");
    }

    /// `depth` multiparts, each holding the next, a text part innermost.
    pub(crate) fn nested(depth: usize) -> Vec<u8> {
        let mut mail = b"From: a@b.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n".to_vec();
        for level in 0..depth {
            mail.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n").as_bytes(),
            );
        }
        mail.extend_from_slice(b"Content-Type: text/plain\r\n\r\ninnermost\r\n");
        for level in (0..depth).rev() {
            mail.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
        }
        mail
    }

    /// 20,000 levels (the message that aborted the process) are walked on a
    /// small thread stack; the structure stops at `MAX_DEPTH` with an opaque part.
    #[test]
    fn deep_nesting_is_capped_not_recursed() {
        let mail = nested(20_000);
        let text = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let message = MessageParser::default().parse(&mail).unwrap();
                let mut out = Vec::new();
                body_structure(&mut out, &message);
                String::from_utf8(out).unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(text.matches("\"mixed\")").count(), MAX_DEPTH, "{}", &text[..200]);
        assert_eq!(text.matches("(\"application\" \"octet-stream\"").count(), 1);
        assert_eq!(text.matches('(').count(), text.matches(')').count());
    }
}
