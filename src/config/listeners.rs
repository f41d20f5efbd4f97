//! `[smtp]`, `[imap]` and `[portal]`: what listens where, and its limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

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
    /// Work waiting in the pipeline (secure messages not yet sealed,
    /// notifications not yet composed, deliveries due) past which new mail gets
    /// `452 4.3.1` at MAIL FROM, so the sending MTA keeps it and tries later.
    pub max_queue_depth: u64,
}

/// The defaults are the gateway's own ([`gateway::smtp::SmtpConfig`]), so each is
/// written once.
impl Default for Smtp {
    fn default() -> Self {
        let gateway = gateway::smtp::SmtpConfig::default();
        Self {
            relay_listen: "127.0.0.1:2525".into(),
            relay_trusted_networks: gateway.trusted_networks.iter().map(ToString::to_string).collect(),
            submission_listen: "127.0.0.1:5870".into(),
            hostname: gateway.hostname,
            max_message_size: gateway.max_message_size.to_string(),
            max_recipients: gateway.max_recipients,
            max_connections: gateway.max_connections,
            submission_max_connections_per_ip: gateway.submission_max_connections_per_ip,
            command_timeout: gateway.command_timeout.as_secs(),
            auth_timeout: gateway.auth_timeout.as_secs(),
            data_timeout: gateway.data_timeout.as_secs(),
            subject_tag: store::Policy::default().subject_tag,
            relay_tenant_id: gateway.relay_tenant_id,
            relay_client_ca: None,
            max_queue_depth: gateway.max_queue_depth,
        }
    }
}

impl Smtp {
    /// The section's problems: addresses, networks, the tenant id, the CA file,
    /// sizes and limits (zero would refuse everyone).
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        check_addresses(
            [
                ("smtp.relay_listen", &self.relay_listen),
                ("smtp.submission_listen", &self.submission_listen),
            ],
            problems,
        );
        for network in &self.relay_trusted_networks {
            if parse_network(network).is_none() {
                problems.push(format!(
                    "smtp.relay_trusted_networks: {network:?} is not a network like 10.0.0.0/8"
                ));
            }
        }
        if let Some(tenant) = &self.relay_tenant_id
            && !is_guid(tenant.trim())
        {
            problems.push(format!(
                "smtp.relay_tenant_id {tenant:?} is not a tenant id like 72f988bf-86f1-41af-91ab-2d7cd011db47"
            ));
        }
        if let Some(path) = &self.relay_client_ca
            && !path.is_file()
        {
            problems.push(format!(
                "smtp.relay_client_ca {} is not a file (a PEM file of CA certificates)",
                path.display()
            ));
        }
        if let Err(e) = parse_size(&self.max_message_size) {
            problems.push(format!("smtp.max_message_size: {e}"));
        }
        if self.max_recipients == 0 || self.max_connections == 0 {
            problems.push("smtp.max_recipients and smtp.max_connections must be at least 1".into());
        }
        check_at_least_one(
            [
                (
                    "smtp.submission_max_connections_per_ip",
                    self.submission_max_connections_per_ip as u64,
                ),
                ("smtp.auth_timeout", self.auth_timeout),
                ("smtp.max_queue_depth", self.max_queue_depth),
            ],
            problems,
        );
    }

    /// `max_message_size` in bytes, as checked.
    pub(super) fn max_message_size_bytes(&self) -> u64 {
        parse_size(&self.max_message_size).unwrap_or(gateway::smtp::SmtpConfig::default().max_message_size)
    }

    /// The relay's trusted networks, as checked.
    pub(super) fn trusted_networks(&self) -> Vec<IpNet> {
        self.relay_trusted_networks
            .iter()
            .filter_map(|n| parse_network(n))
            .collect()
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

/// The limits' defaults are the gateway's own ([`gateway::imap::ImapConfig`]).
impl Default for Imap {
    fn default() -> Self {
        let gateway = gateway::imap::ImapConfig::default();
        Self {
            listen: "127.0.0.1:1143".into(),
            tls_listen: "127.0.0.1:1993".into(),
            max_connections: gateway.max_connections,
            max_connections_per_ip: gateway.max_connections_per_ip,
            login_timeout: gateway.login_timeout.as_secs(),
            idle_timeout: gateway.idle_timeout.as_secs(),
        }
    }
}

impl Imap {
    /// Limits and the sign-in deadline: zero would refuse everyone.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        check_at_least_one(
            [
                ("imap.max_connections", self.max_connections as u64),
                ("imap.max_connections_per_ip", self.max_connections_per_ip as u64),
                ("imap.login_timeout", self.login_timeout),
            ],
            problems,
        );
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

/// The limits' defaults are the portal's own ([`portal::ServeLimits`]).
impl Default for Portal {
    fn default() -> Self {
        let limits = portal::ServeLimits::default();
        Self {
            listen: "127.0.0.1:8443".into(),
            max_connections: limits.max_connections,
            client_timeout: limits.client_timeout.as_secs(),
        }
    }
}

impl Portal {
    /// An address to listen on, and limits that let someone in.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        check_addresses([("portal.listen", &self.listen)], problems);
        check_at_least_one(
            [
                ("portal.max_connections", self.max_connections as u64),
                ("portal.client_timeout", self.client_timeout),
            ],
            problems,
        );
    }
}

