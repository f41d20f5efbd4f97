//! Delivery status notifications (RFC 3464): a `multipart/report` with a
//! human-readable part (the `bounce` templates), a `message/delivery-status`
//! part and the original's header (`text/rfc822-headers`, RFC 6522) — never its
//! body, which may be PHI. Sent from the null sender to the original's sender,
//! DKIM-signed like every mail Sealpost writes; never about a DSN itself.

use futures::StreamExt;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use store::Store;
use store::jobs::OutboundItem;

use crate::dkim::Dkim;
use crate::mail::{Bounce, MailKind};

/// At most this much of the original's header goes into the report.
const MAX_HEADER: usize = 32 * 1024;

/// What the report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refused for good (a 5xx, or an address that cannot be used).
    Failed,
    /// Tried until `give_up_after` without success.
    Expired,
    /// Still trying until `until` (Unix seconds).
    Delayed { until: i64 },
}

/// Who writes the reports: this server's name, its sending address and key.
#[derive(Debug, Clone, Copy)]
pub struct Reporter<'a> {
    pub hostname: &'a str,
    pub from_address: &'a str,
    pub dkim: Option<&'a Dkim>,
}

/// Queues a DSN about `item` to its sender. Failing to, only logs: the
/// delivery's own outcome is recorded either way.
pub async fn queue(store: &Store, config: Reporter<'_>, item: &OutboundItem, action: Action, error: &str) {
    if item.mail_from.is_empty() {
        return; // never a report about a report (RFC 3464 §2)
    }
    let headers = original_header(store, item).await;
    let report = Report {
        reporting_mta: &config.hostname,
        from_address: &config.from_address,
        to: &item.mail_from,
        rcpt: &item.rcpt_to,
        action,
        error,
        arrival: item.created_at,
        now: store.now(),
        original_header: &headers,
    };
    let Some(message) = report.write() else {
        return tracing::error!("cannot render a delivery status notification");
    };
    let message = match config.dkim {
        Some(dkim) => dkim.sign(&message),
        None => message,
    };
    if let Err(error) = store.queue().queue_mail(None, "", &item.mail_from, &message).await {
        tracing::error!(%error, "cannot queue a delivery status notification");
    }
}

/// The header block of the queued message (up to the blank line), or nothing
/// if it cannot be read. As queued: its sender wrote it, markers included.
async fn original_header(store: &Store, item: &OutboundItem) -> Vec<u8> {
    let Ok(mut body) = store.queue().outbound_body(item).await else {
        return Vec::new();
    };
    let mut header = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        header.extend_from_slice(&chunk);
        if let Some(end) = find(&header, b"\r\n\r\n") {
            header.truncate(end + 2);
            return header;
        }
        if header.len() > MAX_HEADER {
            break;
        }
    }
    // No end found within the limit: whole lines only.
    header.truncate(MAX_HEADER);
    let end = header.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    header.truncate(end);
    header
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Everything one report says.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub reporting_mta: &'a str,
    pub from_address: &'a str,
    pub to: &'a str,
    pub rcpt: &'a str,
    pub action: Action,
    pub error: &'a str,
    pub arrival: i64,
    pub now: i64,
    pub original_header: &'a [u8],
}

impl Report<'_> {
    /// The RFC 5322 message, unsigned; `None` if the templates fail.
    #[must_use]
    pub fn write(&self) -> Option<Vec<u8>> {
        let rendered = MailKind::Bounce(Bounce {
            rcpt: self.rcpt.to_owned(),
            reason: crate::mail::one_line(self.error),
            hostname: self.reporting_mta.to_owned(),
            delayed: matches!(self.action, Action::Delayed { .. }),
        })
        .render()
        .ok()?;
        let message_id = format!(
            "{}@{}",
            store::crypto::random_hex(16),
            self.from_address.rsplit('@').next().unwrap_or("localhost")
        );
        let parts = vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                rendered.text.clone(),
            ),
            MimePart::new("message/delivery-status", self.delivery_status()).transfer_encoding("7bit"),
            MimePart::new(
                "text/rfc822-headers",
                String::from_utf8_lossy(self.original_header).into_owned(),
            ),
        ];
        let report = MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
            parts,
        );
        MessageBuilder::new()
            .from((rendered.from_name.as_str(), self.from_address))
            .to(self.to)
            .subject(rendered.subject.as_str())
            .message_id(message_id.as_str())
            .date(self.now)
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .body(report)
            .write_to_vec()
            .ok()
    }

    /// The `message/delivery-status` fields: one per-message block, one
    /// per-recipient block (RFC 3464 §2.2, §2.3).
    fn delivery_status(&self) -> String {
        let line = |text: &str| crate::mail::one_line(text);
        let (action, status) = match self.action {
            Action::Failed => ("failed", status_code(self.error).unwrap_or_else(|| "5.0.0".into())),
            Action::Expired => ("failed", "4.4.7".to_owned()),
            Action::Delayed { .. } => ("delayed", status_code(self.error).unwrap_or_else(|| "4.0.0".into())),
        };
        let mut out = format!(
            "Reporting-MTA: dns; {}\r\nArrival-Date: {}\r\n\r\nFinal-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {status}\r\n",
            line(self.reporting_mta),
            rfc2822(self.arrival),
            line(self.rcpt),
        );
        let diagnostic = line(self.error);
        if let Some(reply) = smtp_reply(&diagnostic) {
            out.push_str(&format!("Diagnostic-Code: smtp; {reply}\r\n"));
        }
        out.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc2822(self.now)));
        if let Action::Delayed { until } = self.action {
            out.push_str(&format!("Will-Retry-Until: {}\r\n", rfc2822(until)));
        }
        out
    }
}

