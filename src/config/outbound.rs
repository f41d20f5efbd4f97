//! `[outbound]` and `[dkim]`: how the mail Sealpost writes leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

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
    /// Straight to each recipient domain's MX: a known word, refused by
    /// [`Outbound::check`] until direct delivery is built.
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

    fn available(self) -> bool {
        self != Self::Mx
    }
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
            OutboundMode::Mx => problems.push(format!(
                "outbound.mode \"mx\" (direct delivery) is not available in this version: use {}",
                choice::accepted::<OutboundMode>()
            )),
        }
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

/// `[dkim]`: signing of the mail Sealpost writes (notifications, bounces).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    /// The signing domain (`d=`), usually the domain of `outbound.from_address`.
    pub domain: String,
    /// The selector (`s=`): the record lives at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// RSA key (PKCS#8 PEM). Default `<data_dir>/dkim/<selector>.key`. Without the
    /// file, mail goes out unsigned: make one with `sealpost dkim keygen`.
    pub key: Option<PathBuf>,
}

impl Default for Dkim {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            selector: "sealpost".into(),
            key: None,
        }
    }
}

impl Dkim {
    /// A signing domain and a selector that is one DNS label.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if self.domain.is_empty() || self.selector.is_empty() || self.selector.contains(['.', ' ']) {
            problems.push("dkim.domain and dkim.selector must be set (a selector is one DNS label)".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn a_config_file_written_for_the_string_keys_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealpost.toml");
        std::fs::write(
            &path,
            "[outbound]\nmode = \"smarthost\"\nsmarthost = \"relay.example.net:465\"\nsmarthost_tls = \"tls\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config.outbound.mode, OutboundMode::Smarthost);
        assert_eq!(config.outbound.smarthost_tls, SmarthostTls::Tls);
        assert_eq!(config.outbound.mode.to_string(), "smarthost");
        let defaults = Config::load(None, Vec::new()).unwrap();
        assert_eq!(defaults.outbound.mode, OutboundMode::Outbox);
        assert_eq!(defaults.outbound.smarthost_tls, SmarthostTls::Starttls);
    }

    #[test]
    fn every_smarthost_tls_word_loads() {
        for (word, value) in SmarthostTls::WORDS {
            let config = load(&[
                ("SEALPOST_OUTBOUND_MODE", "smarthost"),
                ("SEALPOST_OUTBOUND_SMARTHOST_TLS", word),
            ])
            .unwrap();
            assert_eq!(config.outbound.smarthost_tls, *value);
        }
    }

    #[test]
    fn mx_is_a_known_mode_refused_in_this_version() {
        let problems = load(&[("SEALPOST_OUTBOUND_MODE", "mx")]).unwrap_err();
        assert_eq!(
            problems,
            ["outbound.mode \"mx\" (direct delivery) is not available in this version: use outbox or smarthost"]
        );
    }

    #[test]
    fn unknown_words_name_the_key_the_value_and_the_accepted_words() {
        let problems = load(&[
            ("SEALPOST_OUTBOUND_MODE", "pigeon"),
            ("SEALPOST_OUTBOUND_SMARTHOST_TLS", "ssl"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "outbound.mode \"pigeon\" must be outbox or smarthost",
                "outbound.smarthost_tls \"ssl\" must be starttls, tls or none",
            ]
        );
        let upper = load(&[("SEALPOST_OUTBOUND_MODE", "Smarthost")]).unwrap_err();
        assert_eq!(upper, ["outbound.mode \"Smarthost\" must be outbox or smarthost"]);
        let number = load(&[("SEALPOST_OUTBOUND_MODE", "5")]).unwrap_err();
        assert_eq!(number, ["outbound.mode 5 must be outbox or smarthost"]);
    }

    #[test]
    fn reply_to_addresses_are_checked_and_a_practice_s_own_wins() {
        let problems = load(&[
            ("SEALPOST_OUTBOUND_NOTIFICATION_REPLY_TO", "front desk"),
            (
                "SEALPOST_OUTBOUND_PRACTICE_REPLY_TO",
                r#"{ "smiles.example" = "nobody", "not a domain" = "desk@example.com" }"#,
            ),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "outbound.notification_reply_to \"front desk\" is not an email address",
                "outbound.practice_reply_to: \"not a domain\" is not a practice's mail domain",
                "outbound.practice_reply_to.\"smiles.example\" \"nobody\" is not an email address",
            ]
        );
        let config = load(&[
            ("SEALPOST_OUTBOUND_NOTIFICATION_REPLY_TO", "no-reply@example-dental.com"),
            (
                "SEALPOST_OUTBOUND_PRACTICE_REPLY_TO",
                r#"{ "Smiles.Example" = "frontdesk@smiles.example" }"#,
            ),
        ])
        .unwrap();
        let reply_to = config.outbound.reply_to();
        assert_eq!(
            reply_to.for_practice("smiles.example"),
            Some("frontdesk@smiles.example")
        );
        assert_eq!(
            reply_to.for_practice("other.example"),
            Some("no-reply@example-dental.com")
        );
        assert_eq!(
            Config::load(None, Vec::new()).unwrap().outbound.reply_to(),
            gateway::mail::ReplyTo::default()
        );
    }

    #[test]
    fn smarthost_mode_needs_host_and_port_and_every_mode_a_sender() {
        let problems = load(&[
            ("SEALPOST_OUTBOUND_MODE", "smarthost"),
            ("SEALPOST_OUTBOUND_SMARTHOST", "relay.example.net"),
            ("SEALPOST_OUTBOUND_FROM_ADDRESS", "not an address"),
            ("SEALPOST_OUTBOUND_NOTIFICATION_SUBJECT", " "),
            ("SEALPOST_DKIM_SELECTOR", "two.labels"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("outbound.smarthost \"relay.example.net\" must be HOST:PORT"));
        assert!(problems[1].contains("outbound.from_address"));
        assert!(problems[2].contains("outbound.notification_subject"));
        assert!(problems[3].contains("dkim.selector"));
        // The smarthost is only checked when it is the route.
        load(&[("SEALPOST_OUTBOUND_SMARTHOST", "relay.example.net")]).unwrap();
    }

    #[test]
    fn the_connection_pool_keys_load_and_zero_is_refused() {
        let config = load(&[
            ("SEALPOST_OUTBOUND_MAX_CONNECTIONS_PER_DESTINATION", "3"),
            ("SEALPOST_OUTBOUND_IDLE_TIMEOUT", "7"),
        ])
        .unwrap();
        let pool = config.outbound.pool_settings();
        assert_eq!(pool.max_connections_per_destination, 3);
        assert_eq!(pool.idle_timeout, std::time::Duration::from_secs(7));
        let defaults = load(&[]).unwrap().outbound.pool_settings();
        assert_eq!(defaults, gateway::deliver::PoolSettings::default());
        let problems = load(&[
            ("SEALPOST_OUTBOUND_MAX_CONNECTIONS_PER_DESTINATION", "0"),
            ("SEALPOST_OUTBOUND_IDLE_TIMEOUT", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "outbound.max_connections_per_destination must be at least 1",
                "outbound.idle_timeout must be at least 1",
            ]
        );
    }
}