/// Each `(key, value)` is a socket address like `127.0.0.1:2525`.
fn check_addresses<'a>(keys: impl IntoIterator<Item = (&'static str, &'a String)>, problems: &mut Vec<String>) {
    for (key, value) in keys {
        if value.parse::<SocketAddr>().is_err() {
            problems.push(format!("{key} {value:?} is not an address like 127.0.0.1:2525"));
        }
    }
}

/// Each `(key, value)` is a limit or a deadline: zero would refuse everyone.
fn check_at_least_one(keys: impl IntoIterator<Item = (&'static str, u64)>, problems: &mut Vec<String>) {
    for (key, value) in keys {
        if value == 0 {
            problems.push(format!("{key} must be at least 1"));
        }
    }
}

/// A GUID in its usual 8-4-4-4-12 hex form.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Parses `300MB`, `25MiB`, `1.5GB`, `1000` (bytes).
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
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
    use crate::config::Config;

    #[test]
    fn defaults_are_the_gateway_and_portal_defaults() {
        let config = Config::load(None, Vec::new()).unwrap();
        let smtp = gateway::smtp::SmtpConfig::default();
        assert_eq!(config.max_message_size(), smtp.max_message_size);
        assert_eq!(config.trusted_networks(), smtp.trusted_networks);
        assert_eq!(config.smtp.hostname, smtp.hostname);
        assert_eq!(config.smtp.max_recipients, smtp.max_recipients);
        assert_eq!(config.smtp.max_connections, smtp.max_connections);
        assert_eq!(config.smtp.command_timeout, smtp.command_timeout.as_secs());
        assert_eq!(config.smtp.auth_timeout, smtp.auth_timeout.as_secs());
        assert_eq!(config.smtp.data_timeout, smtp.data_timeout.as_secs());
        assert_eq!(config.smtp.subject_tag, store::Policy::default().subject_tag);
        let imap = gateway::imap::ImapConfig::default();
        assert_eq!(config.imap.max_connections, imap.max_connections);
        assert_eq!(config.imap.login_timeout, imap.login_timeout.as_secs());
        assert_eq!(config.imap.idle_timeout, imap.idle_timeout.as_secs());
        let limits = portal::ServeLimits::default();
        assert_eq!(config.portal.max_connections, limits.max_connections);
        assert_eq!(config.portal.client_timeout, limits.client_timeout.as_secs());
    }

    #[test]
    fn listener_limits_of_zero_are_refused_by_key() {
        let problems = Config::load(
            None,
            [
                ("SEALPOST_SMTP_AUTH_TIMEOUT", "0"),
                ("SEALPOST_IMAP_MAX_CONNECTIONS_PER_IP", "0"),
                ("SEALPOST_PORTAL_CLIENT_TIMEOUT", "0"),
                ("SEALPOST_PORTAL_LISTEN", "localhost"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "smtp.auth_timeout must be at least 1",
                "imap.max_connections_per_ip must be at least 1",
                "portal.listen \"localhost\" is not an address like 127.0.0.1:2525",
                "portal.client_timeout must be at least 1",
            ]
        );
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
