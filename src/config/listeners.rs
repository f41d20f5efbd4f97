//! `[smtp]`, `[imap]` and `[portal]`: what listens where, and its limits.

use std::path::PathBuf;

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
