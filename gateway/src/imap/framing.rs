//! Splitting the client's byte stream into whole commands: a line, and for each
//! literal announced at a line's end (`{n}` or `{n+}`, RFC 3501 §4.3 / RFC 7888)
//! the continuation request, its `n` octets and the line after it. Bounded: a
//! line longer than [`MAX_LINE`] or a literal over the limit is refused.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest command line (without literals) we accept.
pub const MAX_LINE: usize = 64 * 1024;

/// What the framer produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command, CRLF included, ready for the codec.
    Command(Vec<u8>),
    /// A line too long, or a literal too large: answered with BAD, input dropped.
    Refused { tag: String, reason: &'static str },
    /// The client is gone.
    Eof,
}

/// Buffered input of one connection.
#[derive(Debug, Default)]
pub struct Input {
    buf: Vec<u8>,
}

impl Input {
    /// Drops whatever was read ahead (after STARTTLS, RFC 3501 §11.1 injection).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Reads one line (CRLF or LF ended), without its end; None at EOF.
    pub async fn line<S: AsyncRead + Unpin>(&mut self, io: &mut S) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill(io).await? {
                return Ok(None);
            }
        }
    }

    async fn fill<S: AsyncRead + Unpin>(&mut self, io: &mut S) -> std::io::Result<bool> {
        // Straight into the buffer: a stack array here would sit in every
        // future that awaits a read (cancel-safe, as IDLE's select! needs).
        self.buf.reserve(16 * 1024);
        let n = io.read_buf(&mut self.buf).await?;
        Ok(n > 0)
    }

    /// Reads a whole command, asking for each synchronising literal.
    pub async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        max_literal: u64,
    ) -> std::io::Result<Frame> {
        let mut command = Vec::new();
        loop {
            let line = match self.line(io).await {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(Frame::Eof),
                Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                    return Ok(Frame::Refused {
                        tag: tag_of(&command),
                        reason: "Command line too long",
                    });
                }
                Err(error) => return Err(error),
            };
            command.extend_from_slice(&line);
            command.extend_from_slice(b"\r\n");
            if command.len() > MAX_LINE * 4 {
                return Ok(Frame::Refused {
                    tag: tag_of(&command),
                    reason: "Command too long",
                });
            }
            let Some((length, sync)) = literal_at_end(&line) else {
                return Ok(Frame::Command(command));
            };
            if length > max_literal {
                if !sync {
                    // The octets are coming anyway: we can't resynchronise.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "literal too large",
                    ));
                }
                return Ok(Frame::Refused {
                    tag: tag_of(&command),
                    reason: "Literal too large",
                });
            }
            if sync {
                io.write_all(b"+ Ready for literal data\r\n").await?;
                io.flush().await?;
            }
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            while self.buf.len() < length {
                if !self.fill(io).await? {
                    return Ok(Frame::Eof);
                }
            }
            command.extend(self.buf.drain(..length));
        }
    }
}

/// `{123}` or `{123+}` at the end of a line: the length and whether it syncs.
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.strip_suffix(b"+") {
        Some(rest) => {
            digits = rest;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, sync))
}

/// The tag a (possibly broken) command starts with, or `*`.
pub fn tag_of(command: &[u8]) -> String {
    let word = command
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let valid = !word.is_empty()
        && word.len() <= 64
        && word
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b));
    if valid {
        String::from_utf8_lossy(word).into_owned()
    } else {
        "*".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"a LOGIN {5}"), Some((5, true)));
        assert_eq!(literal_at_end(b"a LOGIN {5+}"), Some((5, false)));
        assert_eq!(literal_at_end(b"a LOGIN {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {x}"), None);
        assert_eq!(literal_at_end(b"a NOOP"), None);
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP\r\n"), "a1");
        assert_eq!(tag_of(b"* NOOP\r\n"), "*");
        assert_eq!(tag_of(b"+x NOOP\r\n"), "*");
        assert_eq!(tag_of(b""), "*");
    }
}
