//! The configuration: one TOML file, every key overridable by an environment
//! variable `SEALPOST_<SECTION>_<KEY>` (top-level keys: `SEALPOST_<KEY>`), and
//! embedded defaults so `sealpost serve` runs with no file at all. Validated once
//! at start-up, with every problem reported together.
//!
//! The reference with every key is `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

mod accounts;
mod listeners;
mod outbound;
mod server;
mod storage;

pub use accounts::{Passwords, TwoStep};
pub use listeners::{Imap, Portal, Smtp, Tls};
pub use outbound::{Dkim, Outbound};
pub use server::Server;
pub use storage::{Blobs, Database, Messages};

/// Sections that may be named in environment variables.
const SECTIONS: [&str; 12] = [
    "server",
    "database",
    "blobs",
    "smtp",
    "imap",
    "portal",
    "tls",
    "outbound",
    "dkim",
    "messages",
    "passwords",
    "two_step",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Links in notifications start with it, e.g. `https://secure.example-dental.com`.
    pub public_url: String,
    /// Folder for the `SQLite` database, blobs, spool, keys, certificates and the outbox.
    pub data_dir: PathBuf,
    pub server: Server,
    pub database: Database,
    pub blobs: Blobs,
    pub smtp: Smtp,
    pub imap: Imap,
    pub portal: Portal,
    pub tls: Tls,
    pub outbound: Outbound,
    pub dkim: Dkim,
    pub messages: Messages,
    pub passwords: Passwords,
    pub two_step: TwoStep,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: "https://localhost:8443".into(),
            data_dir: "data".into(),
            server: Server::default(),
            database: Database::default(),
            blobs: Blobs::default(),
            smtp: Smtp::default(),
            imap: Imap::default(),
            portal: Portal::default(),
            tls: Tls::default(),
            outbound: Outbound::default(),
            dkim: Dkim::default(),
            messages: Messages::default(),
            passwords: Passwords::default(),
            two_step: TwoStep::default(),
        }
    }
}

