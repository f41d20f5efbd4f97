//! One signing domain's keys: an RSA-SHA256 signer and, when its key is
//! there, an Ed25519-SHA256 one (RFC 8463) under its own selector.

use std::path::Path;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};

use super::keys::{ed25519_from_pem, rsa_from_pem};

/// The headers we sign when present.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
];

/// The loaded keys of one signing domain (`d=`) with their selectors.
pub struct DomainSigner {
    rsa: DkimSigner<RsaKey<Sha256>, Done>,
    ed25519: Option<DkimSigner<Ed25519Key, Done>>,
    pub domain: String,
    pub selector: String,
    /// The Ed25519 key's selector, when that key is loaded.
    pub ed25519_selector: Option<String>,
}

impl std::fmt::Debug for DomainSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}._domainkey.{}", self.selector, self.domain)?;
        if let Some(selector) = &self.ed25519_selector {
            write!(f, " + {selector}._domainkey.{}", self.domain)?;
        }
        Ok(())
    }
}

fn read_key(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok(Some(pem)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read DKIM key {}: {e}", path.display())),
    }
}

impl DomainSigner {
    /// Loads the RSA key at `path` for `domain`; `Ok(None)` when there is no
    /// key file.
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Option<Self>, String> {
        let Some(pem) = read_key(path)? else {
            return Ok(None);
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let rsa = DkimSigner::from_key(rsa_from_pem(path, &pem)?)
            .domain(domain.as_str())
            .selector(selector)
            .headers(SIGNED_HEADERS);
        Ok(Some(Self {
            rsa,
            ed25519: None,
            domain,
            selector: selector.to_owned(),
            ed25519_selector: None,
        }))
    }

    /// Adds the Ed25519 key at `path` under `selector`; without the file, the
    /// mail stays signed with RSA alone.
    pub fn with_ed25519(mut self, path: &Path, selector: &str) -> Result<Self, String> {
        let Some(pem) = read_key(path)? else {
            return Ok(self);
        };
        let key = ed25519_from_pem(path, &pem)?;
        self.ed25519 = Some(
            DkimSigner::from_key(key)
                .domain(self.domain.as_str())
                .selector(selector)
                .headers(SIGNED_HEADERS),
        );
        self.ed25519_selector = Some(selector.to_owned());
        Ok(self)
    }

    /// The `DKIM-Signature` headers for `message` (Ed25519 first, then RSA);
    /// empty when neither could be made.
    pub(super) fn signatures(&self, message: &[u8]) -> String {
        let mut headers = String::new();
        if let Some(ed25519) = &self.ed25519 {
            match ed25519.sign(message) {
                Ok(signature) => headers.push_str(&signature.to_header()),
                Err(error) => tracing::error!(%error, "DKIM Ed25519 signing failed"),
            }
        }
        match self.rsa.sign(message) {
            Ok(signature) => headers.push_str(&signature.to_header()),
            Err(error) => tracing::error!(%error, "DKIM RSA signing failed"),
        }
        headers
    }
}
