//! `[dkim]` and `[[dkim.domains]]`: the keys that sign the mail Sealpost
//! writes (notifications, DSNs) — the default signing domain's, and one pair
//! (RSA + Ed25519) per other sending domain (a practice that sends its
//! notifications under its own domain, `outbound.practice_from`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

const DEFAULT_SELECTOR: &str = "sealpost";
const DEFAULT_ED25519_SELECTOR: &str = "sealpost-ed25519";

/// `[dkim]`: signing of the mail Sealpost writes (notifications, DSNs).
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
    /// The Ed25519 key's selector (RFC 8463: a selector has one key type).
    pub ed25519_selector: String,
    /// Ed25519 key (PKCS#8 PEM). Default `<data_dir>/dkim/<ed25519_selector>.key`.
    /// Without the file, mail is signed with RSA alone.
    pub ed25519_key: Option<PathBuf>,
    /// More signing domains (`[[dkim.domains]]`): mail whose `From` is in one
    /// of them is signed with its keys; any other with the keys above.
    pub domains: Vec<DkimDomain>,
}

/// `[[dkim.domains]]`: one more signing domain and its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimDomain {
    /// The signing domain (`d=`): the domain of the `From` addresses it signs.
    pub domain: String,
    /// The RSA key's selector (default `sealpost`).
    #[serde(default = "default_selector")]
    pub selector: String,
    /// RSA key. Default `<data_dir>/dkim/<domain>/<selector>.key`.
    pub key: Option<PathBuf>,
    /// The Ed25519 key's selector (default `sealpost-ed25519`).
    #[serde(default = "default_ed25519_selector")]
    pub ed25519_selector: String,
    /// Ed25519 key. Default `<data_dir>/dkim/<domain>/<ed25519_selector>.key`.
    pub ed25519_key: Option<PathBuf>,
}

fn default_selector() -> String {
    DEFAULT_SELECTOR.into()
}

fn default_ed25519_selector() -> String {
    DEFAULT_ED25519_SELECTOR.into()
}

impl Default for Dkim {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            selector: default_selector(),
            key: None,
            ed25519_selector: default_ed25519_selector(),
            ed25519_key: None,
            domains: Vec::new(),
        }
    }
}

/// One signing domain's selectors and key files, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// Lower case, no final dot.
    pub domain: String,
    pub selector: String,
    pub key: PathBuf,
    pub ed25519_selector: String,
    pub ed25519_key: PathBuf,
    /// Whether these are `[dkim]`'s own (the default domain's).
    pub is_default: bool,
}

fn is_label(selector: &str) -> bool {
    !selector.is_empty()
        && selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A mail domain: labels of letters, digits and `-`, at least two.
pub(super) fn is_domain(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn normal(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Dkim {
    /// A signing domain and selectors that are one DNS label each, for the
    /// default domain and every other one; no domain listed twice.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if self.domain.is_empty() || self.selector.is_empty() || self.selector.contains(['.', ' ']) {
            problems.push("dkim.domain and dkim.selector must be set (a selector is one DNS label)".into());
        }
        if self.ed25519_selector.is_empty()
            || self.ed25519_selector.contains(['.', ' '])
            || self.ed25519_selector == self.selector
        {
            problems.push("dkim.ed25519_selector must be one DNS label, not the RSA key's dkim.selector".into());
        }
        let mut seen = vec![normal(&self.domain)];
        for entry in &self.domains {
            let domain = normal(&entry.domain);
            if !is_domain(&domain) {
                problems.push(format!("dkim.domains: {:?} is not a mail domain", entry.domain));
            } else if seen.contains(&domain) {
                problems.push(format!("dkim.domains: {domain:?} is listed twice (or is dkim.domain)"));
            }
            if !is_label(&entry.selector)
                || !is_label(&entry.ed25519_selector)
                || entry.selector == entry.ed25519_selector
            {
                problems.push(format!(
                    "dkim.domains {domain:?}: selector and ed25519_selector must be two different DNS labels"
                ));
            }
            seen.push(domain);
        }
    }

    /// Where the Ed25519 key is.
    #[must_use]
    pub fn ed25519_key_path(&self, data_dir: &Path) -> PathBuf {
        self.ed25519_key
            .clone()
            .unwrap_or_else(|| data_dir.join("dkim").join(format!("{}.key", self.ed25519_selector)))
    }

    /// The default domain's keys (`[dkim]`).
    #[must_use]
    pub fn default_keys(&self, data_dir: &Path) -> SigningKeys {
        SigningKeys {
            domain: normal(&self.domain),
            selector: self.selector.clone(),
            key: self
                .key
                .clone()
                .unwrap_or_else(|| data_dir.join("dkim").join(format!("{}.key", self.selector))),
            ed25519_selector: self.ed25519_selector.clone(),
            ed25519_key: self.ed25519_key_path(data_dir),
            is_default: true,
        }
    }

    /// The other signing domains' keys (`[[dkim.domains]]`), in order.
    #[must_use]
    pub fn domain_keys(&self, data_dir: &Path) -> Vec<SigningKeys> {
        self.domains
            .iter()
            .map(|entry| {
                let domain = normal(&entry.domain);
                let dir = Self::domain_dir(data_dir, &domain);
                SigningKeys {
                    key: entry
                        .key
                        .clone()
                        .unwrap_or_else(|| dir.join(format!("{}.key", entry.selector))),
                    ed25519_key: entry
                        .ed25519_key
                        .clone()
                        .unwrap_or_else(|| dir.join(format!("{}.key", entry.ed25519_selector))),
                    domain,
                    selector: entry.selector.clone(),
                    ed25519_selector: entry.ed25519_selector.clone(),
                    is_default: false,
                }
            })
            .collect()
    }

    /// The keys of `domain`: the default domain's, a listed one's, or — for a
    /// domain not listed yet — where `[[dkim.domains]]` would look by default.
    #[must_use]
    pub fn keys_for(&self, domain: &str, data_dir: &Path) -> SigningKeys {
        let domain = normal(domain);
        let default = self.default_keys(data_dir);
        if default.domain == domain {
            return default;
        }
        if let Some(keys) = self.domain_keys(data_dir).into_iter().find(|k| k.domain == domain) {
            return keys;
        }
        let dir = Self::domain_dir(data_dir, &domain);
        SigningKeys {
            key: dir.join(format!("{DEFAULT_SELECTOR}.key")),
            ed25519_key: dir.join(format!("{DEFAULT_ED25519_SELECTOR}.key")),
            domain,
            selector: default_selector(),
            ed25519_selector: default_ed25519_selector(),
            is_default: false,
        }
    }

    /// Whether `domain` signs (it is `dkim.domain` or listed).
    #[must_use]
    pub fn signs_for(&self, domain: &str) -> bool {
        let domain = normal(domain);
        normal(&self.domain) == domain || self.domains.iter().any(|entry| normal(&entry.domain) == domain)
    }

    /// The folder of a domain's keys by default: `<data_dir>/dkim/<domain>/`.
    #[must_use]
    pub fn domain_dir(data_dir: &Path, domain: &str) -> PathBuf {
        data_dir.join("dkim").join(normal(domain))
    }
}
