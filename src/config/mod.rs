//! The configuration: one TOML file, every key overridable by an environment
//! variable `SEALPOST_<SECTION>_<KEY>` (top-level keys: `SEALPOST_<KEY>`), and
//! embedded defaults so `sealpost serve` runs with no file at all. Validated once
//! at start-up, with every problem reported together.
//!
//! The reference with every key is `docs/configuration.md`.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

mod accounts;
mod billing;
mod choice;
mod direct;
mod discovery;
mod dkim;
mod listeners;
mod located;
mod observability;
mod outbound;
mod profiles;
mod server;
mod storage;
mod tls;
mod uploads;

pub use accounts::{Passwords, SmsProvider, TwoStep};
pub use billing::{Billing, BillingProvider};
pub use choice::Choice;
pub use discovery::Source;
pub use dkim::{Dkim, DkimDomain, SigningKeys};
pub use listeners::{Imap, Portal, Smtp};
use located::Origins;
pub use observability::{Admin, Log, LogFormat};
pub use outbound::{Outbound, OutboundMode, SmarthostTls};
pub use profiles::Accounts;
pub use server::Server;
pub use storage::{Blobs, Database, Messages};
pub use tls::Tls;
pub use uploads::Uploads;

/// Sections that may be named in environment variables.
const SECTIONS: [&str; 17] = [
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
    "uploads",
    "admin",
    "log",
    "billing",
    "accounts",
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
    pub uploads: Uploads,
    pub admin: Admin,
    pub log: Log,
    pub billing: Billing,
    pub accounts: Accounts,
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
            uploads: Uploads::default(),
            admin: Admin::default(),
            log: Log::default(),
            billing: Billing::default(),
            accounts: Accounts::default(),
        }
    }
}

impl Config {
    /// Reads `file` (if given), then applies `SEALPOST_*` variables from `env`.
    /// Every problem is reported together.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, Vec<String>> {
        Self::load_with_origins(file, env).map_err(|(problems, _)| problems)
    }

    /// [`Config::load`], each problem prefixed with the file and line (or
    /// followed by the environment variable) that set the key it is about: what
    /// `sealpost config check` and a refused start print.
    pub fn load_located(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Vec<String>> {
        Self::load_with_origins(file, env)
            .map_err(|(problems, origins)| problems.iter().map(|p| origins.place(p)).collect())
    }

    fn load_with_origins(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, (Vec<String>, Origins)> {
        let (mut table, mut origins) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| (vec![format!("cannot read {}: {e}", path.display())], Origins::default()))?;
                let origins = Origins::of_file(path, &text).map_err(|problems| (problems, Origins::default()))?;
                let table = text.parse::<toml::Table>().map_err(|e| {
                    (
                        vec![format!("{}: {}", path.display(), e.message().trim())],
                        Origins::default(),
                    )
                })?;
                (table, origins)
            }
            None => (toml::Table::new(), Origins::default()),
        };
        let mut problems = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SEALPOST_") else {
                continue;
            };
            // Variables that are not configuration keys.
            // `sealpost drop`'s (docs/secure-drop.md): a front-desk PC's, not the server's.
            if matches!(rest, "CONFIG" | "LOG" | "EMAIL" | "APP_PASSWORD")
                || rest.starts_with("TEST_")
                || rest.starts_with("DROP_")
            {
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
                            let inner = &key[section.len() + 1..];
                            origins.set_by_env(format!("{section}.{inner}"), &name);
                            t.insert(inner.to_owned(), value);
                        }
                        None => problems.push(format!("{name}: [{section}] is not a section in the file")),
                    }
                }
                None => {
                    origins.set_by_env(key.clone(), &name);
                    table.insert(key, value);
                }
            }
        }
        // Keys that take one word from a list: a wrong word is reported beside the
        // other problems rather than stopping the typed parse (see choice.rs).
        choice::screen::<OutboundMode>(&mut table, &mut problems);
        choice::screen::<SmarthostTls>(&mut table, &mut problems);
        choice::screen::<SmsProvider>(&mut table, &mut problems);
        choice::screen::<LogFormat>(&mut table, &mut problems);
        choice::screen::<BillingProvider>(&mut table, &mut problems);
        // Keys of the wrong type or unknown: each one on its own, then removed.
        screen_types::<Self>(&mut table, &mut problems);
        let config: Self = match toml::Value::Table(table).try_into() {
            Ok(config) => config,
            Err(e) => {
                problems.push(toml::de::Error::message(&e).to_owned());
                return Err((problems, origins));
            }
        };
        if let Err(more) = config.validate() {
            problems.extend(more);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err((problems, origins))
        }
    }

    /// Checks everything, reporting all problems at once: each section checks
    /// itself (next to its keys), this composes them.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            problems.push(format!("public_url {:?} must start with https://", self.public_url));
        }
        self.database.check(&mut problems);
        self.blobs.check(&mut problems);
        self.server.check_leases(&mut problems);
        self.smtp.check(&mut problems);
        self.imap.check(&mut problems);
        self.portal.check(&mut problems);
        self.outbound.check(&mut problems);
        self.dkim.check(&mut problems);
        for (practice, address) in &self.outbound.practice_from {
            let domain = address.rsplit_once('@').map_or("", |(_, domain)| domain);
            if !domain.is_empty() && !self.dkim.signs_for(domain) {
                problems.push(format!(
                    "outbound.practice_from.{practice:?}: {domain:?} has no DKIM keys: add a [[dkim.domains]] \
                     entry for it (mail from it would fail DMARC)"
                ));
            }
        }
        self.messages.check(&mut problems);
        self.passwords.check(&mut problems);
        self.two_step.check(&mut problems);
        self.uploads.check(&mut problems);
        self.admin.check(&mut problems);
        self.billing.check(&mut problems);
        self.accounts.check(&mut problems);
        self.tls.problems(&mut problems);
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
            .store_url(format!("file://{}/blobs", self.data_dir.display()))
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

    /// Where ACME keeps its account key and the certificate it was issued.
    pub fn acme_dir(&self) -> PathBuf {
        self.data_dir.join("acme")
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
        self.smtp.trusted_networks()
    }

    pub fn max_message_size(&self) -> u64 {
        self.smtp.max_message_size_bytes()
    }
}

