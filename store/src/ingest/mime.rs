//! A streaming MIME splitter (RFC 2045/2046). It walks a message line by line and
//! reports the top-level header block and each leaf part's headers and raw body,
//! holding no more than one short line (or one header block) in memory, so a
//! message of any size splits in bounded memory. Decoding is left to the caller.

use mail_parser::{MessageParser, MimeHeaders};

/// Longest header block kept; longer ones are cut (the rest is treated as body).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Lines longer than this can't be boundaries and are passed through in pieces.
const MAX_SCANNED_LINE: usize = 8 * 1024;
/// Nesting deeper than this is treated as an opaque leaf.
const MAX_DEPTH: usize = 16;

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The message's own header block (without the blank line).
    MessageHeaders(Vec<u8>),
    /// A leaf part begins; its header block (for a single-part message, the
    /// message headers again).
    PartStart(Vec<u8>),
    /// Raw (still transfer-encoded) body bytes of the current leaf.
    PartData(Vec<u8>),
    /// The current leaf ended.
    PartEnd,
}

#[derive(Debug)]
enum State {
    Headers {
        top: bool,
        block: Vec<u8>,
        overflow: bool,
    },
    /// Inside a leaf body. `held_crlf`: a line break not yet emitted, because if
    /// the next line is a boundary, the break belongs to the boundary.
    Leaf {
        held_crlf: bool,
    },
    /// Preamble or epilogue of a multipart: skipped.
    Skip,
}

/// The splitter. Feed bytes with [`push`](Self::push), then call [`finish`](Self::finish).
#[derive(Debug)]
pub struct Splitter {
    state: State,
    boundaries: Vec<Vec<u8>>,
    line: Vec<u8>,
    /// The current line is too long to be a boundary; pass it through as data.
    long_line: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    pub fn new() -> Self {
        Self {
            state: State::Headers {
                top: true,
                block: Vec::new(),
                overflow: false,
            },
            boundaries: Vec::new(),
            line: Vec::new(),
            long_line: false,
        }
    }

    pub fn push(&mut self, mut data: &[u8], events: &mut Vec<Event>) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let take = newline.map_or(data.len(), |i| i + 1);
            let (piece, rest) = data.split_at(take);
            data = rest;
            if self.long_line {
                // The line break ending a long line may precede a boundary: hold it.
                let content = piece
                    .strip_suffix(b"\r\n")
                    .or_else(|| piece.strip_suffix(b"\n"))
                    .unwrap_or(piece);
                self.data_bytes(content, events);
                if newline.is_some() {
                    self.long_line = false;
                    if let State::Leaf { held_crlf } = &mut self.state {
                        *held_crlf = true;
                    }
                }
                continue;
            }
            if newline.is_some() && self.line.is_empty() {
                // A whole line in the input: no need to copy it first.
                self.on_line(piece, events);
                continue;
            }
            self.line.extend_from_slice(piece);
            if newline.is_some() {
                let mut line = std::mem::take(&mut self.line);
                self.on_line(&line, events);
                line.clear();
                self.line = line;
            } else if self.line.len() > MAX_SCANNED_LINE && !matches!(self.state, State::Headers { .. }) {
                let line = std::mem::take(&mut self.line);
                self.data_bytes(&line, events);
                self.long_line = true;
            }
        }
    }

    pub fn finish(mut self, events: &mut Vec<Event>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, events);
        }
        match std::mem::replace(&mut self.state, State::Skip) {
            State::Headers { top, block, .. } => {
                // Headers with no body at all.
                self.headers_done(top, block, events);
                if matches!(self.state, State::Leaf { .. }) {
                    events.push(Event::PartEnd);
                }
            }
            State::Leaf { .. } => events.push(Event::PartEnd),
            State::Skip => {}
        }
    }

    /// Bytes that are leaf content (or skipped), not boundary candidates.
    fn data_bytes(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        if let State::Leaf { held_crlf } = &mut self.state {
            if std::mem::take(held_crlf) {
                push_data(events, b"\r\n");
            }
            push_data(events, bytes);
        }
    }

    fn on_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if let State::Headers { block, overflow, .. } = &mut self.state {
            let blank = line == b"\r\n" || line == b"\n";
            if !blank {
                if block.len() + line.len() <= MAX_HEADER_BLOCK {
                    block.extend_from_slice(line);
                } else {
                    *overflow = true;
                }
                return;
            }
            let State::Headers { top, block, .. } = std::mem::replace(&mut self.state, State::Skip) else {
                unreachable!()
            };
            self.headers_done(top, block, events);
            return;
        }
        if let Some((depth, closing)) = self.boundary_match(line) {
            if matches!(self.state, State::Leaf { .. }) {
                events.push(Event::PartEnd);
            }
            // Inner multiparts left open are closed by an outer boundary.
            self.boundaries.truncate(depth + 1);
            if closing {
                self.boundaries.pop();
                self.state = State::Skip;
            } else {
                self.state = State::Headers {
                    top: false,
                    block: Vec::new(),
                    overflow: false,
                };
            }
            return;
        }
        if let State::Leaf { held_crlf } = &mut self.state {
            let (content, has_crlf) = match line.strip_suffix(b"\r\n") {
                Some(content) => (content, true),
                None => (line, false),
            };
            if std::mem::replace(held_crlf, has_crlf) {
                push_data(events, b"\r\n");
            }
            push_data(events, content);
        }
    }

    fn headers_done(&mut self, top: bool, block: Vec<u8>, events: &mut Vec<Event>) {
        if top {
            events.push(Event::MessageHeaders(block.clone()));
        }
        if let Some(boundary) = multipart_boundary(&block).filter(|_| self.boundaries.len() < MAX_DEPTH) {
            self.boundaries.push(boundary);
            self.state = State::Skip;
        } else {
            events.push(Event::PartStart(block));
            self.state = State::Leaf { held_crlf: false };
        }
    }

    /// Is `line` a delimiter of an open multipart? Returns its depth and whether it
    /// is the closing delimiter (RFC 2046 §5.1.1; trailing whitespace allowed).
    fn boundary_match(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.strip_prefix(b"--")?;
        self.boundaries.iter().enumerate().rev().find_map(|(depth, boundary)| {
            let tail = rest.strip_prefix(boundary.as_slice())?;
            let (closing, tail) = match tail.strip_prefix(b"--") {
                Some(tail) => (true, tail),
                None => (false, tail),
            };
            tail.iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .then_some((depth, closing))
        })
    }
}

