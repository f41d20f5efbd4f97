//! The state of one DATA phase, apart from the session: the stream's end
//! (smtp-proto's receiver), line endings normalised to CRLF (a bare LF or CR
//! could let a downstream server see a different end of message: SMTP
//! smuggling), the header block kept for classification, and the size so far.

use smtp_proto::request::receiver::DataReceiver;
use store::ingest::mime::{MAX_HEADER_BLOCK, Splitter};
use store::spool::SpoolWriter;

/// A DATA phase in progress.
pub(crate) struct DataPhase {
    pub(super) receiver: DataReceiver,
    pub(super) spool: Option<SpoolWriter>,
    pub(super) header_block: Vec<u8>,
    pub(super) headers_done: bool,
    /// Most header bytes the client may send (what the store's splitter keeps,
    /// less our own trace header).
    pub(super) header_limit: usize,
    /// The header block went past `header_limit`: the message is refused, since
    /// classifying only part of it could let a secure message out in clear.
    pub(super) header_overflow: bool,
    /// Learns the MIME structure as the data streams (nesting depth).
    pub(super) structure: Splitter,
    /// The attachments' names and sizes, for the attachment rules.
    pub(super) attachments: super::attachments::AttachmentScan,
    pub(super) size: u64,
    pub(super) too_big: bool,
    pub(super) last_cr: bool,
    pub(super) failed: bool,
}

impl DataPhase {
    pub(super) fn new(spool: Option<SpoolWriter>, reserved: usize) -> Self {
        Self {
            receiver: DataReceiver::new(),
            spool,
            header_block: Vec::new(),
            headers_done: false,
            header_limit: MAX_HEADER_BLOCK.saturating_sub(reserved),
            header_overflow: false,
            structure: Splitter::scan_only(),
            attachments: super::attachments::AttachmentScan::new(),
            size: 0,
            too_big: false,
            last_cr: false,
            failed: false,
        }
    }

    pub(crate) async fn discard(self) {
        if let Some(spool) = self.spool {
            spool.discard().await;
        }
    }

    /// Normalises line endings: a bare LF or a bare CR becomes CRLF.
    pub(super) fn normalize(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            match b {
                b'\n' if !self.last_cr => out.extend_from_slice(b"\r\n"),
                b'\n' => out.push(b'\n'),
                _ if self.last_cr => out.extend_from_slice(&[b'\n', b]),
                _ => out.push(b),
            }
            // A CR directly followed by another CR leaves the first bare: it was
            // completed above by pushing LF before the second.
            self.last_cr = b == b'\r';
        }
    }

    /// Keeps the header block (up to the first empty line) for classification;
    /// a block longer than the limit marks the message as refused.
    pub(super) fn capture_headers(&mut self, data: &[u8]) {
        if self.headers_done {
            return;
        }
        let start = self.header_block.len().saturating_sub(3);
        let room = (self.header_limit + 4).saturating_sub(self.header_block.len());
        self.header_block.extend_from_slice(&data[..data.len().min(room)]);
        if let Some(end) = find(&self.header_block[start..], b"\r\n\r\n") {
            self.header_block.truncate(start + end + 2);
            self.headers_done = true;
        } else if self.header_block.len() > self.header_limit {
            self.headers_done = true;
        }
        if self.headers_done && self.header_block.len() > self.header_limit {
            self.header_overflow = true;
            self.header_block = Vec::new();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase() -> DataPhase {
        DataPhase::new(None, 0)
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        let mut p = phase();
        let mut out = Vec::new();
        p.normalize(b"a\nb\rc\r\nd\r", &mut out);
        p.normalize(b"\ne\r\r\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\nd\r\ne\r\n\r\n");
    }

    #[test]
    fn header_capture_stops_at_blank_line_across_pieces() {
        let mut p = phase();
        p.capture_headers(b"Subject: x\r\n");
        p.capture_headers(b"From: a@b.c\r");
        p.capture_headers(b"\n\r\nbody\r\n");
        assert!(p.headers_done);
        assert_eq!(p.header_block, b"Subject: x\r\nFrom: a@b.c\r\n");
        assert!(!p.header_overflow);
    }

    #[test]
    fn an_overlong_header_block_is_marked_refused() {
        let mut p = DataPhase::new(None, 100);
        let line = format!("X-Filler: {}\r\n", "a".repeat(988));
        for _ in 0..=(MAX_HEADER_BLOCK / line.len()) {
            p.capture_headers(line.as_bytes());
        }
        p.capture_headers(b"X-Sealpost-Secure: 1\r\n\r\nbody\r\n");
        assert!(p.headers_done);
        assert!(p.header_overflow);
    }
}
