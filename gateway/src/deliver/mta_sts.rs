//! MTA-STS (RFC 8461): a recipient domain that publishes `_mta-sts.<domain>` TXT
//! (`v=STSv1; id=…`) and a policy at `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//! (fetched over verified HTTPS, no redirects, at most 64 KiB) says which MX
//! hosts may take its mail and whether TLS must verify (`mode: enforce`). A
//! policy is cached for its `max_age`; a TXT record whose `id` has not changed
//! keeps the cached one; a domain whose TXT record disappears keeps its cached
//! policy until it expires (§5.1). A failure to fetch a policy never blocks
//! mail when none was cached (§3.3: delivery goes on as without MTA-STS).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_resolver::TokioResolver;

/// At most this much of a policy is read.
const MAX_POLICY: usize = 64 * 1024;
/// A policy is kept at most this long whatever it says (RFC 8461 §3.2: 1 year).
const MAX_AGE: i64 = 31_557_600;

/// `mode:` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// MX hosts must match and TLS must verify, else no delivery.
    Enforce,
    /// Report only: deliver as without a policy.
    Testing,
    None,
}

/// A domain's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub mode: Mode,
    /// `mx:` patterns, lower case: `mail.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// Seconds.
    pub max_age: i64,
}

impl Policy {
    /// The policy as its text lines say it (RFC 8461 §3.2), for TLS-RPT's
    /// `policy-string`.
    #[must_use]
    pub fn text(&self) -> String {
        let mode = match self.mode {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        };
        let mut text = format!("version: STSv1\nmode: {mode}\n");
        for mx in &self.mx {
            text.push_str(&format!("mx: {mx}\n"));
        }
        text.push_str(&format!("max_age: {}", self.max_age));
        text
    }

    /// Parses the policy text (RFC 8461 §3.2); `None` if it is not a valid one.
    #[must_use]
    pub fn parse(id: &str, text: &str) -> Option<Self> {
        let mut version = false;
        let (mut mode, mut max_age, mut mx) = (None, None, Vec::new());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = value == "STSv1",
                "mode" => {
                    mode = match value {
                        "enforce" => Some(Mode::Enforce),
                        "testing" => Some(Mode::Testing),
                        "none" => Some(Mode::None),
                        _ => return None,
                    }
                }
                "max_age" => max_age = value.parse::<i64>().ok().filter(|age| *age >= 0),
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        let mode = mode?;
        if !version || (mode != Mode::None && mx.is_empty()) {
            return None;
        }
        Some(Self {
            id: id.to_owned(),
            mode,
            mx,
            max_age: max_age?.min(MAX_AGE),
        })
    }

    /// Whether an MX host name matches one of the `mx:` patterns (a `*.`
    /// pattern matches exactly one more label).
    #[must_use]
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *pattern == host,
        })
    }
}

/// Discovers, fetches and caches policies.
pub struct MtaSts {
    resolver: TokioResolver,
    http: reqwest::Client,
    /// The HTTPS port policies are fetched from: 443 (another only for tests).
    port: u16,
    cache: Mutex<HashMap<String, (Policy, i64)>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Names for reqwest resolved by our resolver (the one MX lookups use).
struct Resolve(TokioResolver);

impl reqwest::dns::Resolve for Resolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let name = format!("{}.", name.as_str().trim_end_matches('.'));
        Box::pin(async move {
            let found = resolver.lookup_ip(name.as_str()).await?;
            let addrs: Vec<std::net::SocketAddr> = found.iter().map(|ip| std::net::SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl MtaSts {
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(resolver: TokioResolver, tls: &rustls::ClientConfig, port: u16) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .dns_resolver(Arc::new(Resolve(resolver.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot set up the MTA-STS client: {e}"))?;
        Ok(Self {
            resolver,
            http,
            port,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The policy in force for `domain` at `now`, if any.
    pub async fn policy(&self, domain: &str, now: i64) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache
                .get(&domain)
                .filter(|(_, expires)| *expires > now)
                .map(|(policy, _)| policy.clone())
        };
        let Some(id) = self.txt_id(&domain).await else {
            return cached;
        };
        if let Some(policy) = cached.as_ref().filter(|policy| policy.id == id) {
            return Some(policy.clone());
        }
        match self.fetch(&domain, &id).await {
            Some(policy) => {
                let expires = now.saturating_add(policy.max_age);
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                cache.insert(domain, (policy.clone(), expires));
                Some(policy)
            }
            None => {
                tracing::warn!("an MTA-STS policy could not be fetched; the cached one (if any) stays");
                cached
            }
        }
    }

    /// The `id` of the domain's `v=STSv1` TXT record (exactly one, §3.1).
    async fn txt_id(&self, domain: &str) -> Option<String> {
        let lookup = self.resolver.txt_lookup(format!("_mta-sts.{domain}.")).await.ok()?;
        let records: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .filter(|text| text.starts_with("v=STSv1"))
            .collect();
        let [record] = records.as_slice() else {
            return None;
        };
        record.split(';').find_map(|field| {
            let (key, value) = field.trim().split_once('=')?;
            let value = value.trim();
            (key.trim() == "id"
                && !value.is_empty()
                && value.len() <= 32
                && value.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| value.to_owned())
        })
    }

    async fn fetch(&self, domain: &str, id: &str) -> Option<Policy> {
        let authority = if self.port == 443 {
            format!("mta-sts.{domain}")
        } else {
            format!("mta-sts.{domain}:{}", self.port)
        };
        let url = format!("https://{authority}/.well-known/mta-sts.txt");
        let mut response = self.http.get(url).send().await.ok()?;
        if response.status() != reqwest::StatusCode::OK {
            return None;
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !content_type.trim().to_ascii_lowercase().starts_with("text/plain") {
            return None;
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_POLICY {
                return None;
            }
        }
        Policy::parse(id, std::str::from_utf8(&body).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_parses_and_matches_mx_hosts_by_pattern() {
        let text =
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.backup.example.com\r\nmax_age: 86400\r\n";
        let policy = Policy::parse("20261202", text).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age, 86_400);
        assert!(policy.allows("MAIL.example.com."));
        assert!(policy.allows("mx1.backup.example.com"));
        assert!(!policy.allows("a.b.backup.example.com"), "one label only");
        assert!(!policy.allows("backup.example.com"));
        assert!(!policy.allows("evil-mail.example.com"));
    }

    #[test]
    fn a_policy_without_version_mode_mx_or_max_age_is_refused() {
        assert!(Policy::parse("1", "mode: enforce\nmx: a.example\nmax_age: 1\n").is_none());
        assert!(Policy::parse("1", "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n").is_none());
        assert!(Policy::parse("1", "version: STSv1\nmode: enforce\nmax_age: 1\n").is_none());
        assert!(Policy::parse("1", "version: STSv1\nmode: enforce\nmx: a.example\n").is_none());
        let long = Policy::parse(
            "1",
            "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 99999999999\n",
        )
        .unwrap();
        assert_eq!(long.max_age, MAX_AGE);
    }
}
