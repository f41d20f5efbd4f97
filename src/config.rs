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

/// Sections that may be named in environment variables.
const SECTIONS: [&str; 11] = [
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

/// `[two_step]`: two-step verification and how codes reach phones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoStep {
    /// Ask every user for a second step (a code by phone or an authenticator app).
    pub required: bool,
    /// Let User Managers turn two-step verification off for one of their users.
    pub allow_disable: bool,
    /// Days "remember this device" skips the second step on that browser.
    pub remember_days: i64,
    /// `dev` (write codes to `<data_dir>/outbox-sms/`) or `http` (a Twilio-style API).
    pub sms_provider: String,
    /// `http` provider: the URL form fields `To`, `From`, `Body` are posted to, e.g.
    /// `https://api.twilio.com/2010-04-01/Accounts/<SID>/Messages.json`.
    pub sms_url: String,
    /// `http` provider: the sending number or sender id.
    pub sms_from: String,
    /// `http` provider: the Basic-auth user (Twilio: the account SID).
    pub sms_username: String,
    /// `http` provider: the Basic-auth password (Twilio: the auth token).
    pub sms_password: String,
    /// Codes any one phone number may be sent per hour, whoever asks (toll fraud).
    pub codes_per_number_per_hour: i64,
    /// Codes to numbers being set up (not yet proven) per hour, all users together.
    pub enrol_codes_per_hour: i64,
    /// International prefixes (digits after `+`, e.g. `"882"`) never texted or
    /// called, on top of the built-in premium-rate ones (1-900, 1-976, UK 09).
    pub denied_prefixes: Vec<String>,
}

impl Default for TwoStep {
    fn default() -> Self {
        let policy = store::accounts::two_step::TwoStepPolicy::default();
        Self {
            required: policy.required,
            allow_disable: policy.allow_disable,
            remember_days: policy.remember_days,
            sms_provider: "dev".into(),
            sms_url: String::new(),
            sms_from: String::new(),
            sms_username: String::new(),
            sms_password: String::new(),
            codes_per_number_per_hour: policy.codes_per_number_per_hour,
            enrol_codes_per_hour: policy.enrol_codes_per_hour,
            denied_prefixes: policy.denied_prefixes,
        }
    }
}

impl TwoStep {
    pub fn policy(&self) -> store::accounts::two_step::TwoStepPolicy {
        store::accounts::two_step::TwoStepPolicy {
            required: self.required,
            allow_disable: self.allow_disable,
            remember_days: self.remember_days,
            codes_per_number_per_hour: self.codes_per_number_per_hour,
            enrol_codes_per_hour: self.enrol_codes_per_hour,
            denied_prefixes: self.denied_prefixes.clone(),
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        if !(1..=365).contains(&self.remember_days) {
            problems.push("two_step.remember_days must be between 1 and 365".into());
        }
        if self.codes_per_number_per_hour < 1 || self.enrol_codes_per_hour < 1 {
            problems
                .push("two_step.codes_per_number_per_hour and two_step.enrol_codes_per_hour must be at least 1".into());
        }
        for prefix in &self.denied_prefixes {
            if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_digit()) {
                problems.push(format!(
                    "two_step.denied_prefixes: {prefix:?} must be the digits of an international prefix, like \"882\""
                ));
            }
        }
        match self.sms_provider.as_str() {
            "dev" => {}
            "http" => {
                if !(self.sms_url.starts_with("https://") || self.sms_url.starts_with("http://")) {
                    problems.push(format!("two_step.sms_url {:?} must be an http(s):// URL", self.sms_url));
                }
                if self.sms_from.trim().is_empty() {
                    problems.push("two_step.sms_from must be set for the http SMS provider".into());
                }
            }
            other => problems.push(format!("two_step.sms_provider {other:?} must be dev or http")),
        }
    }
}

/// `[passwords]`: the password policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    pub min_length: usize,
    /// Require a lower-case and an upper-case letter, a digit and a symbol.
    pub require_mixed: bool,
    /// A new password may not repeat any of this many most recent ones (0: off).
    pub history: i64,
    /// Sign-in asks for a new password after this many days (0: never).
    pub max_age_days: i64,
    /// Refuse the 10,000 most common breached passwords (list shipped in the binary).
    pub reject_common: bool,
}

impl Default for Passwords {
    fn default() -> Self {
        let rules = store::accounts::passwords::PasswordRules::default();
        Self {
            min_length: rules.min_length,
            require_mixed: rules.require_mixed,
            history: rules.history,
            max_age_days: rules.max_age_days,
            reject_common: rules.reject_common,
        }
    }
}

