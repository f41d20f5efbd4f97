//! `[database]`, `[blobs]` and `[messages]`: where things are kept, and for how long.

use serde::Deserialize;

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
