//! `[tls]`: the certificate every TLS listener serves, where it comes from (files,
//! or an ACME CA such as Let's Encrypt), and how it is kept fresh.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Let's Encrypt's production directory (RFC 8555 §7.1.1).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain. Default `<data_dir>/certs/server.crt`, generated when absent.
    pub cert: Option<PathBuf>,
    /// PEM private key. Default `<data_dir>/certs/server.key`.
    pub key: Option<PathBuf>,
    /// Seconds between looks at the certificate files; changed files are loaded
    /// for new connections without a restart. 0 turns the watch off (SIGHUP still
    /// reloads).
    pub watch_interval: u64,
    /// Names to get a certificate for from an ACME CA (RFC 8555). Empty: ACME is
    /// off. Each must resolve to this server, whose `acme_http_listen` must be
    /// reachable on port 80 under that name (HTTP-01).
    pub acme_domains: Vec<String>,
    /// The CA's ACME directory URL.
    pub acme_directory: String,
    /// Contact URLs for the ACME account, e.g. `mailto:it@example-dental.com`.
    pub acme_contact: Vec<String>,
    /// PEM file of the CA that signs the ACME server's own HTTPS certificate, for a
    /// private ACME CA; unset: the system's trusted roots.
    pub acme_ca: Option<PathBuf>,
    /// Where the HTTP-01 challenge responder listens (the CA connects to port 80).
    pub acme_http_listen: String,
    /// Renew this many days before the certificate expires (at the latest when a
    /// third of its lifetime is left).
    pub acme_renew_days: u32,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            watch_interval: 60,
            acme_domains: Vec::new(),
            acme_directory: LETS_ENCRYPT.into(),
            acme_contact: Vec::new(),
            acme_ca: None,
            acme_http_listen: "0.0.0.0:80".into(),
            acme_renew_days: 30,
        }
    }
}

impl Tls {
    /// Whether certificates come from an ACME CA.
    pub fn acme(&self) -> bool {
        !self.acme_domains.is_empty()
    }

    /// Adds what is wrong with `[tls]` to `problems`.
    pub fn problems(&self, problems: &mut Vec<String>) {
        if !self.acme() {
            return;
        }
        for domain in &self.acme_domains {
            if !is_dns_name(domain) {
                problems.push(format!(
                    "tls.acme_domains: {domain:?} is not a host name like secure.example-dental.com (no wildcards, no addresses)"
                ));
            }
        }
        if !self.acme_directory.starts_with("https://") {
            problems.push(format!(
                "tls.acme_directory {:?} must be an https:// URL",
                self.acme_directory
            ));
        }
        for contact in &self.acme_contact {
            if !contact.starts_with("mailto:") || contact.len() <= "mailto:".len() {
                problems.push("tls.acme_contact: each contact must be a mailto: URL".into());
            }
        }
        if let Some(path) = &self.acme_ca
            && !path.is_file()
        {
            problems.push(format!("tls.acme_ca {} is not a file (PEM)", path.display()));
        }
        if self.acme_http_listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "tls.acme_http_listen {:?} is not an address like 0.0.0.0:80",
                self.acme_http_listen
            ));
        }
        if !(1..=365).contains(&self.acme_renew_days) {
            problems.push("tls.acme_renew_days must be between 1 and 365".into());
        }
    }
}

/// A host name of letters, digits and hyphens in dot-separated labels, with at
/// least one dot (RFC 1123).
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_settings_are_checked_only_when_acme_is_on() {
        let mut tls = Tls {
            acme_directory: "http://ca.example".into(),
            ..Tls::default()
        };
        let mut problems = Vec::new();
        tls.problems(&mut problems);
        assert!(problems.is_empty(), "off: {problems:?}");

        tls.acme_domains = vec!["secure.example.com".into(), "*.example.com".into(), "10.0.0.1".into()];
        tls.acme_contact = vec!["it@example.com".into()];
        tls.acme_http_listen = "port eighty".into();
        tls.acme_renew_days = 0;
        tls.problems(&mut problems);
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    #[test]
    fn host_names() {
        assert!(is_dns_name("secure.example-dental.com"));
        assert!(is_dns_name("mail.sealpost.test"));
        for bad in [
            "localhost",
            "-a.example",
            "a..example",
            "*.example.com",
            "1.2.3.4",
            "a b.example",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