impl Passwords {
    pub fn rules(&self) -> store::accounts::passwords::PasswordRules {
        store::accounts::passwords::PasswordRules {
            min_length: self.min_length,
            require_mixed: self.require_mixed,
            history: self.history,
            max_age_days: self.max_age_days,
            reject_common: self.reject_common,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Default: `sqlite://<data_dir>/sealpost.db`.
    pub url: Option<String>,
}

/// `[blobs]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Blobs {
    /// `file://PATH`. Default: `file://<data_dir>/blobs`.
    pub url: Option<String>,
}

/// `[smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    /// Where the practice's mail system relays to us.
    pub relay_listen: String,
    /// Networks allowed to relay through `relay_listen` without AUTH.
    pub relay_trusted_networks: Vec<String>,
    /// Where people's mail clients submit (STARTTLS, then AUTH).
    pub submission_listen: String,
    /// Our name in greetings and trace headers.
    pub hostname: String,
    /// Largest message accepted, e.g. `300MB`, `25MiB`, `1000000`.
    pub max_message_size: String,
    pub max_recipients: usize,
    /// Most connections at once on each listener (relay and submission have a
    /// budget each); more get `421 4.3.2`.
    pub max_connections: usize,
    /// Most connections at once from one client address on the submission
    /// listener; more get `421 4.7.0`.
    pub submission_max_connections_per_ip: usize,
    /// Seconds to wait for a command (NOOP, RSET, HELP and VRFY do not restart
    /// the clock).
    pub command_timeout: u64,
    /// Seconds a submission client has, from connecting, to sign in (AUTH);
    /// then `421 4.7.0` and the connection closes.
    pub auth_timeout: u64,
    /// Seconds to wait for the next piece of message data.
    pub data_timeout: u64,
    /// A subject containing this tag is treated as secure (the tag is removed).
    pub subject_tag: String,
    /// Microsoft 365 tenant id (a GUID). When set, mail on `relay_listen` must
    /// carry `X-MS-Exchange-CrossTenant-Id` with this id, else 550 5.7.1: trusting
    /// Exchange Online's shared IP ranges alone would let any tenant relay.
    pub relay_tenant_id: Option<String>,
    /// PEM file of CA certificates. When set, the relay listener asks for a TLS
    /// client certificate after STARTTLS (optional for the client), checked
    /// against these CAs; a practice names its mail system's certificate with
    /// `sealpost practice relay --add-client-cert SHA256`.
    pub relay_client_ca: Option<PathBuf>,
}

impl Default for Smtp {
    fn default() -> Self {
        Self {
            relay_listen: "127.0.0.1:2525".into(),
            relay_trusted_networks: vec!["127.0.0.0/8".into()],
            submission_listen: "127.0.0.1:5870".into(),
            hostname: "localhost".into(),
            max_message_size: "300MB".into(),
            max_recipients: 100,
            max_connections: 200,
            submission_max_connections_per_ip: 20,
            command_timeout: 300,
            auth_timeout: 60,
            data_timeout: 600,
            subject_tag: "[secure]".into(),
            relay_tenant_id: None,
            relay_client_ca: None,
        }
    }
}

/// `[imap]`: mail clients read INBOX (received) and Sent with an app password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imap {
    /// IMAP with STARTTLS (sign-in only after it), e.g. `0.0.0.0:143`.
    pub listen: String,
    /// IMAP over implicit TLS, e.g. `0.0.0.0:993`.
    pub tls_listen: String,
    /// Most IMAP connections at once on each listener (`listen` and
    /// `tls_listen` have a budget each); more get `* BYE`.
    pub max_connections: usize,
    /// Most connections at once from one client address, per listener.
    pub max_connections_per_ip: usize,
    /// Seconds a client has, from connecting, to sign in; then `* BYE`.
    pub login_timeout: u64,
    /// Seconds a signed-in client may stay silent (or in IDLE) before it is logged out.
    pub idle_timeout: u64,
}

impl Default for Imap {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:1143".into(),
            tls_listen: "127.0.0.1:1993".into(),
            max_connections: 200,
            max_connections_per_ip: 50,
            login_timeout: 60,
            idle_timeout: 1800,
        }
    }
}

/// `[portal]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Portal {
    /// HTTPS listener of the web portal.
    pub listen: String,
    /// Most connections at once; more are closed at once.
    pub max_connections: usize,
    /// Seconds a client has for each of: the TLS handshake, a request's headers,
    /// a request's whole body (else `408`), and the next request on an idle
    /// connection.
    pub client_timeout: u64,
}

impl Default for Portal {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            max_connections: 1000,
            client_timeout: 30,
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain. Default `<data_dir>/certs/server.crt`, generated when absent.
    pub cert: Option<PathBuf>,
    /// PEM private key. Default `<data_dir>/certs/server.key`.
    pub key: Option<PathBuf>,
}

/// `[outbound]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// `outbox` (Maildir at `<data_dir>/outbox`) or `smarthost`.
    pub mode: String,
    /// `HOST:PORT` of the relay for `smarthost` mode.
    pub smarthost: String,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (same machine only).
    pub smarthost_tls: String,
    pub smarthost_username: Option<String>,
    pub smarthost_password: Option<String>,
    /// Accept any certificate from the smarthost (testing only).
    pub smarthost_accept_invalid_certs: bool,
    /// Notifications and bounces come from this address.
    pub from_address: String,
    /// Subject of notifications; `{sender}` becomes the sender's name. Never the original subject.
    pub notification_subject: String,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            mode: "outbox".into(),
            smarthost: "smtp.example.com:587".into(),
            smarthost_tls: "starttls".into(),
            smarthost_username: None,
            smarthost_password: None,
            smarthost_accept_invalid_certs: false,
            from_address: "secure@localhost".into(),
            notification_subject: "Secure message from {sender}".into(),
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

/// `[messages]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Messages {
    /// Days until a message self-destructs.
    pub retention_days: i64,
}

impl Default for Messages {
    fn default() -> Self {
        Self { retention_days: 30 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: "https://localhost:8443".into(),
            data_dir: "data".into(),
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
