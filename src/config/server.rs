//! `[server]`: how the running process behaves as a whole.

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Seconds a stopping server (SIGTERM, Ctrl-C) gives what is in flight —
    /// an SMTP message being received, an IMAP command, a portal request or
    /// upload — to finish before it exits anyway. 0 stops at once.
    pub shutdown_grace: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self { shutdown_grace: 30 }
    }
}
