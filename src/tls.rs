//! TLS for every listener: the configured certificate, or a development
//! certificate generated on first start when the files are absent.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Loads `cert` and `key` (PEM); generates a self-signed pair for `localhost`,
/// `hostname` and 127.0.0.1 when neither file exists.
pub fn load_or_generate(
    cert: &Path,
    key: &Path,
    hostname: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    if !cert.exists() && !key.exists() {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !names.iter().any(|n| n == hostname) {
            names.push(hostname.to_owned());
        }
        let generated = rcgen::generate_simple_self_signed(names).context("generating a development certificate")?;
        for path in [cert, key] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        std::fs::write(cert, generated.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
        write_private(key, generated.signing_key.serialize_pem().as_bytes())
            .with_context(|| format!("writing {}", key.display()))?;
        tracing::info!(cert = %cert.display(), "generated a development TLS certificate");
    }
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading TLS key {}", key.display()))?;
    Ok((certs, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// A rustls server configuration with our provider and the given ALPN protocols.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Checks relay clients' certificates against the CAs in `path` (PEM); a client
/// may also present none (`smtp.relay_client_ca`).
pub fn client_verifier(path: &Path) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading smtp.relay_client_ca {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("reading smtp.relay_client_ca {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate in {} is not usable", path.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("smtp.relay_client_ca {} holds no certificate", path.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .context("smtp.relay_client_ca")
}
