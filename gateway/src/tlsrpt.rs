//! SMTP TLS reports (TLS-RPT, RFC 8460): a day's TLS outcomes of direct
//! delivery to one policy domain ([`store::tls_sessions`]) as the JSON report
//! of §4 — grouped by the policy in force (`sts`, `tlsa`, `no-policy-found`),
//! with a summary and the failures by MX host and result type — gzipped into
//! a `multipart/report; report-type="tlsrpt"` mail (§5.3) to each `mailto:`
//! address of the domain's `_smtp._tls` record, DKIM-signed (§5.3 requires it).

use std::collections::BTreeMap;
use std::io::Write as _;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde_json::{Value, json};
use store::tls_sessions::TlsCount;

/// Who sends the reports.
#[derive(Debug, Clone, Copy)]
pub struct Submitter<'a> {
    /// `organization-name`.
    pub organization: &'a str,
    /// This MTA's host name (the submitter in the subject and file name).
    pub hostname: &'a str,
    /// `contact-info`, and the report mail's `From`.
    pub from_address: &'a str,
}

/// The RFC 8460 result types Sealpost reports (§4.3).
pub mod result {
    pub const STARTTLS_NOT_SUPPORTED: &str = "starttls-not-supported";
    pub const CERTIFICATE_HOST_MISMATCH: &str = "certificate-host-mismatch";
    pub const CERTIFICATE_EXPIRED: &str = "certificate-expired";
    pub const CERTIFICATE_NOT_TRUSTED: &str = "certificate-not-trusted";
    pub const VALIDATION_FAILURE: &str = "validation-failure";
    pub const TLSA_INVALID: &str = "tlsa-invalid";
    pub const DNSSEC_INVALID: &str = "dnssec-invalid";
}

/// The RFC 8460 result type of a failed delivery session (its error text),
/// when it failed over TLS; `dane`: the host had TLSA records. A refused
/// connection or a `4xx` is no TLS outcome: `None`.
#[must_use]
pub fn result_of(text: &str, dane: bool) -> Option<&'static str> {
    if text.contains("does not offer STARTTLS") {
        return Some(result::STARTTLS_NOT_SUPPORTED);
    }
    if !text.contains("TLS handshake") {
        return None;
    }
    Some(if dane {
        result::TLSA_INVALID
    } else if text.contains("NotValidForName") {
        result::CERTIFICATE_HOST_MISMATCH
    } else if text.contains("Expired") {
        result::CERTIFICATE_EXPIRED
    } else if text.contains("UnknownIssuer") {
        result::CERTIFICATE_NOT_TRUSTED
    } else {
        result::VALIDATION_FAILURE
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (RFC 3339, UTC).
fn rfc3339(seconds: i64) -> String {
    let (year, month, day) = store::clock::civil_from_days(seconds.div_euclid(86_400));
    let rem = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The JSON report (RFC 8460 §4.4) of `day` (days since 1970-01-01) for one
/// policy domain, from that day's counts for it.
#[must_use]
pub fn report(submitter: Submitter<'_>, report_id: &str, day: i64, domain: &str, counts: &[TlsCount]) -> Value {
    // One policy entry per policy in force: (type, text) → counts.
    let mut policies: BTreeMap<(&str, &str), Vec<&TlsCount>> = BTreeMap::new();
    for count in counts.iter().filter(|c| c.session.policy_domain == domain) {
        policies
            .entry((count.session.policy_type.as_str(), count.session.policy_string.as_str()))
            .or_default()
            .push(count);
    }
    let policies: Vec<Value> = policies
        .into_iter()
        .map(|((policy_type, text), counts)| {
            let successes: i64 = counts
                .iter()
                .filter(|c| c.session.result_type.is_empty())
                .map(|c| c.sessions)
                .sum();
            let failures: Vec<&&TlsCount> = counts.iter().filter(|c| !c.session.result_type.is_empty()).collect();
            let mut policy = json!({ "policy-type": policy_type, "policy-domain": domain });
            if !text.is_empty() {
                policy["policy-string"] = json!(text.lines().collect::<Vec<_>>());
            }
            json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": successes,
                    "total-failure-session-count": failures.iter().map(|c| c.sessions).sum::<i64>(),
                },
                "failure-details": failures.iter().map(|c| json!({
                    "result-type": c.session.result_type,
                    "receiving-mx-hostname": c.session.mx_host,
                    "failed-session-count": c.sessions,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let start = day * 86_400;
    json!({
        "organization-name": submitter.organization,
        "date-range": {
            "start-datetime": rfc3339(start),
            "end-datetime": rfc3339(start + 86_399),
        },
        "contact-info": submitter.from_address,
        "report-id": report_id,
        "policies": policies,
    })
}

/// The report mail (RFC 8460 §5.3) to `to`, unsigned: the report gzipped as
/// an `application/tlsrpt+gzip` part named
/// `submitter!domain!begin!end!id.json.gz`.
///
/// # Errors
/// When the report cannot be compressed or the mail written.
pub fn report_mail(
    submitter: Submitter<'_>,
    to: &str,
    report: &Value,
    domain: &str,
    day: i64,
    now: i64,
) -> std::io::Result<Vec<u8>> {
    let id = report["report-id"].as_str().unwrap_or_default();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(report.to_string().as_bytes())?;
    let gzipped = gzip.finish()?;
    let (begin, end) = (day * 86_400, day * 86_400 + 86_399);
    let file = format!("{}!{domain}!{begin}!{end}!{id}.json.gz", submitter.hostname);
    let text = format!(
        "This is an aggregate TLS report (RFC 8460) from {} about mail to {domain} on {}.\r\n",
        submitter.hostname,
        &rfc3339(begin)[..10]
    );
    // Binary: mail-builder encodes it as base64.
    let attachment = MimePart::new("application/tlsrpt+gzip", gzipped).attachment(file);
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
        vec![
            MimePart::new(ContentType::new("text/plain").attribute("charset", "utf-8"), text),
            attachment,
        ],
    );
    let message_id = format!(
        "{}@{}",
        store::crypto::random_hex(16),
        submitter.from_address.rsplit('@').next().unwrap_or("localhost")
    );
    MessageBuilder::new()
        .from(submitter.from_address)
        .to(to)
        // As RFC 8460 §5.3 writes it, not RFC 2047-encoded.
        .header(
            "Subject",
            Raw::new(format!(
                "Report Domain: {domain} Submitter: {} Report-ID: <{id}>",
                submitter.hostname
            )),
        )
        .message_id(message_id.as_str())
        .date(now)
        .header("TLS-Report-Domain", Raw::new(domain.to_owned()))
        .header("TLS-Report-Submitter", Raw::new(submitter.hostname.to_owned()))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .body(body)
        .write_to_vec()
}

/// The `mailto:` addresses of a `_smtp._tls` TXT record's `rua` (RFC 8460
/// §3); `https:` ones are not used. `None` when the record is not TLS-RPT.
#[must_use]
pub fn mailto_rua(record: &str) -> Option<Vec<String>> {
    let mut fields = record.split(';').map(str::trim);
    if fields.next()? != "v=TLSRPTv1" {
        return None;
    }
    let rua = fields.find_map(|field| field.strip_prefix("rua="))?;
    Some(
        rua.split(',')
            .filter_map(|uri| uri.trim().strip_prefix("mailto:"))
            .map(|address| address.split('?').next().unwrap_or_default().to_owned())
            .filter(|address| store::accounts::normalize_email(address).is_ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests;
