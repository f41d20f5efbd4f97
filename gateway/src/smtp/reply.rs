//! SMTP replies: a code, an enhanced status code (RFC 3463) and a text.

use std::fmt::Write as _;

/// One reply line (or several, for EHLO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            status,
            text: text.into(),
        }
    }

    /// Writes the reply in wire format. Line breaks in the text never reach the
    /// wire: each becomes a continuation line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split(['\r', '\n']).filter(|l| !l.is_empty()).collect();
        let lines = if lines.is_empty() { vec![""] } else { lines };
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut text = String::new();
            if self.status.is_empty() {
                let _ = write!(text, "{}{sep}{line}\r\n", self.code);
            } else {
                let _ = write!(text, "{}{sep}{} {line}\r\n", self.code, self.status);
            }
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Replies used in more than one place.
pub mod common {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }

    pub fn bad_sequence(what: &str) -> Reply {
        Reply::new(503, "5.5.1", format!("Bad sequence of commands: {what}"))
    }

    pub fn temporary_failure() -> Reply {
        Reply::new(
            451,
            "4.3.0",
            "Temporary failure storing the message; please try again later",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_text_becomes_continuation_lines() {
        let mut out = Vec::new();
        Reply::new(550, "5.7.1", "first\r\nsecond").write_to(&mut out);
        assert_eq!(out, b"550-5.7.1 first\r\n550 5.7.1 second\r\n");
    }
}
