//! DKIM signing (RFC 6376, RSA-SHA256, relaxed/relaxed) of the mail Sealpost
//! writes itself: notifications and bounces. Mail passing through is left as the
//! practice's mail system signed it. Keys are RSA-2048 in PKCS#8 PEM files made by
//! `sealpost dkim keygen`.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;

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

/// A loaded signing key with its domain and selector.
pub struct Dkim {
    signer: DkimSigner<RsaKey<Sha256>, Done>,
    pub domain: String,
    pub selector: String,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dkim({}._domainkey.{})", self.selector, self.domain)
    }
}

impl Dkim {
    /// Loads the key at `path`; `Ok(None)` when there is no key file.
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Option<Self>, String> {
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read DKIM key {}: {e}", path.display())),
        };
        let not_a_key = |e: &dyn std::fmt::Display| format!("{} is not an RSA private key in PEM: {e}", path.display());
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| not_a_key(&e))?;
        let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| not_a_key(&e))?;
        let signer = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS);
        Ok(Some(Self {
            signer,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
        }))
    }

    /// Returns the message with a `DKIM-Signature` header in front. A message that
    /// cannot be signed goes out unsigned rather than not at all.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.signer.sign(message) {
            Ok(signature) => {
                let mut signed = signature.to_header().into_bytes();
                signed.extend_from_slice(message);
                signed
            }
            Err(error) => {
                tracing::error!(%error, "DKIM signing failed; sending unsigned");
                message.to_vec()
            }
        }
    }
}

/// Makes a new RSA-2048 key at `path` (mode 0600) and returns its DNS record value.
pub fn generate(path: &Path) -> Result<String, String> {
    if path.exists() {
        return Err(format!(
            "{} exists already; remove it first to make a new key",
            path.display()
        ));
    }
    let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| "RSA key generation failed".to_owned())?;
    let der: Pkcs8V1Der<'_> = key.as_der().map_err(|_| "cannot encode the key".to_owned())?;
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in STANDARD.encode(der.as_ref()).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(path, pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    record(path)
}

/// The `TXT` record value for the key at `path`: `v=DKIM1; k=rsa; p=…`.
pub fn record(path: &Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| format!("{} is not PEM", path.display()))?;
    let key = KeyPair::from_pkcs8(&der).map_err(|_| format!("{} is not a PKCS#8 RSA key", path.display()))?;
    let public: PublicKeyX509Der<'_> = aws_lc_rs::signature::KeyPair::public_key(&key)
        .as_der()
        .map_err(|_| "cannot encode the public key".to_owned())?;
    Ok(format!("v=DKIM1; k=rsa; p={}", STANDARD.encode(public.as_ref())))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_refuses_to_be_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dkim/test.key");
        let record = generate(&path).unwrap();
        assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
        assert!(generate(&path).is_err());
        let dkim = Dkim::load(&path, "example.com", "sel").unwrap().unwrap();
        let signed = dkim.sign(b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n");
        let text = String::from_utf8(signed).unwrap();
        assert!(text.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"), "{text}");
        assert!(text.contains("d=example.com") && text.contains("s=sel"));
        assert!(
            Dkim::load(&dir.path().join("absent.key"), "example.com", "sel")
                .unwrap()
                .is_none()
        );
    }
}
