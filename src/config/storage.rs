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
    /// `file://PATH` or `s3://BUCKET/PREFIX`. Default: `file://<data_dir>/blobs`.
    pub url: Option<String>,
    /// S3 only: the endpoint of an S3-compatible service (default: AWS, or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// S3 only: the region (default: `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// S3 only: allow a plain-HTTP endpoint (a test server on loopback).
    pub allow_http: bool,
    /// S3 only: credentials (default: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// or the instance's role).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
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
    /// A folder or an S3 bucket; the S3 settings only with an S3 URL.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        let s3 = self.url.as_deref().is_some_and(|url| url.starts_with("s3://"));
        if let Some(url) = &self.url
            && !url.starts_with("file://")
            && !s3
        {
            problems.push(format!("blobs.url {url:?} must start with file:// or s3://"));
        }
        let s3_settings = self.endpoint.is_some()
            || self.region.is_some()
            || self.allow_http
            || self.access_key_id.is_some()
            || self.secret_access_key.is_some();
        if s3_settings && !s3 {
            problems.push(
                "blobs.endpoint, region, allow_http, access_key_id and secret_access_key apply to an s3:// blobs.url only"
                    .into(),
            );
        }
    }

    /// The URL the store opens: for S3, the settings given here as its query.
    pub(super) fn store_url(&self, default: String) -> String {
        let Some(url) = self.url.clone() else { return default };
        if !url.starts_with("s3://") {
            return url;
        }
        let mut settings = Vec::new();
        let pairs = [
            ("endpoint", self.endpoint.as_deref()),
            ("region", self.region.as_deref()),
            ("allow_http", self.allow_http.then_some("true")),
            ("access_key_id", self.access_key_id.as_deref()),
            ("secret_access_key", self.secret_access_key.as_deref()),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                settings.push(format!("{key}={}", percent_encode(value)));
            }
        }
        if settings.is_empty() {
            return url;
        }
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}{}", settings.join("&"))
    }
}

/// Escapes everything but unreserved characters (RFC 3986).
fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
            ("SEALPOST_BLOBS_URL", "gs://bucket"),
            ("SEALPOST_MESSAGES_RETENTION_DAYS", "0"),
            ("SEALPOST_MESSAGES_EXTEND_STEP_DAYS", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "database.url \"mysql://db\" must start with sqlite:// or postgres://",
                "blobs.url \"gs://bucket\" must start with file:// or s3://",
                "messages.retention_days must be at least 1",
                "messages.extend_step_days must be at least 1",
            ]
        );
    }

    #[test]
    fn s3_settings_go_into_the_store_url_and_need_an_s3_url() {
        let config = load(&[
            ("SEALPOST_BLOBS_URL", "s3://sealpost/node-a"),
            ("SEALPOST_BLOBS_ENDPOINT", "http://127.0.0.1:9000"),
            ("SEALPOST_BLOBS_ALLOW_HTTP", "true"),
            ("SEALPOST_BLOBS_SECRET_ACCESS_KEY", "a/b+c"),
        ])
        .unwrap();
        assert_eq!(
            config.blobs_url(),
            "s3://sealpost/node-a?endpoint=http%3A%2F%2F127.0.0.1%3A9000&allow_http=true&secret_access_key=a%2Fb%2Bc"
        );
        let problems = load(&[("SEALPOST_BLOBS_REGION", "eu-west-1")]).unwrap_err();
        assert_eq!(
            problems,
            [
                "blobs.endpoint, region, allow_http, access_key_id and secret_access_key apply to an s3:// blobs.url only"
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
