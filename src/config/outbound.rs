//! `[outbound]`: how the mail Sealpost writes leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use gateway::deliver::TlsPolicy;

use serde::{Deserialize, Deserializer};

use super::choice::{self, Choice};
use super::split_host_port;

/// `outbound.mode`: where the mail Sealpost writes goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboundMode {
    /// A Maildir at `<data_dir>/outbox` that people or tests read (the default).
    #[default]
    Outbox,
    /// Onward through one relay, `outbound.smarthost`.
    Smarthost,
    /// Straight to each recipient domain's MX hosts.
    Mx,
}

impl Choice for OutboundMode {
    const SECTION: &'static str = "outbound";
    const KEY: &'static str = "mode";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("outbox", Self::Outbox),
        ("smarthost", Self::Smarthost),
        ("mx", Self::Mx),
    ];
}

/// `outbound.smarthost_tls`: how the connection to the smarthost is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmarthostTls {
    /// STARTTLS, required (the default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a smarthost on the same machine.
    None,
}

impl Choice for SmarthostTls {
    const SECTION: &'static str = "outbound";
    const KEY: &'static str = "smarthost_tls";
    const WORDS: &'static [(&'static str, Self)] =
        &[("starttls", Self::Starttls), ("tls", Self::Tls), ("none", Self::None)];
}

impl<'de> Deserialize<'de> for OutboundMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        choice::deserialize(deserializer)
    }
}

impl<'de> Deserialize<'de> for SmarthostTls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        choice::deserialize(deserializer)
    }
}

impl fmt::Display for OutboundMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for SmarthostTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// `[outbound]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// `outbox` (Maildir at `<data_dir>/outbox`) or `smarthost` (`mx` is refused
    /// in this version).
    pub mode: OutboundMode,
    /// `HOST:PORT` of the relay for `smarthost` mode.
    pub smarthost: String,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (same machine only).
    pub smarthost_tls: SmarthostTls,
    pub smarthost_username: Option<String>,
    pub smarthost_password: Option<String>,
    /// Accept any certificate from the smarthost (testing only).
    pub smarthost_accept_invalid_certs: bool,
    /// Notifications and bounces come from this address.
    pub from_address: String,
    /// Subject of notifications; `{sender}` becomes the sender's name. Never the original subject.
    pub notification_subject: String,
    /// Most SMTP connections open at once to one destination (the smarthost);
    /// each carries one message after another.
    pub max_connections_per_destination: usize,
    /// Seconds an outbound connection may sit idle before it is closed.
    pub idle_timeout: u64,
    /// `Reply-To` of notifications: where a reply to the email goes (a front
    /// desk, or a no-reply address). The email says a reply by email is not
    /// secure and links to the secure reply. Unset: no `Reply-To`, so replies
    /// go to `from_address`.
    pub notification_reply_to: Option<String>,
    /// A practice's own `Reply-To`, by its domain (`"smiles.example" =
    /// "frontdesk@smiles.example"`); overrides `notification_reply_to`.
    pub practice_reply_to: BTreeMap<String, String>,
    /// `mx` mode: partner domains whose recipients may get a secure message
    /// itself over verified TLS instead of a notification, when the sending
    /// practice allows it (best-method delivery, `config/direct.rs`).
    pub direct_domains: Vec<String>,
    /// The largest message sent directly (`10MB`); larger ones get a notification.
    pub direct_max_size: String,
    /// Seconds a direct copy is retried after a temporary failure that is not
    /// about TLS before it falls back to a notification (900).
    pub direct_retry_for: u64,
    /// `mx` mode: the port MX hosts listen on (25; another only for tests).
    pub mx_port: u16,
    /// `mx` mode: DNS servers (`IP` or `IP:PORT`); empty: the system's.
    pub dns_servers: Vec<String>,
    /// `mx` mode: TLS to MX hosts unless `tls_policies` names the domain:
    /// `opportunistic` (default), `verify` or `none`.
    pub tls_policy: String,
    /// `mx` mode: a TLS policy by recipient domain (`"partner.example" = "verify"`).
    pub tls_policies: BTreeMap<String, String>,
    /// PEM certificates trusted for `verify` besides the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// `mx` mode: discover MTA-STS policies (RFC 8461) for domains without
    /// one in `tls_policies`.
    pub mta_sts: bool,
    /// The HTTPS port MTA-STS policies are fetched from (443; tests only).
    pub mta_sts_port: u16,
    /// `mx` mode: DANE (RFC 7672) for domains without one in `tls_policies`:
    /// an MX host with DNSSEC-validated TLSA records must match them. Off by
    /// default: a TLSA lookup that cannot be validated holds mail back.
    pub dane: bool,
    /// DNSSEC trust anchors (a file of DNSKEY records); unset: the root's.
    pub dnssec_trust_anchors: Option<PathBuf>,
    /// Seconds a delivery is retried before it fails with a DSN (5 days).
    pub give_up_after: u64,
    /// Seconds after which a sender is told once that delivery is late
    /// (a "delayed" DSN); 0: never. Default 4 hours.
    pub delay_notice_after: u64,
    /// A practice's own `From` for its notifications, by its domain
    /// (`"smiles.example" = "secure@smiles.example"`); the address's domain
    /// needs DKIM keys (`dkim.domain` or a `[[dkim.domains]]` entry).
    pub practice_from: BTreeMap<String, String>,
    /// Most messages a minute to one recipient domain, unless `rate_limits`
    /// names it; 0 (the default): no limit. More wait (are not failed).
    pub rate_limit: u32,
    /// Most messages a minute by recipient domain (`"gmail.com" = 100`).
    pub rate_limits: BTreeMap<String, u32>,
    /// `mx` mode: count each session's TLS outcome by recipient domain for
    /// TLS-RPT reports (RFC 8460), sent by `sealpost tlsrpt send`.
    pub tls_reports: bool,
}

