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
    /// Days until a message self-destructs (a practice's User Manager may set
    /// the practice's own at `/practice/retention`).
    pub retention_days: i64,
    /// Days the sender or the practice's User Manager adds or takes off with
    /// one "Keep longer" or "Delete sooner".
    pub extend_step_days: i64,
    /// Most days a message may be kept after it was sent, however extended.
    pub max_retention_days: i64,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            retention_days: store::Policy::default().retention_days,
            extend_step_days: store::Policy::default().extend_step_days,
            max_retention_days: store::Policy::default().max_retention_days,
        }
    }
}

impl Database {
    /// A URL names a dialect the store speaks (the default, under `data_dir`, does).
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.url
            && store::db::Dialect::of(url).is_none()
        {
            problems.push(format!("database.url {url:?} must start with sqlite:// or postgres://"));
        }
    }
}

impl Blobs {
    /// Only folders hold blobs in this version (the default, under `data_dir`, is one).
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.url
            && !url.starts_with("file://")
        {
            problems.push(format!("blobs.url {url:?}: only file:// is supported in this version"));
        }
    }
}

impl Messages {
    /// A message lives at least a day.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if self.retention_days < 1 {
            problems.push("messages.retention_days must be at least 1".into());
        }
        if self.extend_step_days < 1 {
            problems.push("messages.extend_step_days must be at least 1".into());
        }
        if self.max_retention_days < self.retention_days {
            problems.push(format!(
                "messages.max_retention_days ({}) must be at least messages.retention_days ({})",
                self.max_retention_days, self.retention_days
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn storage_urls_and_retention_are_checked() {
        let problems = load(&[
            ("SEALPOST_DATABASE_URL", "mysql://db"),
            ("SEALPOST_BLOBS_URL", "s3://bucket"),
            ("SEALPOST_MESSAGES_RETENTION_DAYS", "0"),
            ("SEALPOST_MESSAGES_EXTEND_STEP_DAYS", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "database.url \"mysql://db\" must start with sqlite:// or postgres://",
                "blobs.url \"s3://bucket\": only file:// is supported in this version",
                "messages.retention_days must be at least 1",
                "messages.extend_step_days must be at least 1",
            ]
        );
    }

    #[test]
    fn retention_defaults_to_the_store_policy() {
        let config = load(&[]).unwrap();
        assert_eq!(config.messages.retention_days, store::Policy::default().retention_days);
    }

    #[test]
    fn the_most_a_message_is_kept_is_never_less_than_the_default() {
        let problems = load(&[
            ("SEALPOST_MESSAGES_RETENTION_DAYS", "60"),
            ("SEALPOST_MESSAGES_MAX_RETENTION_DAYS", "40"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            ["messages.max_retention_days (40) must be at least messages.retention_days (60)"]
        );
    }
}