impl Config {
    /// Reads `file` (if given), then applies `SEALPOST_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, Vec<String>> {
        let mut table = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
                text.parse::<toml::Table>()
                    .map_err(|e| vec![format!("{}: {e}", path.display())])?
            }
            None => toml::Table::new(),
        };
        let mut problems = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SEALPOST_") else {
                continue;
            };
            // Variables that are not configuration keys.
            if matches!(rest, "CONFIG" | "LOG") || rest.starts_with("TEST_") {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            let value = parse_env_value(&value);
            match SECTIONS.iter().find(|s| key.starts_with(&format!("{s}_"))) {
                Some(section) => {
                    let entry = table
                        .entry((*section).to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    match entry.as_table_mut() {
                        Some(t) => {
                            t.insert(key[section.len() + 1..].to_owned(), value);
                        }
                        None => problems.push(format!("{name}: [{section}] is not a section in the file")),
                    }
                }
                None => {
                    table.insert(key, value);
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| vec![e.message().to_owned()])?;
        config.validate()?;
        Ok(config)
    }

    /// Connection limits and client deadlines: zero would refuse everyone.
    fn check_limits(&self, problems: &mut Vec<String>) {
        for (key, value) in [
            (
                "smtp.submission_max_connections_per_ip",
                self.smtp.submission_max_connections_per_ip as u64,
            ),
            ("smtp.auth_timeout", self.smtp.auth_timeout),
            ("imap.max_connections", self.imap.max_connections as u64),
            ("imap.max_connections_per_ip", self.imap.max_connections_per_ip as u64),
            ("imap.login_timeout", self.imap.login_timeout),
            ("portal.max_connections", self.portal.max_connections as u64),
            ("portal.client_timeout", self.portal.client_timeout),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be at least 1"));
            }
        }
    }

    /// Checks everything, reporting all problems at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            problems.push(format!("public_url {:?} must start with https://", self.public_url));
        }
        for (key, value) in [
            ("smtp.relay_listen", &self.smtp.relay_listen),
            ("smtp.submission_listen", &self.smtp.submission_listen),
            ("portal.listen", &self.portal.listen),
        ] {
            if value.parse::<SocketAddr>().is_err() {
                problems.push(format!("{key} {value:?} is not an address like 127.0.0.1:2525"));
            }
        }
        for network in &self.smtp.relay_trusted_networks {
            if parse_network(network).is_none() {
                problems.push(format!(
                    "smtp.relay_trusted_networks: {network:?} is not a network like 10.0.0.0/8"
                ));
            }
        }
        if let Some(tenant) = &self.smtp.relay_tenant_id
            && !is_guid(tenant.trim())
        {
            problems.push(format!(
                "smtp.relay_tenant_id {tenant:?} is not a tenant id like 72f988bf-86f1-41af-91ab-2d7cd011db47"
            ));
        }
        if let Some(path) = &self.smtp.relay_client_ca
            && !path.is_file()
        {
            problems.push(format!(
                "smtp.relay_client_ca {} is not a file (a PEM file of CA certificates)",
                path.display()
            ));
        }
        if let Err(e) = parse_size(&self.smtp.max_message_size) {
            problems.push(format!("smtp.max_message_size: {e}"));
        }
        if self.smtp.max_recipients == 0 || self.smtp.max_connections == 0 {
            problems.push("smtp.max_recipients and smtp.max_connections must be at least 1".into());
        }
        self.check_limits(&mut problems);
        let url = self.database_url();
        if store::db::Dialect::of(&url).is_none() {
            problems.push(format!("database.url {url:?} must start with sqlite:// or postgres://"));
        }
        if !self.blobs_url().starts_with("file://") {
            problems.push(format!(
                "blobs.url {:?}: only file:// is supported in this version",
                self.blobs_url()
            ));
        }
        match self.outbound.mode.as_str() {
            "outbox" => {}
            "smarthost" => {
                if split_host_port(&self.outbound.smarthost).is_none() {
                    problems.push(format!(
                        "outbound.smarthost {:?} must be HOST:PORT",
                        self.outbound.smarthost
                    ));
                }
                if !matches!(self.outbound.smarthost_tls.as_str(), "starttls" | "tls" | "none") {
                    problems.push("outbound.smarthost_tls must be starttls, tls or none".into());
                }
            }
            "mx" => problems.push(
                "outbound.mode \"mx\" (direct delivery) is not available in this version: use outbox or smarthost"
                    .into(),
            ),
            other => problems.push(format!("outbound.mode {other:?} must be outbox or smarthost")),
        }
        if store::accounts::normalize_email(&self.outbound.from_address).is_err() {
            problems.push(format!(
                "outbound.from_address {:?} is not an email address",
                self.outbound.from_address
            ));
        }
        if !self.outbound.notification_subject.contains("{sender}")
            && self.outbound.notification_subject.trim().is_empty()
        {
            problems.push("outbound.notification_subject must not be empty".into());
        }
        if self.dkim.domain.is_empty() || self.dkim.selector.is_empty() || self.dkim.selector.contains(['.', ' ']) {
            problems.push("dkim.domain and dkim.selector must be set (a selector is one DNS label)".into());
        }
        if !(8..=256).contains(&self.passwords.min_length) {
            problems.push("passwords.min_length must be between 8 and 256".into());
        }
        if self.passwords.history < 0 || self.passwords.max_age_days < 0 {
            problems.push("passwords.history and passwords.max_age_days must not be negative".into());
        }
        self.two_step.problems(&mut problems);
        if self.messages.retention_days < 1 {
            problems.push("messages.retention_days must be at least 1".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/sealpost.db", self.data_dir.display()))
    }

    pub fn blobs_url(&self) -> String {
        self.blobs
            .url
            .clone()
            .unwrap_or_else(|| format!("file://{}/blobs", self.data_dir.display()))
    }

    pub fn cert_path(&self) -> PathBuf {
        self.tls
            .cert
            .clone()
            .unwrap_or_else(|| self.data_dir.join("certs/server.crt"))
    }

    pub fn key_path(&self) -> PathBuf {
        self.tls
            .key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("certs/server.key"))
    }

    pub fn dkim_key_path(&self) -> PathBuf {
        self.dkim
            .key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dkim").join(format!("{}.key", self.dkim.selector)))
    }

    pub fn sms_outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox-sms")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn trusted_networks(&self) -> Vec<IpNet> {
        self.smtp
            .relay_trusted_networks
            .iter()
            .filter_map(|n| parse_network(n))
            .collect()
    }

    pub fn max_message_size(&self) -> u64 {
        parse_size(&self.smtp.max_message_size).unwrap_or(300_000_000)
    }
}