/// Appends body bytes, merging with the previous event when it is data too, so a
/// run of body lines becomes one event (not one allocation per line).
fn push_data(events: &mut Vec<Event>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Event::PartData(last)) = events.last_mut() {
        last.extend_from_slice(bytes);
    } else {
        events.push(Event::PartData(bytes.to_vec()));
    }
}

/// The boundary of a `multipart/*` header block, if it has a usable one.
fn multipart_boundary(block: &[u8]) -> Option<Vec<u8>> {
    let parsed = MessageParser::default().parse_headers(block)?;
    let content_type = parsed.content_type()?;
    if !content_type.ctype().eq_ignore_ascii_case("multipart") {
        return None;
    }
    let boundary = content_type.attribute("boundary")?;
    (!boundary.is_empty() && boundary.len() <= 200).then(|| boundary.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(message: &[u8], piece: usize) -> Vec<Event> {
        let mut splitter = Splitter::new();
        let mut events = Vec::new();
        for chunk in message.chunks(piece) {
            splitter.push(chunk, &mut events);
        }
        splitter.finish(&mut events);
        // Merge adjacent data events so results don't depend on piece size.
        let mut merged: Vec<Event> = Vec::new();
        for event in events {
            if let (Some(Event::PartData(prev)), Event::PartData(next)) = (merged.last_mut(), &event) {
                prev.extend_from_slice(next);
                continue;
            }
            merged.push(event);
        }
        merged
    }

    const NESTED: &[u8] = b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
Content-Type: text/plain\r\n\r\nhello\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--inner--\r\n\
--outer\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\nREVG\r\n\
--outer--\r\nepilogue\r\n";

    #[test]
    fn splits_nested_multiparts_in_any_piece_size() {
        let expected = vec![
            Event::MessageHeaders(
                b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n".to_vec(),
            ),
            Event::PartStart(b"Content-Type: text/plain\r\n".to_vec()),
            Event::PartData(b"hello".to_vec()),
            Event::PartEnd,
            Event::PartStart(b"Content-Type: text/html\r\n".to_vec()),
            Event::PartData(b"<p>hello</p>".to_vec()),
            Event::PartEnd,
            Event::PartStart(
                b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n".to_vec(),
            ),
            Event::PartData(b"QUJD\r\nREVG".to_vec()),
            Event::PartEnd,
        ];
        for piece in [1, 3, 7, 64, 4096] {
            assert_eq!(split(NESTED, piece), expected, "piece size {piece}");
        }
    }

    #[test]
    fn single_part_message_is_one_leaf() {
        let events = split(b"Subject: hi\r\n\r\nline one\r\nline two\r\n", 5);
        assert_eq!(events[1], Event::PartStart(b"Subject: hi\r\n".to_vec()));
        assert_eq!(events[2], Event::PartData(b"line one\r\nline two".to_vec()));
        assert_eq!(events[3], Event::PartEnd);
    }

    #[test]
    fn malformed_input_never_panics_and_keeps_data() {
        // Missing closing boundary, boundary-like lines, headers without a body.
        let unterminated = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nbody\r\n--bogus\r\n";
        let events = split(unterminated, 2);
        assert!(events.contains(&Event::PartData(b"body\r\n--bogus".to_vec())));
        assert_eq!(events.last(), Some(&Event::PartEnd));
        let headers_only = split(b"Subject: only headers", 4);
        assert_eq!(headers_only.len(), 3);
        let _ = split(b"\r\n\r\n\r\n--\r\n", 1);
        let _ = split(&[0xff; 20_000], 333);
    }

    #[test]
    fn long_lines_pass_through_whole() {
        let mut message = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\n".to_vec();
        let long = vec![b'x'; 50_000];
        message.extend_from_slice(&long);
        message.extend_from_slice(b"\r\n--z--\r\n");
        let events = split(&message, 1000);
        assert_eq!(events[2], Event::PartData(long));
    }
}
