//! Removes `X-Sealpost-*` header fields (with their folded continuation lines)
//! from a message as it streams out; the body passes untouched.

use store::ingest::headers::MARKER_PREFIX;

/// A streaming header filter. Sans-I/O: feed bytes, collect output.
#[derive(Debug, Default)]
pub(crate) struct MarkerStripper {
    body: bool,
    line: Vec<u8>,
    skipping: bool,
}

impl MarkerStripper {
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.body {
                out.extend_from_slice(data);
                return;
            }
            let end = data.iter().position(|&b| b == b'\n').map_or(data.len(), |i| i + 1);
            self.line.extend_from_slice(&data[..end]);
            data = &data[end..];
            if self.line.ends_with(b"\n") {
                let line = std::mem::take(&mut self.line);
                self.header_line(&line, out);
            }
        }
    }

    pub fn finish(mut self, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.header_line(&line, out);
        }
    }

    fn header_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if line == b"\r\n" || line == b"\n" {
            self.body = true;
            out.extend_from_slice(line);
            return;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            self.skipping = line.len() >= MARKER_PREFIX.len()
                && line[..MARKER_PREFIX.len()].eq_ignore_ascii_case(MARKER_PREFIX.as_bytes());
        }
        if !self.skipping {
            out.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_markers_and_their_folded_lines_only_from_headers() {
        let message = b"From: a@b.c\r\nX-Sealpost-Secure: 1\r\nx-sealpost-notice: long\r\n note\r\nSubject: hi\r\n\r\nX-Sealpost-Secure: body text stays\r\n";
        for piece in [1, 5, 200] {
            let mut stripper = MarkerStripper::default();
            let mut out = Vec::new();
            for chunk in message.chunks(piece) {
                stripper.push(chunk, &mut out);
            }
            stripper.finish(&mut out);
            assert_eq!(
                out,
                b"From: a@b.c\r\nSubject: hi\r\n\r\nX-Sealpost-Secure: body text stays\r\n".to_vec()
            );
        }
    }
}
