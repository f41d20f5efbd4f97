//! A streaming MIME splitter (RFC 2045/2046). It walks a message line by line and
//! reports the top-level header block and each leaf part's headers and raw body,
//! holding no more than one short line (or one header block) in memory, so a
//! message of any size splits in bounded memory. Decoding is left to the caller.
//!
//! The SMTP DATA phase runs the same splitter in [`Splitter::scan_only`] mode to
//! learn the structure (nesting depth) before it answers.

use mail_parser::{MessageParser, MimeHeaders};

/// Longest header block kept; longer ones are cut: from the first line that does
/// not fit, the rest of the block is dropped (a header line longer than this is
/// dropped as it streams, never held whole).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Lines longer than this can't be boundaries and are passed through in pieces.
const MAX_SCANNED_LINE: usize = 8 * 1024;
/// Multipart nesting deeper than this is treated as an opaque leaf by the
/// splitter, and refused at SMTP time (see [`Structure::too_deep`]).
pub const MAX_MIME_DEPTH: usize = 50;

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

/// What the splitter learned about a message's structure as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Structure {
    /// A multipart nested deeper than [`MAX_MIME_DEPTH`] was met.
    pub too_deep: bool,
    /// A header block was longer than [`MAX_HEADER_BLOCK`] and was cut.
    pub header_overflow: bool,
}

