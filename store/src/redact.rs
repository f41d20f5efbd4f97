//! What of a delivery failure the database keeps. A remote server's reply text
//! often repeats the recipient's address and sometimes their name ("mailbox of
//! Jane Doe is full"), so `outbound.last_error` keeps only our own words for
//! where it failed and the reply code with its enhanced status code (RFC 5321
//! section 4.2, RFC 3463): enough to tell a full mailbox from an unknown user or a
//! greylisting. The full text goes to the sender in the bounce only; it is
//! neither stored nor logged.

/// The storable form of a delivery error, e.g. `smarthost refused: 550 5.1.1`.
pub fn delivery_error_summary(error: &str) -> String {
    let (head, rest) = match error.split_once(':') {
        Some((head, rest)) => (head, Some(rest)),
        None => (error, None),
    };
    // Our own prefixes are short plain words; anything else may be remote text.
    let head = head.split(['"', '<', '(', '[']).next().unwrap_or_default().trim();
    let ours =
        !head.is_empty() && head.len() <= 40 && head.chars().all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '-');
    let mut summary = if ours {
        head.to_owned()
    } else {
        "delivery error".to_owned()
    };
    if let Some((code, enhanced)) = rest.and_then(reply_codes) {
        summary.push_str(": ");
        summary.push_str(code);
        if let Some(enhanced) = enhanced {
            summary.push(' ');
            summary.push_str(enhanced);
        }
    }
    summary
}

/// The reply code at the start of `text` and the enhanced status code after it,
/// when there is one whose class matches (`550 5.1.1`, `451-4.7.1`).
fn reply_codes(text: &str) -> Option<(&str, Option<&str>)> {
    let text = text.trim_start();
    let code = text.get(..3)?;
    let bytes = code.as_bytes();
    if !(b'2'..=b'5').contains(&bytes[0]) || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let after = &text[3..];
    if !(after.is_empty() || after.starts_with([' ', '-'])) {
        return None;
    }
    let candidate = after
        .get(1..)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let parts: Vec<&str> = candidate.split('.').collect();
    let enhanced = (parts.len() == 3
        && parts[0] == &code[..1]
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())))
    .then_some(candidate);
    Some((code, enhanced))
}

#[cfg(test)]
mod tests {
    use super::delivery_error_summary as summary;

    #[test]
    fn keeps_our_words_and_the_codes_never_the_remote_text() {
        let cases = [
            (
                "smarthost refused: 550 5.1.1 <jane.doe@clinic.example>: Recipient address rejected: User unknown",
                "smarthost refused: 550 5.1.1",
            ),
            (
                "smarthost: 452-4.2.2 The mailbox of Jane Doe is full 452 4.2.2 try later",
                "smarthost: 452 4.2.2",
            ),
            (
                "smarthost refused: 554 Jane Doe <jd@x.example> rejected",
                "smarthost refused: 554",
            ),
            ("smarthost: 451 4.7.1", "smarthost: 451 4.7.1"),
            ("smarthost timed out", "smarthost timed out"),
            ("unusable address \"jane@x.example\"", "unusable address"),
            (
                "smarthost connect: Connection refused (os error 111)",
                "smarthost connect",
            ),
            ("jane@x.example: nope 550 5.1.1", "delivery error"),
            ("", "delivery error"),
            ("smarthost refused: 5", "smarthost refused"),
            ("smarthost refused: 550 4.1.1 class mismatch", "smarthost refused: 550"),
        ];
        for (error, expected) in cases {
            assert_eq!(summary(error), expected, "{error:?}");
        }
    }
}
