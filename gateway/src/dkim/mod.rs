//! DKIM signing (RFC 6376, relaxed/relaxed) of the mail Sealpost writes itself:
//! notifications and DSNs. Mail passing through is left as the practice's mail
//! system signed it. Each message gets an RSA-SHA256 signature and, when an
//! Ed25519 key is there too, an Ed25519-SHA256 one (RFC 8463) under its own
//! selector: receivers that know Ed25519 check that one, the others RSA. Keys
//! are PKCS#8 PEM files (RSA-2048, Ed25519) made by `sealpost dkim keygen`.
//!
//! Several signing domains may be loaded (`[[dkim.domains]]`: a practice that
//! sends its notifications under its own domain): a message is signed by the
//! domain of its `From` address (or the nearest parent domain that has keys),
//! else by the default domain (`[dkim]`), so DMARC finds an aligned signature.

mod keys;
mod signer;

pub use keys::{ed25519_record, generate, generate_ed25519, record};
pub use signer::DomainSigner;

/// Every loaded signing domain: the default one and the others.
pub struct Dkim {
    default: Option<DomainSigner>,
    /// By domain (lower case, no final dot).
    domains: Vec<DomainSigner>,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dkim(")?;
        for (n, signer) in self.default.iter().chain(&self.domains).enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{signer:?}")?;
        }
        f.write_str(")")
    }
}

impl Dkim {
    /// The default domain's RSA key at `path`; `Ok(None)` when there is no
    /// key file.
    pub fn load(path: &std::path::Path, domain: &str, selector: &str) -> Result<Option<Self>, String> {
        Ok(DomainSigner::load(path, domain, selector)?.map(|signer| Self {
            default: Some(signer),
            domains: Vec::new(),
        }))
    }

    /// Adds the default domain's Ed25519 key at `path` under `selector`;
    /// without the file, its mail stays signed with RSA alone.
    pub fn with_ed25519(mut self, path: &std::path::Path, selector: &str) -> Result<Self, String> {
        if let Some(signer) = self.default.take() {
            self.default = Some(signer.with_ed25519(path, selector)?);
        }
        Ok(self)
    }

    /// The default domain's signer (when it has a key) and the other domains';
    /// `None` when there is no key at all.
    #[must_use]
    pub fn new(default: Option<DomainSigner>, domains: Vec<DomainSigner>) -> Option<Self> {
        (default.is_some() || !domains.is_empty()).then_some(Self { default, domains })
    }

    /// Whether the default domain has a key.
    #[must_use]
    pub fn default_domain(&self) -> Option<&DomainSigner> {
        self.default.as_ref()
    }

    /// The other signing domains.
    #[must_use]
    pub fn domains(&self) -> &[DomainSigner] {
        &self.domains
    }

    /// The signer for mail from `domain`: that domain's, else its nearest
    /// parent's, else the default one.
    #[must_use]
    pub fn signer_for(&self, domain: &str) -> Option<&DomainSigner> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut name = domain.as_str();
        loop {
            if let Some(signer) = self.domains.iter().find(|s| s.domain == name) {
                return Some(signer);
            }
            match name.split_once('.') {
                Some((_, parent)) if parent.contains('.') => name = parent,
                _ => break,
            }
        }
        self.default.as_ref()
    }

    /// Returns the message with its `DKIM-Signature` headers in front (Ed25519
    /// first, then RSA), by the signer for its `From` domain. A message that
    /// cannot be signed goes out unsigned rather than not at all.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let domain = from_domain(message).unwrap_or_default();
        let headers = match self.signer_for(&domain) {
            Some(signer) => signer.signatures(message),
            None => String::new(),
        };
        if headers.is_empty() {
            tracing::error!("DKIM signing failed; sending unsigned");
        }
        let mut signed = headers.into_bytes();
        signed.extend_from_slice(message);
        signed
    }
}

/// The domain of the message's (first) `From` address.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