/// A GUID in its usual 8-4-4-4-12 hex form.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An environment value as TOML when it parses as a TOML value (numbers, booleans,
/// arrays), else as a plain string.
fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
}

/// Parses `300MB`, `25MiB`, `1.5GB`, `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 300MB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1_048_576.0,
        "gib" => 1_073_741_824.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    let bytes = number * factor;
    if !(1.0..=1e13).contains(&bytes) {
        return Err(format!("{text:?} is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn embedded_defaults_are_valid_and_match_the_contract() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config.smtp.relay_listen, "127.0.0.1:2525");
        assert_eq!(config.database_url(), "sqlite://data/sealpost.db");
        assert_eq!(config.blobs_url(), "file://data/blobs");
        assert_eq!(config.max_message_size(), 300_000_000);
    }

    #[test]
    fn environment_overrides_sections_and_top_level_keys() {
        let config = Config::load(
            None,
            env(&[
                ("SEALPOST_PUBLIC_URL", "https://secure.example.com"),
                ("SEALPOST_SMTP_RELAY_LISTEN", "127.0.0.1:2600"),
                (
                    "SEALPOST_SMTP_RELAY_TRUSTED_NETWORKS",
                    "[\"10.0.0.0/8\", \"192.168.1.5\"]",
                ),
                ("SEALPOST_SMTP_MAX_RECIPIENTS", "5"),
                ("SEALPOST_DATABASE_URL", "postgres://u:p@localhost/db"),
                ("OTHER", "ignored"),
                ("SEALPOST_LOG", "debug"),
                ("SEALPOST_CONFIG", "/etc/sealpost.toml"),
                ("SEALPOST_TEST_POSTGRES_URL", "postgres://x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.public_url, "https://secure.example.com");
        assert_eq!(config.smtp.relay_listen, "127.0.0.1:2600");
        assert_eq!(config.trusted_networks().len(), 2);
        assert_eq!(config.smtp.max_recipients, 5);
        assert_eq!(config.database_url(), "postgres://u:p@localhost/db");
    }

    #[test]
    fn every_problem_is_reported_together() {
        let problems = Config::load(
            None,
            env(&[
                ("SEALPOST_SMTP_RELAY_LISTEN", "nowhere"),
                ("SEALPOST_SMTP_MAX_MESSAGE_SIZE", "12 parsecs"),
                ("SEALPOST_OUTBOUND_MODE", "pigeon"),
            ]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let unknown = Config::load(None, env(&[("SEALPOST_SMTP_RELAY_LISTN", "x")])).unwrap_err();
        assert!(unknown[0].contains("relay_listn"), "{unknown:?}");
    }

    #[test]
    fn relay_tenant_id_must_be_a_guid() {
        let tenant = "72F988BF-86f1-41af-91ab-2d7cd011db47";
        let config = Config::load(None, env(&[("SEALPOST_SMTP_RELAY_TENANT_ID", tenant)])).unwrap();
        assert_eq!(config.smtp.relay_tenant_id.as_deref(), Some(tenant));
        let problems = Config::load(None, env(&[("SEALPOST_SMTP_RELAY_TENANT_ID", "contoso")])).unwrap_err();
        assert!(problems[0].contains("relay_tenant_id"), "{problems:?}");
    }

    #[test]
    fn passwords_section_takes_environment_overrides() {
        let config = Config::load(None, env(&[("SEALPOST_PASSWORDS_MIN_LENGTH", "12")])).unwrap();
        assert_eq!(config.passwords.min_length, 12);
    }

    #[test]
    fn two_step_section_is_checked() {
        let config = Config::load(None, env(&[("SEALPOST_TWO_STEP_REMEMBER_DAYS", "7")])).unwrap();
        assert_eq!(config.two_step.policy().remember_days, 7);
        assert!(config.two_step.required, "on by default");
        let problems = Config::load(
            None,
            env(&[
                ("SEALPOST_TWO_STEP_SMS_PROVIDER", "http"),
                ("SEALPOST_TWO_STEP_REMEMBER_DAYS", "0"),
            ]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let pigeon = Config::load(None, env(&[("SEALPOST_TWO_STEP_SMS_PROVIDER", "pigeon")])).unwrap_err();
        assert!(pigeon[0].contains("dev or http"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("300MB").unwrap(), 300_000_000);
        assert_eq!(parse_size("25MiB").unwrap(), 26_214_400);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("MB").is_err());
    }
}
