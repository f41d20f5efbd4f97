//! What a recipient's copy of a message may show: what a normal mail system
//! would show them (DESIGN.md, "Who is trusted with what"). The original that
//! IMAP serves is sealed without any `X-Sealpost-*` field (the add-in's roles
//! name every recipient, Bcc included, and how each relates to the practice)
//! and without `Bcc` or `Resent-Bcc`.
//!
//! [`HeaderFilter`] drops those fields from the top-level header block as the
//! message streams past: it holds at most one field name, whatever the size of
//! the header block or the message.

/// The blob number of the recipients' copy: defined in [`crate::layout`].
pub use crate::layout::BLOB_VISIBLE;

/// Longer field names are kept: none of the dropped ones is anywhere near it.
const MAX_NAME: usize = 998;

/// Is this a header field no recipient may see?
pub fn hidden_field(name: &[u8]) -> bool {
    let name = name.trim_ascii();
    name.eq_ignore_ascii_case(b"bcc")
        || name.eq_ignore_ascii_case(b"resent-bcc")
        || name
            .get(..crate::ingest::headers::MARKER_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(crate::ingest::headers::MARKER_PREFIX.as_bytes()))
}

#[derive(Debug)]
enum State {
    /// At the start of a header line.
    LineStart,
    /// Reading a field name, up to its colon.
    Name(Vec<u8>),
    /// In a field's value (or its folded continuation), kept or dropped.
    Field { keep: bool },
    /// Past the header block: everything passes.
    Body,
}

/// Streams a message, dropping hidden header fields (with their folded lines).
#[derive(Debug)]
pub struct HeaderFilter {
    state: State,
    /// Whether the field being read (and so its continuation lines) is kept.
    keep: bool,
}

impl Default for HeaderFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderFilter {
    pub fn new() -> Self {
        Self {
            state: State::LineStart,
            keep: true,
        }
    }

    /// Filters the next piece of the message into `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for (at, &byte) in data.iter().enumerate() {
            match &mut self.state {
                State::Body => {
                    out.extend_from_slice(data.get(at..).unwrap_or_default());
                    return;
                }
                State::LineStart => match byte {
                    b' ' | b'\t' => {
                        if self.keep {
                            out.push(byte);
                        }
                        self.state = State::Field { keep: self.keep };
                    }
                    b'\n' => {
                        out.push(byte);
                        self.state = State::Body;
                    }
                    _ => self.state = State::Name(vec![byte]),
                },
                State::Name(name) => match byte {
                    b':' => {
                        self.keep = !hidden_field(name);
                        if self.keep {
                            out.extend_from_slice(name);
                            out.push(byte);
                        }
                        self.state = State::Field { keep: self.keep };
                    }
                    b'\n' => {
                        // The empty line ("\r\n") ends the header block; a line
                        // without a colon is not a field and passes as it is.
                        let end = name.as_slice() == b"\r";
                        out.extend_from_slice(name);
                        out.push(byte);
                        self.keep = true;
                        self.state = if end { State::Body } else { State::LineStart };
                    }
                    _ if name.len() >= MAX_NAME => {
                        out.extend_from_slice(name);
                        out.push(byte);
                        self.keep = true;
                        self.state = State::Field { keep: true };
                    }
                    _ => name.push(byte),
                },
                State::Field { keep } => {
                    if *keep {
                        out.push(byte);
                    }
                    if byte == b'\n' {
                        self.state = State::LineStart;
                    }
                }
            }
        }
    }

    /// Ends the message: a field name cut off by the end is kept.
    pub fn finish(self, out: &mut Vec<u8>) {
        if let State::Name(name) = self.state {
            out.extend_from_slice(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_in_pieces(message: &[u8], piece: usize) -> Vec<u8> {
        let mut filter = HeaderFilter::new();
        let mut out = Vec::new();
        for chunk in message.chunks(piece) {
            filter.push(chunk, &mut out);
        }
        filter.finish(&mut out);
        out
    }

    #[test]
    fn markers_and_bcc_go_with_their_folded_lines_in_any_pieces() {
        let message = b"Received: from x\r\n\tby y\r\nFrom: a@x\r\nTo: p1@y\r\nBcc: p2@y,\r\n p3@y\r\n\
X-Sealpost-Role: p1@y patient,\r\n\thiv-clinic-p2@y patient\r\nx-sealpost-secure: 1\r\n\
Subject: hi\r\nResent-Bcc : q@y\r\nX-Other: keep\r\n\r\nBcc: in the body stays\r\nX-Sealpost-Role: so does this\r\n";
        let expected = b"Received: from x\r\n\tby y\r\nFrom: a@x\r\nTo: p1@y\r\n\
Subject: hi\r\nX-Other: keep\r\n\r\nBcc: in the body stays\r\nX-Sealpost-Role: so does this\r\n";
        for piece in [1, 2, 3, 7, 64, message.len()] {
            assert_eq!(
                String::from_utf8_lossy(&filter_in_pieces(message, piece)),
                String::from_utf8_lossy(expected),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn odd_lines_pass_and_long_names_are_kept() {
        let message = b"not a field\r\nSubject: x\r\n\r\nbody";
        assert_eq!(filter_in_pieces(message, 5), message);
        let long = [b"X".repeat(2000), b": v\r\n\r\nb".to_vec()].concat();
        assert_eq!(filter_in_pieces(&long, 100), long);
        assert_eq!(filter_in_pieces(b"Subj", 2), b"Subj");
        assert!(hidden_field(b"X-SEALPOST-NOTICE"));
        assert!(!hidden_field(b"X-Sealpost"));
    }
}
