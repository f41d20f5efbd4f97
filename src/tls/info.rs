//! What a certificate says about itself (validity, names, serial), read with
//! x509-parser: when to renew, and which certificate is being served.

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

/// The parts of an end-entity certificate that renewal and logs need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lowercase hex without leading zeros (as `openssl x509 -serial`
    /// prints it, but lowercase).
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// DNS names in the subject alternative names, lowercase.
    pub dns_names: Vec<String>,
}

impl CertInfo {
    /// Reads a DER certificate; `None` when it does not parse.
    pub fn of(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()).ok()?;
        let validity = cert.validity();
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let serial = cert.raw_serial_as_string().replace(':', "");
        Some(Self {
            serial: serial.trim_start_matches('0').to_owned(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            dns_names,
        })
    }

    /// When to renew: `renew_before` seconds before expiry, but never in the first
    /// two thirds of the lifetime (a renewal window longer than a short-lived
    /// certificate's life would otherwise ask for a new one at once, forever).
    pub fn renew_at(&self, renew_before: i64) -> i64 {
        let lifetime = (self.not_after - self.not_before).max(0);
        self.not_after - renew_before.min(lifetime / 3)
    }

    /// Whether the certificate names exactly these domains (in any order).
    pub fn names_exactly(&self, domains: &[String]) -> bool {
        let mut have: Vec<&str> = self.dns_names.iter().map(String::as_str).collect();
        let mut want: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        have.sort_unstable();
        have.dedup();
        want.sort_unstable();
        want.dedup();
        have == want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            serial: "1".into(),
            not_before,
            not_after,
            dns_names: vec!["mail.example.com".into(), "secure.example.com".into()],
        }
    }

    #[test]
    fn renews_before_expiry_but_not_in_a_short_lives_first_two_thirds() {
        let day = 86_400;
        // 90 days, renew 30 days before: at day 60.
        assert_eq!(info(0, 90 * day).renew_at(30 * day), 60 * day);
        // 6 days, renew "30 days before": at day 4, not at once.
        assert_eq!(info(0, 6 * day).renew_at(30 * day), 4 * day);
    }

    #[test]
    fn names_compare_as_sets_ignoring_case() {
        let cert = info(0, 1);
        assert!(cert.names_exactly(&["Secure.example.com".into(), "mail.example.com".into()]));
        assert!(!cert.names_exactly(&["secure.example.com".into()]));
        assert!(!cert.names_exactly(&[
            "secure.example.com".into(),
            "mail.example.com".into(),
            "imap.example.com".into()
        ]));
    }

    #[test]
    fn reads_a_generated_certificate() {
        let generated = rcgen::generate_simple_self_signed(vec!["Mail.Example.com".into()]).unwrap();
        let parsed = CertInfo::of(generated.cert.der()).unwrap();
        assert_eq!(parsed.dns_names, vec!["mail.example.com".to_owned()]);
        assert!(parsed.not_after > parsed.not_before);
        assert!(!parsed.serial.is_empty());
        assert!(CertInfo::of(&CertificateDer::from(vec![1, 2, 3])).is_none());
    }
}