/// The SMTP reply inside an error text (`… 550 5.1.1 text`), ASCII only.
fn smtp_reply(error: &str) -> Option<String> {
    let start = error.char_indices().find_map(|(i, _)| {
        let rest = error.get(i..)?;
        let bytes = rest.as_bytes();
        (bytes.len() >= 4
            && matches!(bytes[0], b'4' | b'5')
            && bytes[1].is_ascii_digit()
            && bytes[2].is_ascii_digit()
            && bytes[3] == b' '
            && (i == 0 || error.as_bytes()[i - 1] == b' '))
            .then_some(i)
    })?;
    Some(error[start..].chars().filter(char::is_ascii).take(500).collect())
}

/// The enhanced status code (RFC 3463) in an error text, like `5.1.1`.
fn status_code(error: &str) -> Option<String> {
    error.split_ascii_whitespace().find_map(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        let ok = parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| word.to_owned())
    })
}

fn rfc2822(unix: i64) -> String {
    mail_builder::headers::date::Date::new(unix).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(action: Action, error: &str) -> String {
        let report = Report {
            reporting_mta: "mail.example-dental.com",
            from_address: "secure@example-dental.com",
            to: "ada@smiles.example",
            rcpt: "pat@example.org",
            action,
            error,
            arrival: 1_800_000_000,
            now: 1_800_003_600,
            original_header: b"From: ada@smiles.example\r\nSubject: Secure message from Dr Ada\r\n",
        };
        String::from_utf8(report.write().unwrap()).unwrap()
    }

    #[test]
    fn a_failure_report_has_the_three_parts_and_the_remote_reply() {
        let text = report(Action::Failed, "smarthost refused: 550 5.1.1 no such user");
        assert!(text.contains("multipart/report"), "{text}");
        assert!(text.contains("report-type=\"delivery-status\"") || text.contains("report-type=delivery-status"));
        assert!(text.contains("Content-Type: message/delivery-status"));
        assert!(text.contains("Content-Type: text/rfc822-headers"));
        assert!(text.contains("Action: failed\r\nStatus: 5.1.1\r\n"), "{text}");
        assert!(
            text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
            "{text}"
        );
        assert!(text.contains("Final-Recipient: rfc822; pat@example.org"));
        assert!(text.contains("Subject: Secure message from Dr Ada"));
        assert!(text.contains("Auto-Submitted: auto-replied"));
    }

    #[test]
    fn a_delayed_report_says_until_when_and_an_expired_one_4_4_7() {
        let text = report(
            Action::Delayed { until: 1_800_432_000 },
            "smarthost: 451 4.3.0 try later",
        );
        assert!(text.contains("Action: delayed\r\nStatus: 4.3.0\r\n"), "{text}");
        assert!(text.contains("Will-Retry-Until: "), "{text}");
        assert!(text.contains("Subject: Delayed mail"), "{text}");
        let expired = report(Action::Expired, "smarthost connect: refused");
        assert!(expired.contains("Action: failed\r\nStatus: 4.4.7\r\n"), "{expired}");
        assert!(!expired.contains("Diagnostic-Code"), "no reply to quote: {expired}");
    }

    #[test]
    fn a_hostile_reply_cannot_add_a_field_or_header() {
        let text = report(
            Action::Failed,
            "550 5.1.1 bad\r\nAction: delivered\r\nBcc: x@example.org",
        );
        assert_eq!(text.matches("\r\nAction: ").count(), 1, "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }
}
