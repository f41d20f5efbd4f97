//! What the gateway needs to know from a message's header block: is it marked
//! secure, who sent it, and the add-in's role and notice headers (DESIGN.md, "The
//! contract"). The subject is PHI and is returned only wrapped in [`Sealed`].

use mail_parser::MessageParser;

use crate::Sealed;
use crate::accounts::Relationship;

/// Header names the add-in sets; all `X-Sealpost-*` headers are stripped before
/// anything leaves the gateway.
pub const SECURE_HEADER: &str = "X-Sealpost-Secure";
pub const ROLE_HEADER: &str = "X-Sealpost-Role";
pub const NOTICE_HEADER: &str = "X-Sealpost-Notice";
pub const MARKER_PREFIX: &str = "x-sealpost-";

/// Facts from one header block.
#[derive(Debug, Clone, Default)]
pub struct HeaderFacts {
    /// `X-Sealpost-Secure: 1` (or true/yes) is present.
    pub marked_secure: bool,
    /// The subject carries the secure tag, e.g. `[secure]`.
    pub tagged_secure: bool,
    /// The first `From:` address, lower-cased.
    pub from: Option<String>,
    pub from_name: Option<String>,
    /// The subject with the secure tag removed.
    pub subject: Sealed<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub date: Option<i64>,
    pub message_id: Option<String>,
    /// The raw `In-Reply-To` and `References` values, in that order: the
    /// messages this one answers (its conversation, `messages/conversation.rs`).
    pub replies_to: Vec<String>,
    /// `X-Sealpost-Role: <address> <role>` headers that parsed.
    pub roles: Vec<(String, Relationship)>,
    /// `X-Sealpost-Notice`, decoded, trimmed and bounded.
    pub notice: Option<String>,
}

impl HeaderFacts {
    pub fn is_secure(&self) -> bool {
        self.marked_secure || self.tagged_secure
    }
}

fn addresses(list: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    list.map(|a| {
        a.iter()
            .filter_map(|addr| addr.address().map(str::to_ascii_lowercase))
            .collect()
    })
    .unwrap_or_default()
}

/// Reads a header block (RFC 5322, with RFC 2047 encoded words decoded).
pub fn inspect(block: &[u8], subject_tag: &str) -> HeaderFacts {
    let parser = MessageParser::new()
        .with_minimal_headers()
        .with_message_ids()
        .header_text(SECURE_HEADER)
        .header_text(ROLE_HEADER)
        .header_text(NOTICE_HEADER);
    let Some(parsed) = parser.parse_headers(block) else {
        return HeaderFacts::default();
    };
    let raw_text = |name: &str| -> Vec<String> {
        parsed
            .header_values(name)
            .filter_map(|v| {
                v.as_text()
                    .map(str::to_owned)
                    .or_else(|| v.as_text_list().map(|l| l.join(" ")))
            })
            .collect()
    };
    let marked_secure = raw_text(SECURE_HEADER)
        .iter()
        .any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    let subject = parsed.subject().unwrap_or_default().to_owned();
    let (subject, tagged_secure) = strip_tag(&subject, subject_tag);
    // One pair per header, or several in one header separated by commas: Office.js
    // (`internetHeaders.setAsync`) can set a header name only once.
    let roles = raw_text(ROLE_HEADER)
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|v| {
            let (address, role) = v.trim().rsplit_once(char::is_whitespace)?;
            let address = crate::accounts::normalize_email(address).ok()?;
            Some((address, Relationship::parse(role)?))
        })
        .collect();
    let notice = raw_text(NOTICE_HEADER)
        .into_iter()
        .next()
        .map(|n| {
            n.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(500)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty());
    let from = parsed.from().and_then(|f| f.first());
    HeaderFacts {
        marked_secure,
        tagged_secure,
        from: from.and_then(|a| a.address()).map(str::to_ascii_lowercase),
        from_name: from.and_then(|a| a.name()).map(str::to_owned),
        subject: Sealed::new(subject),
        to: addresses(parsed.to()),
        cc: addresses(parsed.cc()),
        date: parsed.date().map(mail_parser::DateTime::to_timestamp),
        message_id: parsed.message_id().map(str::to_owned),
        replies_to: ["In-Reply-To", "References"]
            .iter()
            .flat_map(|name| raw_header_values(block, name))
            .collect(),
        roles,
        notice,
    }
}

/// The values of every header named `name` (case-insensitive) in a raw header
/// block, unfolded (RFC 5322 §2.2.3) and lossily decoded; encoded words are left
/// as they are. For headers that mail-parser does not keep, or keeps only once.
pub fn raw_header_values(block: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(block);
    let mut values: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                value.push_str(line);
            }
            continue;
        }
        values.extend(current.take());
        if let Some((field, value)) = line.split_once(':')
            && field.trim_end().eq_ignore_ascii_case(name)
        {
            current = Some(value.to_owned());
        }
    }
    values.extend(current);
    values.into_iter().map(|v| v.trim().to_owned()).collect()
}