/// Tries each key of `table` on its own (beside the defaults) as a `T`: a key
/// that is unknown or has a value of the wrong type becomes a problem naming it
/// and is removed, so one bad key does not hide the others.
fn screen_types<T: serde::de::DeserializeOwned>(table: &mut toml::Table, problems: &mut Vec<String>) {
    let fails = |key: &str, value: &toml::Value, inner: Option<&str>| -> Option<String> {
        let mut one = toml::Table::new();
        let value = match inner {
            Some(inner) => {
                let mut section = toml::Table::new();
                section.insert(inner.to_owned(), value.clone());
                toml::Value::Table(section)
            }
            None => value.clone(),
        };
        one.insert(key.to_owned(), value);
        toml::Value::Table(one)
            .try_into::<T>()
            .err()
            .map(|e| toml::de::Error::message(&e).trim().to_owned())
    };
    let mut bad: Vec<(String, Option<String>)> = Vec::new();
    for (key, value) in table.iter() {
        match value.as_table().filter(|_| SECTIONS.contains(&key.as_str())) {
            Some(section) => {
                for (inner, value) in section {
                    if let Some(message) = fails(key, value, Some(inner)) {
                        problems.push(format!("{key}.{inner}: {message}"));
                        bad.push((key.clone(), Some(inner.clone())));
                    }
                }
            }
            None => {
                if let Some(message) = fails(key, value, None) {
                    problems.push(format!("{key}: {message}"));
                    bad.push((key.clone(), None));
                }
            }
        }
    }
    for (key, inner) in bad {
        match inner {
            Some(inner) => {
                if let Some(section) = table.get_mut(&key).and_then(toml::Value::as_table_mut) {
                    section.remove(&inner);
                }
            }
            None => {
                table.remove(&key);
            }
        }
    }
}

/// An environment value as TOML when it parses as a TOML value (numbers, booleans,
/// arrays), else as a plain string. A leading `+` keeps it a string: it is a phone
/// number (`SEALPOST_TWO_STEP_SMS_FROM=+15550100`), and no number key wants a sign.
fn parse_env_value(value: &str) -> toml::Value {
    if value.starts_with('+') {
        return toml::Value::String(value.to_owned());
    }
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
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
                ("SEALPOST_EMAIL", "frontdesk@smiles.example"),
                ("SEALPOST_APP_PASSWORD", "abcd efgh ijkl mnop"),
                ("SEALPOST_DROP_PORTAL", "https://secure.example.com"),
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
    fn a_phone_number_in_the_environment_stays_a_string() {
        let config = Config::load(None, env(&[("SEALPOST_TWO_STEP_SMS_FROM", "+15550100")])).unwrap();
        assert_eq!(config.two_step.sms_from, "+15550100");
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
}