/// The splitter. Feed bytes with [`push`](Self::push), then call [`finish`](Self::finish).
#[derive(Debug)]
pub struct Splitter {
    state: State,
    boundaries: Vec<Vec<u8>>,
    line: Vec<u8>,
    /// The current line is too long to be a boundary (or, in a header block, to
    /// fit in it); pass it through as data (or drop it).
    long_line: bool,
    /// Report structure only: no body data events.
    scan_only: bool,
    structure: Structure,
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
            scan_only: false,
            structure: Structure::default(),
        }
    }

    /// A splitter that only learns the structure: body bytes are not copied
    /// into events (for the SMTP DATA phase, which stores the message as it is).
    pub fn scan_only() -> Self {
        Self {
            scan_only: true,
            ..Self::new()
        }
    }

    /// What was learned so far.
    pub fn structure(&self) -> Structure {
        self.structure
    }

    /// Bytes held between calls to [`push`](Self::push): the partial line and the
    /// header block being collected. Bounded by about twice
    /// [`MAX_HEADER_BLOCK`] whatever the input.
    pub fn buffered(&self) -> usize {
        let block = match &self.state {
            State::Headers { block, .. } => block.len(),
            _ => 0,
        };
        self.line.len() + block
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
            } else if self.line_too_long() {
                let line = std::mem::take(&mut self.line);
                self.data_bytes(&line, events);
                self.long_line = true;
            }
        }
    }

    /// Is the partial line already too long to be kept whole? Outside a header
    /// block: longer than a boundary can be. In a header block: longer than the
    /// block may be, so it can never be kept; it is dropped as it streams (and
    /// the block marked cut) instead of being held whole.
    fn line_too_long(&mut self) -> bool {
        match &mut self.state {
            State::Headers { overflow, .. } => {
                let too_long = self.line.len() > MAX_HEADER_BLOCK;
                if too_long {
                    *overflow = true;
                    self.structure.header_overflow = true;
                }
                too_long
            }
            _ => self.line.len() > MAX_SCANNED_LINE,
        }
    }

    /// Ends the input; returns what was learned about the structure.
    pub fn finish(mut self, events: &mut Vec<Event>) -> Structure {
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
        self.structure
    }

    /// Bytes that are leaf content (or skipped), not boundary candidates.
    fn data_bytes(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        let emit = !self.scan_only;
        if let State::Leaf { held_crlf } = &mut self.state {
            if std::mem::take(held_crlf) {
                push_data(emit, events, b"\r\n");
            }
            push_data(emit, events, bytes);
        }
    }

    fn on_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if let State::Headers { block, overflow, .. } = &mut self.state {
            let blank = line == b"\r\n" || line == b"\n";
            if !blank {
                // Once a line did not fit, later ones are dropped too: the block
                // kept is a prefix of the real one, as the SMTP check saw it.
                if !*overflow && block.len() + line.len() <= MAX_HEADER_BLOCK {
                    block.extend_from_slice(line);
                } else {
                    *overflow = true;
                    self.structure.header_overflow = true;
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
        let emit = !self.scan_only;
        if let State::Leaf { held_crlf } = &mut self.state {
            let (content, has_crlf) = match line.strip_suffix(b"\r\n") {
                Some(content) => (content, true),
                None => (line, false),
            };
            if std::mem::replace(held_crlf, has_crlf) {
                push_data(emit, events, b"\r\n");
            }
            push_data(emit, events, content);
        }
    }

    fn headers_done(&mut self, top: bool, block: Vec<u8>, events: &mut Vec<Event>) {
        if top {
            events.push(Event::MessageHeaders(block.clone()));
        }
        match multipart_boundary(&block) {
            Some(boundary) if self.boundaries.len() < MAX_MIME_DEPTH => {
                self.boundaries.push(boundary);
                self.state = State::Skip;
            }
            found => {
                self.structure.too_deep |= found.is_some();
                events.push(Event::PartStart(block));
                self.state = State::Leaf { held_crlf: false };
            }
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
fn push_data(emit: bool, events: &mut Vec<Event>, bytes: &[u8]) {
    if bytes.is_empty() || !emit {
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
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

    /// A multipart nested `depth` levels deep, one text leaf at the bottom.
    pub(crate) fn nested(depth: usize) -> Vec<u8> {
        let mut message = b"From: a@b.c\r\nSubject: deep\r\n".to_vec();
        for level in 0..depth {
            message.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n").as_bytes(),
            );
        }
        message.extend_from_slice(b"Content-Type: text/plain\r\n\r\nbottom\r\n");
        for level in (0..depth).rev() {
            message.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
        }
        message
    }

    fn structure_of(message: &[u8], scan_only: bool) -> (Structure, Vec<Event>) {
        let mut splitter = if scan_only {
            Splitter::scan_only()
        } else {
            Splitter::new()
        };
        let mut events = Vec::new();
        for chunk in message.chunks(64 * 1024) {
            splitter.push(chunk, &mut events);
        }
        (splitter.finish(&mut events), events)
    }

    #[test]
    fn nesting_past_the_cap_is_reported() {
        let (at_cap, events) = structure_of(&nested(MAX_MIME_DEPTH), false);
        assert!(!at_cap.too_deep);
        assert!(events.contains(&Event::PartData(b"bottom".to_vec())));
        assert!(structure_of(&nested(MAX_MIME_DEPTH + 1), false).0.too_deep);
        // Issue 9 #2: 20,000 levels (about 1.4 MB) is reported, without recursion.
        let deep = nested(20_000);
        assert!(deep.len() > 1_000_000);
        let (structure, events) = structure_of(&deep, true);
        assert!(structure.too_deep);
        assert!(
            !events.iter().any(|e| matches!(e, Event::PartData(_))),
            "scan-only mode copies no body data"
        );
    }

    /// Issue 9 #5: a header line of any length is never held whole.
    #[test]
    fn a_huge_header_line_stays_bounded() {
        let mut splitter = Splitter::new();
        let mut events = Vec::new();
        splitter.push(b"From: a@b.c\r\nX-Long: ", &mut events);
        let piece = vec![b'x'; 64 * 1024];
        let mut peak = 0;
        for _ in 0..(50 * 1024 * 1024 / piece.len()) {
            splitter.push(&piece, &mut events);
            peak = peak.max(splitter.buffered());
            assert!(events.is_empty());
        }
        assert!(peak <= MAX_HEADER_BLOCK + piece.len(), "held {peak} bytes");
        splitter.push(b"\r\nSubject: after the long line\r\n\r\nbody\r\n", &mut events);
        let structure = splitter.finish(&mut events);
        assert!(structure.header_overflow && !structure.too_deep);
        // The block kept is the prefix before the line that did not fit.
        assert_eq!(events[0], Event::MessageHeaders(b"From: a@b.c\r\n".to_vec()));
        assert_eq!(events[2], Event::PartData(b"body".to_vec()));
    }

    #[test]
    fn after_a_line_that_does_not_fit_the_header_block_ends() {
        let mut message = b"From: a@b.c\r\n".to_vec();
        for _ in 0..(MAX_HEADER_BLOCK / 1000 - 1) {
            message.extend_from_slice(format!("X-Pad: {}\r\n", "p".repeat(990)).as_bytes());
        }
        message.extend_from_slice(format!("X-Big: {}\r\n", "q".repeat(20_000)).as_bytes());
        message.extend_from_slice(b"Subject: [secure] hidden\r\n\r\nbody\r\n");
        for piece in [1000, 7, 64 * 1024] {
            let events = split(&message, piece);
            let Event::MessageHeaders(block) = &events[0] else {
                panic!()
            };
            assert!(block.len() <= MAX_HEADER_BLOCK);
            assert!(!block.windows(7).any(|w| w == b"Subject"), "piece {piece}");
            assert_eq!(events[2], Event::PartData(b"body".to_vec()));
        }
    }
}