const TLS_POLICIES: [(&str, TlsPolicy); 3] = [
    ("none", TlsPolicy::None),
    ("opportunistic", TlsPolicy::Opportunistic),
    ("verify", TlsPolicy::Verify),
];

fn tls_policy(word: &str) -> Option<TlsPolicy> {
    TLS_POLICIES.iter().find(|(w, _)| *w == word).map(|(_, policy)| *policy)
}

fn dns_server(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// The connection pool's defaults are the gateway's own ([`gateway::deliver::PoolSettings`]).
impl Default for Outbound {
    fn default() -> Self {
        let pool = gateway::deliver::PoolSettings::default();
        Self {
            mode: OutboundMode::default(),
            smarthost: "smtp.example.com:587".into(),
            smarthost_tls: SmarthostTls::default(),
            smarthost_username: None,
            smarthost_password: None,
            smarthost_accept_invalid_certs: false,
            from_address: "secure@localhost".into(),
            notification_subject: "Secure message from {sender}".into(),
            max_connections_per_destination: pool.max_connections_per_destination,
            idle_timeout: pool.idle_timeout.as_secs(),
            notification_reply_to: None,
            practice_reply_to: BTreeMap::new(),
            direct_domains: Vec::new(),
            direct_max_size: "10MB".into(),
            direct_retry_for: 900,
            mx_port: 25,
            dns_servers: Vec::new(),
            tls_policy: "opportunistic".into(),
            tls_policies: BTreeMap::new(),
            tls_ca_file: None,
            mta_sts: true,
            mta_sts_port: 443,
            dane: false,
            dnssec_trust_anchors: None,
            give_up_after: 5 * 86_400,
            delay_notice_after: 4 * 3600,
            practice_from: BTreeMap::new(),
            rate_limit: 0,
            rate_limits: BTreeMap::new(),
            tls_reports: false,
        }
    }
}

impl Outbound {
    /// The section's problems: the route must be one this version serves, and
    /// complete; notifications need a sender and a subject.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        match self.mode {
            OutboundMode::Outbox => {}
            OutboundMode::Smarthost => {
                if split_host_port(&self.smarthost).is_none() {
                    problems.push(format!("outbound.smarthost {:?} must be HOST:PORT", self.smarthost));
                }
            }
            OutboundMode::Mx => {}
        }
        self.check_mx(problems);
        self.check_direct(problems);
        if store::accounts::normalize_email(&self.from_address).is_err() {
            problems.push(format!(
                "outbound.from_address {:?} is not an email address",
                self.from_address
            ));
        }
        if self.notification_subject.trim().is_empty() {
            problems.push("outbound.notification_subject must not be empty".into());
        }
        for (key, value) in [
            (
                "outbound.max_connections_per_destination",
                self.max_connections_per_destination as u64,
            ),
            ("outbound.idle_timeout", self.idle_timeout),
            ("outbound.give_up_after", self.give_up_after),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be at least 1"));
            }
        }
        if let Some(address) = &self.notification_reply_to
            && store::accounts::normalize_email(address).is_err()
        {
            problems.push(format!(
                "outbound.notification_reply_to {address:?} is not an email address"
            ));
        }
        self.check_practice_from_and_rates(problems);
        for (domain, address) in &self.practice_reply_to {
            if domain.is_empty()
                || !domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                problems.push(format!(
                    "outbound.practice_reply_to: {domain:?} is not a practice's mail domain"
                ));
            }
            if store::accounts::normalize_email(address).is_err() {
                problems.push(format!(
                    "outbound.practice_reply_to.{domain:?} {address:?} is not an email address"
                ));
            }
        }
    }

    fn check_practice_from_and_rates(&self, problems: &mut Vec<String>) {
        for (domain, address) in &self.practice_from {
            if !super::dkim::is_domain(domain) {
                problems.push(format!(
                    "outbound.practice_from: {domain:?} is not a practice's mail domain"
                ));
            }
            if store::accounts::normalize_email(address).is_err() {
                problems.push(format!(
                    "outbound.practice_from.{domain:?} {address:?} is not an email address"
                ));
            }
        }
        for (domain, rate) in &self.rate_limits {
            if !super::dkim::is_domain(domain) {
                problems.push(format!("outbound.rate_limits: {domain:?} is not a mail domain"));
            }
            if *rate == 0 {
                problems.push(format!(
                    "outbound.rate_limits.{domain:?} must be at least 1 (a message a minute)"
                ));
            }
        }
    }

    /// The keys of direct delivery (checked in every mode: a file is right
    /// before its mode is switched on).
    fn check_mx(&self, problems: &mut Vec<String>) {
        for server in &self.dns_servers {
            if dns_server(server).is_none() {
                problems.push(format!("outbound.dns_servers: {server:?} must be IP or IP:PORT"));
            }
        }
        let words = "none, opportunistic or verify";
        if tls_policy(&self.tls_policy).is_none() {
            problems.push(format!("outbound.tls_policy {:?} must be {words}", self.tls_policy));
        }
        for (domain, word) in &self.tls_policies {
            if tls_policy(word).is_none() {
                problems.push(format!("outbound.tls_policies.{domain:?} {word:?} must be {words}"));
            }
        }
        if self.mx_port == 0 || self.mta_sts_port == 0 {
            problems.push("outbound.mx_port and outbound.mta_sts_port must be at least 1".into());
        }
    }

    /// Direct delivery's settings; reads `tls_ca_file`.
    ///
    /// # Errors
    /// When the CA file cannot be read or holds no certificate.
    pub fn mx_settings(&self) -> Result<gateway::deliver::MxSettings, String> {
        let extra_roots = match &self.tls_ca_file {
            Some(path) => read_certificates(path)?,
            None => Vec::new(),
        };
        Ok(gateway::deliver::MxSettings {
            port: self.mx_port,
            dns_servers: self.dns_servers.iter().filter_map(|s| dns_server(s)).collect(),
            policies: self
                .tls_policies
                .iter()
                .filter_map(|(domain, word)| Some((domain.trim().to_ascii_lowercase(), tls_policy(word)?)))
                .collect(),
            default_policy: tls_policy(&self.tls_policy).unwrap_or_default(),
            extra_roots,
            mta_sts: self.mta_sts,
            mta_sts_port: self.mta_sts_port,
            dane: self.dane,
            trust_anchors: match &self.dnssec_trust_anchors {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("outbound.dnssec_trust_anchors {}: {e}", path.display()))?,
                ),
                None => None,
            },
            tls_reports: self.tls_reports,
        })
    }

    /// How long deliveries are tried and when a sender hears they are late.
    #[must_use]
    pub fn retry_policy(&self) -> gateway::deliver::RetryPolicy {
        gateway::deliver::RetryPolicy {
            give_up_after: i64::try_from(self.give_up_after).unwrap_or(i64::MAX),
            delay_notice_after: (self.delay_notice_after > 0)
                .then(|| i64::try_from(self.delay_notice_after).unwrap_or(i64::MAX)),
        }
    }

    /// The per-destination rate limits these keys describe.
    #[must_use]
    pub fn rate_limits(&self) -> gateway::deliver::RateLimits {
        gateway::deliver::RateLimits::new(
            (self.rate_limit > 0).then_some(self.rate_limit),
            self.rate_limits
                .iter()
                .map(|(domain, rate)| (domain.trim().trim_end_matches('.').to_ascii_lowercase(), *rate))
                .collect(),
        )
    }

    /// A practice's own `From` addresses, by practice domain (lower case).
    #[must_use]
    pub fn practice_from(&self) -> BTreeMap<String, String> {
        self.practice_from
            .iter()
            .map(|(domain, address)| (domain.trim().to_ascii_lowercase(), address.trim().to_owned()))
            .collect()
    }

    /// The connection pool these keys describe.
    pub fn pool_settings(&self) -> gateway::deliver::PoolSettings {
        gateway::deliver::PoolSettings {
            max_connections_per_destination: self.max_connections_per_destination,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout),
        }
    }

    /// Where replies to notifications go, as the notifier uses it.
    #[must_use]
    pub fn reply_to(&self) -> gateway::mail::ReplyTo {
        gateway::mail::ReplyTo {
            default: self.notification_reply_to.as_deref().map(str::trim).map(str::to_owned),
            by_practice: self
                .practice_reply_to
                .iter()
                .map(|(domain, address)| (domain.trim().to_ascii_lowercase(), address.trim().to_owned()))
                .collect(),
        }
    }
}

fn read_certificates(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("outbound.tls_ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("outbound.tls_ca_file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