/// Removes every case-insensitive occurrence of `tag` from a subject.
///
/// Matching compares the lower-case form of each character as it goes, and the
/// subject is only ever cut at positions found in the subject itself: a
/// character whose lower-case form has another length (`İ`, `ẞ`) cannot move a
/// cut into the middle of another character.
fn strip_tag(subject: &str, tag: &str) -> (String, bool) {
    let tag: Vec<char> = tag.chars().flat_map(char::to_lowercase).collect();
    if tag.is_empty() {
        return (subject.to_owned(), false);
    }
    let mut out = String::with_capacity(subject.len());
    let mut found = false;
    let mut rest = subject;
    while let Some(first) = rest.chars().next() {
        if let Some(after) = strip_prefix_folded(rest, &tag) {
            found = true;
            rest = after;
        } else {
            out.push(first);
            rest = rest.get(first.len_utf8()..).unwrap_or_default();
        }
    }
    if !found {
        return (subject.to_owned(), false);
    }
    (out.split_whitespace().collect::<Vec<_>>().join(" "), true)
}

/// `text` without a leading `tag` (given lower-cased), compared case-insensitively
/// character by character; `None` when `text` does not start with it.
fn strip_prefix_folded<'a>(text: &'a str, tag: &[char]) -> Option<&'a str> {
    let mut want = tag.iter();
    for (at, c) in text.char_indices() {
        for lower in c.to_lowercase() {
            if want.next() != Some(&lower) {
                return None;
            }
        }
        if want.as_slice().is_empty() {
            return text.get(at + c.len_utf8()..);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn reads_marker_roles_notice_and_strips_tag() {
        let block =
            b"From: \"Dr. Ada\" <Ada@Clinic.example>\r\nTo: pat@example.com\r\nSubject: [SECURE] Lab results\r\n\
X-Sealpost-Secure: 1\r\nX-Sealpost-Role: pat@example.com patient\r\nX-Sealpost-Role: bad-line\r\n\
X-Sealpost-Notice: =?utf-8?q?Your_results_are_ready?=\r\n";
        let facts = inspect(block, "[secure]");
        assert!(facts.marked_secure && facts.tagged_secure);
        assert_eq!(facts.from.as_deref(), Some("ada@clinic.example"));
        assert_eq!(facts.from_name.as_deref(), Some("Dr. Ada"));
        assert_eq!(facts.subject.expose(), "Lab results");
        assert_eq!(facts.roles, vec![("pat@example.com".to_owned(), Relationship::Patient)]);
        assert_eq!(facts.notice.as_deref(), Some("Your results are ready"));
        assert!(!format!("{facts:?}").contains("Lab results"));
    }

    #[test]
    fn several_roles_in_one_header() {
        let block = b"From: ada@clinic.example\r\nX-Sealpost-Secure: 1\r\n\
X-Sealpost-Role: pat@example.com patient, Bob@Other.example doctor_other_practice,\r\n nope\r\n\
X-Sealpost-Role: sam@clinic.example staff_in_practice\r\n";
        let facts = inspect(block, "[secure]");
        assert_eq!(
            facts.roles,
            vec![
                ("pat@example.com".to_owned(), Relationship::Patient),
                ("bob@other.example".to_owned(), Relationship::DoctorOtherPractice),
                ("sam@clinic.example".to_owned(), Relationship::StaffInPractice),
            ]
        );
    }

    #[test]
    fn raw_values_are_unfolded_and_matched_by_name() {
        let block = b"References: <a@x>\r\n\t<b@x>\r\nSubject: s\r\nreferences : <c@x>\nX-Other: <d@x>\r\n";
        assert_eq!(raw_header_values(block, "References"), vec!["<a@x>\t<b@x>", "<c@x>"]);
        assert!(raw_header_values(block, "In-Reply-To").is_empty());
    }

    #[test]
    fn unmarked_mail_is_not_secure() {
        let facts = inspect(
            b"From: a@b.example\r\nSubject: lunch\r\nX-Sealpost-Secure: 0\r\n",
            "[secure]",
        );
        assert!(!facts.is_secure());
        assert_eq!(
            strip_tag("Re: [Secure] x [secure]", "[secure]"),
            ("Re: x".to_owned(), true)
        );
    }

    /// Issue 9 #1: a character whose lower-case form is longer (`İ` is 2 bytes,
    /// "i̇" is 3) used to move the cut into the middle of `é` and panic.
    #[test]
    fn tag_next_to_characters_that_change_length_when_lower_cased() {
        assert_eq!(strip_tag("İ[secure]éΩ", "[secure]"), ("İéΩ".to_owned(), true));
        assert_eq!(strip_tag("İİİ [SECURE]", "[secure]"), ("İİİ".to_owned(), true));
        assert_eq!(strip_tag("ẞ [Secure]ẞ x", "[secure]"), ("ẞ ẞ x".to_owned(), true));
        assert_eq!(strip_tag("İ[secur", "[secure]"), ("İ[secur".to_owned(), false));
        assert_eq!(strip_tag("plain", ""), ("plain".to_owned(), false));
        // The tag itself may hold such characters.
        assert_eq!(strip_tag("a İ b", "i̇"), ("a b".to_owned(), true));
        let facts = inspect("Subject: İ[secure]éΩ\r\n".as_bytes(), "[secure]");
        assert!(facts.tagged_secure);
        assert_eq!(facts.subject.expose(), "İéΩ");
    }
}
