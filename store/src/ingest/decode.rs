//! Streaming Content-Transfer-Encoding decoders (RFC 2045 §6): base64 and
//! quoted-printable, fed in arbitrary pieces, lenient about junk as mail clients are.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A transfer decoder for one part's body.
#[derive(Debug)]
pub enum Decoder {
    Identity,
    Base64 { quad: Vec<u8>, done: bool },
    QuotedPrintable { line: Vec<u8> },
}

impl Decoder {
    /// Picks the decoder for a `Content-Transfer-Encoding` value.
    pub fn for_encoding(encoding: Option<&str>) -> Self {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            Some("base64") => Self::Base64 {
                quad: Vec::new(),
                done: false,
            },
            Some("quoted-printable") => Self::QuotedPrintable { line: Vec::new() },
            _ => Self::Identity,
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Identity => out.extend_from_slice(data),
            Self::Base64 { quad, done } => {
                for &b in data {
                    if *done {
                        break;
                    }
                    match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => quad.push(b),
                        b'=' => *done = true,
                        _ => continue,
                    }
                    if quad.len() == 64 * 1024 {
                        decode_base64(quad, out);
                    }
                }
            }
            Self::QuotedPrintable { line } => {
                for &b in data {
                    line.push(b);
                    if b == b'\n' || line.len() >= 64 * 1024 {
                        decode_qp_line(line, out);
                        line.clear();
                    }
                }
            }
        }
    }

    pub fn finish(self, out: &mut Vec<u8>) {
        match self {
            Self::Identity => {}
            Self::Base64 { mut quad, .. } => {
                // A lone trailing character can't encode a byte.
                if quad.len() % 4 == 1 {
                    quad.pop();
                }
                while quad.len() % 4 != 0 {
                    quad.push(b'=');
                }
                out.extend_from_slice(&LENIENT.decode(&quad).unwrap_or_default());
            }
            Self::QuotedPrintable { line } => decode_qp_line(&line, out),
        }
    }
}

fn decode_base64(quad: &mut Vec<u8>, out: &mut Vec<u8>) {
    let whole = quad.len() - quad.len() % 4;
    let take = if whole == quad.len() { quad.len() } else { whole };
    let tail = quad.split_off(take);
    if let Ok(bytes) = LENIENT.decode(quad.as_slice()) {
        out.extend_from_slice(&bytes);
    } else if !quad.is_empty() {
        // Only the last, partial group can fail; decode it padded.
        let mut padded = quad.clone();
        while !padded.len().is_multiple_of(4) {
            padded.push(b'=');
        }
        out.extend_from_slice(&LENIENT.decode(&padded).unwrap_or_default());
    }
    *quad = tail;
}

fn decode_qp_line(line: &[u8], out: &mut Vec<u8>) {
    let mut rest = line;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'=' {
            if tail.starts_with(b"\r\n")
                || tail.starts_with(b"\n")
                || tail
                    .iter()
                    .all(|c| *c == b' ' || *c == b'\t' || *c == b'\r' || *c == b'\n')
            {
                return; // soft line break
            }
            if let [high, low, after @ ..] = tail
                && let (Some(h), Some(l)) = (hex(*high), hex(*low))
            {
                out.push(h << 4 | l);
                rest = after;
                continue;
            }
        }
        out.push(b);
        rest = tail;
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn run(encoding: &str, input: &[u8], piece: usize) -> Vec<u8> {
        let mut decoder = Decoder::for_encoding(Some(encoding));
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            decoder.push(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn base64_in_any_piece_size() {
        let plain: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&plain);
        let wrapped: Vec<u8> = encoded
            .as_bytes()
            .chunks(76)
            .flat_map(|l| [l, b"\r\n"].concat())
            .collect();
        for piece in [1, 5, 77, 10_000] {
            let got = run("base64", &wrapped, piece);
            assert_eq!(got.len(), plain.len(), "piece {piece}");
            assert!(got == plain, "piece {piece}");
        }
        assert_eq!(run("BASE64", b"SGVsbG8", 3), b"Hello");
        assert_eq!(run("base64", b"!!SGV\x00sbG8=junk", 2), b"Hello");
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(
            run("quoted-printable", b"caf=C3=A9 =\r\nau lait\r\n=3D", 4),
            "café au lait\r\n=".as_bytes()
        );
        assert_eq!(run("quoted-printable", b"bad =ZZ escape", 1), b"bad =ZZ escape");
    }

    #[test]
    fn identity_for_other_encodings() {
        assert_eq!(run("8bit", b"abc\r\n", 2), b"abc\r\n");
        assert_eq!(run("x-unknown", b"abc", 1), b"abc");
    }
}
