//! The key files: makes RSA-2048 and Ed25519 keys (PKCS#8 PEM, mode 0600)
//! and reads the public halves back as the `TXT` record values to publish.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;

pub(super) fn ed25519_from_pem(path: &Path, pem: &str) -> Result<Ed25519Key, String> {
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

/// The RSA key in the PEM file at `path`.
pub(super) fn rsa_from_pem(path: &Path, pem: &str) -> Result<RsaKey<Sha256>, String> {
    let not_a_key = |e: &dyn std::fmt::Display| format!("{} is not an RSA private key in PEM: {e}", path.display());
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| not_a_key(&e))?;
    RsaKey::<Sha256>::from_key_der(der).map_err(|e| not_a_key(&e))
}
