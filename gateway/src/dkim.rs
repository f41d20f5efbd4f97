//! DKIM signing (RFC 6376, relaxed/relaxed) of the mail Sealpost writes itself:
//! notifications and DSNs. Mail passing through is left as the practice's mail
//! system signed it. Each message gets an RSA-SHA256 signature and, when an
//! Ed25519 key is there too, an Ed25519-SHA256 one (RFC 8463) under its own
//! selector: receivers that know Ed25519 check that one, the others RSA. Keys
//! are PKCS#8 PEM files (RSA-2048, Ed25519) made by `sealpost dkim keygen`.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
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

/// The loaded signing keys with their domain and selectors.
pub struct Dkim {
    signer: DkimSigner<RsaKey<Sha256>, Done>,
    ed25519: Option<DkimSigner<Ed25519Key, Done>>,
    pub domain: String,
    pub selector: String,
    /// The Ed25519 key's selector, when that key is loaded.
    pub ed25519_selector: Option<String>,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dkim({}._domainkey.{}", self.selector, self.domain)?;
        if let Some(selector) = &self.ed25519_selector {
            write!(f, " + {selector}._domainkey.{}", self.domain)?;
        }
        f.write_str(")")
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
            ed25519: None,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            ed25519_selector: None,
        }))
    }

    /// Adds the Ed25519 key at `path` under `selector`; without the file, the
    /// mail stays signed with RSA alone.
    pub fn with_ed25519(mut self, path: &Path, selector: &str) -> Result<Self, String> {
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => return Err(format!("cannot read DKIM key {}: {e}", path.display())),
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

    /// Returns the message with its `DKIM-Signature` headers in front (Ed25519
    /// first, then RSA). A message that cannot be signed goes out unsigned
    /// rather than not at all.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut headers = String::new();
        if let Some(ed25519) = &self.ed25519 {
            match ed25519.sign(message) {
                Ok(signature) => headers.push_str(&signature.to_header()),
                Err(error) => tracing::error!(%error, "DKIM Ed25519 signing failed"),
            }
        }
        match self.signer.sign(message) {
            Ok(signature) => headers.push_str(&signature.to_header()),
            Err(error) => tracing::error!(%error, "DKIM RSA signing failed"),
        }
        if headers.is_empty() {
            tracing::error!("DKIM signing failed; sending unsigned");
        }
        let mut signed = headers.into_bytes();
        signed.extend_from_slice(message);
        signed
    }
}

fn ed25519_from_pem(path: &Path, pem: &str) -> Result<Ed25519Key, String> {
    let der = pem_body(pem).ok_or_else(|| format!("{} is not PEM", path.display()))?;
    Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
        .map_err(|e| format!("{} is not an Ed25519 private key in PKCS#8 PEM: {e}", path.display()))
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).ok()
}

fn to_pem(der: &[u8]) -> String {
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in STANDARD.encode(der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Makes a new Ed25519 key at `path` (mode 0600) and returns its DNS record
/// value: `v=DKIM1; k=ed25519; p=…` (RFC 8463 §4).
pub fn generate_ed25519(path: &Path) -> Result<String, String> {
    if path.exists() {
        return Err(format!(
            "{} exists already; remove it first to make a new key",
            path.display()
        ));
    }
    let der = Ed25519Key::generate_pkcs8().map_err(|e| format!("Ed25519 key generation failed: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(path, to_pem(&der).as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    ed25519_record(path)
}

/// The `TXT` record value for the Ed25519 key at `path`.
pub fn ed25519_record(path: &Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key = ed25519_from_pem(path, &pem)?;
    Ok(format!("v=DKIM1; k=ed25519; p={}", STANDARD.encode(key.public_key())))
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
    let pem = to_pem(der.as_ref());
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

    #[test]
    fn with_an_ed25519_key_both_signatures_go_in_front() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, ed) = (dir.path().join("rsa.key"), dir.path().join("ed.key"));
        generate(&rsa).unwrap();
        let record = generate_ed25519(&ed).unwrap();
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
        // 32 bytes of public key, base64: 44 characters.
        assert_eq!(record.len(), "v=DKIM1; k=ed25519; p=".len() + 44, "{record}");
        assert!(generate_ed25519(&ed).is_err(), "never overwritten");
        assert_eq!(ed25519_record(&ed).unwrap(), record);
        let dkim = Dkim::load(&rsa, "example.com", "rsa1")
            .unwrap()
            .unwrap()
            .with_ed25519(&ed, "ed1")
            .unwrap();
        let text = String::from_utf8(dkim.sign(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")).unwrap();
        assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"), "{text}");
        assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
        assert!(text.contains("a=rsa-sha256") && text.contains("s=ed1") && text.contains("s=rsa1"));
        // A missing Ed25519 file leaves RSA alone; an RSA key is not an Ed25519 one.
        let alone = Dkim::load(&rsa, "example.com", "rsa1").unwrap().unwrap();
        let alone = alone.with_ed25519(&dir.path().join("none.key"), "ed1").unwrap();
        assert!(alone.ed25519_selector.is_none());
        let wrong = Dkim::load(&rsa, "example.com", "rsa1")
            .unwrap()
            .unwrap()
            .with_ed25519(&rsa, "ed1");
        assert!(wrong.unwrap_err().contains("not an Ed25519"));
    }
}
