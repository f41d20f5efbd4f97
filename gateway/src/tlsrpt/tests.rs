//! The report's JSON shape (RFC 8460 §4.4), its mail (§5.3), and `rua`.

use std::io::Read as _;

use store::tls_sessions::{TlsCount, TlsSession};

use super::*;

fn count(policy_type: &str, text: &str, mx: &str, result: &str, sessions: i64) -> TlsCount {
    TlsCount {
        session: TlsSession {
            policy_domain: "partner.example".into(),
            policy_type: policy_type.into(),
            policy_string: text.into(),
            mx_host: mx.into(),
            result_type: result.into(),
        },
        sessions,
    }
}

const SUBMITTER: Submitter<'static> = Submitter {
    organization: "Smiles Dental",
    hostname: "mail.gateway.example",
    from_address: "tls-reports@gateway.example",
};

fn sample() -> Value {
    let sts = "version: STSv1\nmode: enforce\nmx: mx1.partner.example\nmax_age: 86400";
    let counts = [
        count("sts", sts, "", "", 7),
        count("sts", sts, "mx2.partner.example", result::CERTIFICATE_HOST_MISMATCH, 2),
        count("no-policy-found", "", "", "", 1),
        count(
            "no-policy-found",
            "",
            "mx9.other.example",
            result::STARTTLS_NOT_SUPPORTED,
            5,
        ),
    ];
    // The last one is another domain's: not in this report.
    let mut other = counts[3].clone();
    other.session.policy_domain = "other.example".into();
    let mut all = counts[..3].to_vec();
    all.push(other);
    report(SUBMITTER, "2026-12-01.1", 20_423, "partner.example", &all)
}

#[test]
fn the_report_has_rfc_8460_s_shape() {
    let report = sample();
    assert_eq!(report["organization-name"], "Smiles Dental");
    assert_eq!(report["contact-info"], "tls-reports@gateway.example");
    assert_eq!(report["report-id"], "2026-12-01.1");
    assert_eq!(report["date-range"]["start-datetime"], "2025-12-01T00:00:00Z");
    assert_eq!(report["date-range"]["end-datetime"], "2025-12-01T23:59:59Z");
    let policies = report["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "{report:#}");
    let none = &policies[0];
    assert_eq!(none["policy"]["policy-type"], "no-policy-found");
    assert_eq!(none["policy"]["policy-domain"], "partner.example");
    assert!(none["policy"].get("policy-string").is_none());
    assert_eq!(none["summary"]["total-successful-session-count"], 1);
    assert_eq!(none["summary"]["total-failure-session-count"], 0);
    let sts = &policies[1];
    assert_eq!(sts["policy"]["policy-type"], "sts");
    assert_eq!(sts["policy"]["policy-string"][1], "mode: enforce");
    assert_eq!(sts["summary"]["total-successful-session-count"], 7);
    assert_eq!(sts["summary"]["total-failure-session-count"], 2);
    let failure = &sts["failure-details"][0];
    assert_eq!(failure["result-type"], "certificate-host-mismatch");
    assert_eq!(failure["receiving-mx-hostname"], "mx2.partner.example");
    assert_eq!(failure["failed-session-count"], 2);
}

#[test]
fn the_mail_carries_the_gzipped_report_and_is_signed() {
    let report = sample();
    let mail = report_mail(
        SUBMITTER,
        "tlsrpt@partner.example",
        &report,
        "partner.example",
        20_423,
        1_765_000_000,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    crate::dkim::generate(&key).unwrap();
    let dkim = crate::dkim::Dkim::load(&key, "gateway.example", "s").unwrap().unwrap();
    let signed = dkim.sign(&mail);
    let text = String::from_utf8_lossy(&signed).into_owned();
    assert!(
        text.starts_with("DKIM-Signature: ") && text.contains("d=gateway.example"),
        "{text}"
    );
    assert!(text.contains("TLS-Report-Domain: partner.example"), "{text}");
    assert!(text.contains("TLS-Report-Submitter: mail.gateway.example"), "{text}");
    // As RFC 8460 §5.3 writes it (folded, not RFC 2047-encoded).
    assert!(
        text.replace("\r\n ", " ").contains(
            "Subject: Report Domain: partner.example Submitter: mail.gateway.example Report-ID: <2026-12-01.1>"
        ),
        "{text}"
    );
    assert!(text.contains("Content-Transfer-Encoding: base64"), "{text}");
    assert!(text.is_ascii(), "a mail of 7-bit lines: {text}");
    let parsed = mail_parser::MessageParser::default().parse(&signed).unwrap();
    let content_type = parsed.content_type().unwrap();
    assert_eq!(content_type.c_type, "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(content_type.attribute("report-type"), Some("tlsrpt"));
    let attachment = parsed.attachment(0).unwrap();
    use mail_parser::MimeHeaders as _;
    assert_eq!(
        attachment.attachment_name(),
        Some("mail.gateway.example!partner.example!1764547200!1764633599!2026-12-01.1.json.gz")
    );
    let mut json = String::new();
    flate2::read::GzDecoder::new(attachment.contents())
        .read_to_string(&mut json)
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), report);
}

#[test]
fn rua_gives_the_mailto_addresses() {
    assert_eq!(
        mailto_rua("v=TLSRPTv1; rua=mailto:a@partner.example,https://r.example/x, mailto:b@partner.example?subject=x"),
        Some(vec!["a@partner.example".to_owned(), "b@partner.example".to_owned()])
    );
    assert_eq!(mailto_rua("v=TLSRPTv1;rua=https://r.example/x"), Some(Vec::new()));
    assert_eq!(mailto_rua("v=spf1 -all"), None);
    assert_eq!(mailto_rua("v=TLSRPTv1; rua=mailto:not an address"), Some(Vec::new()));
}

#[test]
fn only_tls_failures_get_a_result_type() {
    let handshake = "smarthost TLS handshake: invalid peer certificate: NotValidForName";
    assert_eq!(result_of(handshake, false), Some(result::CERTIFICATE_HOST_MISMATCH));
    assert_eq!(result_of(handshake, true), Some(result::TLSA_INVALID));
    assert_eq!(
        result_of(
            "smarthost TLS handshake: invalid peer certificate: UnknownIssuer",
            false
        ),
        Some(result::CERTIFICATE_NOT_TRUSTED)
    );
    assert_eq!(
        result_of("smarthost does not offer STARTTLS, which is required", false),
        Some(result::STARTTLS_NOT_SUPPORTED)
    );
    assert_eq!(result_of("smarthost: 451 4.3.0 try later", false), None);
    assert_eq!(result_of("cannot connect to smarthost: refused", true), None);
}
