//! `[admin]` and `[log]`: what an operator watches. The admin listener serves
//! `/healthz`, `/readyz` and Prometheus `/metrics` (see `src/admin_http.rs`);
//! logs are text for people or JSON lines for a log pipeline.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::choice::{self, Choice};

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// `HOST:PORT` of the admin listener (plain HTTP: keep it on loopback or a
    /// private network). Empty: no admin listener.
    pub listen: String,
}

impl Admin {
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if !self.listen.is_empty() && super::split_host_port(&self.listen).is_none() {
            problems.push(format!(
                "admin.listen {:?} must be HOST:PORT, e.g. \"127.0.0.1:9480\"",
                self.listen
            ));
        }
    }
}

/// `log.format`: how each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl Choice for LogFormat {
    const SECTION: &'static str = "log";
    const KEY: &'static str = "format";
    const WORDS: &'static [(&'static str, Self)] = &[("text", Self::Text), ("json", Self::Json)];
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        choice::deserialize(deserializer)
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: LogFormat,
}
