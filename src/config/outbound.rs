//! `[outbound]` and `[dkim]`: how the mail Sealpost writes leaves.

use std::path::PathBuf;

use serde::Deserialize;

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
