//! TLS for every listener: the configured certificate, or a development
//! certificate generated on first start when the files are absent. All three TLS
//! listeners (portal, SMTP, IMAP) share one reloadable [`Certificates`] resolver;
//! [`acme`] keeps it supplied with certificates from an ACME CA.

use std::path::Path;
use std::sync::Arc;

pub mod acme;
mod info;
mod resolver;

pub use info::CertInfo;
pub use resolver::Certificates;

use std::time::Duration;

use anyhow::Context as _;
use rustls::ServerConfig;
use store::Clock;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate to serve at start: the one ACME issued earlier if ACME is on
/// and it is there, else `tls.cert`/`tls.key` (a development pair is generated
/// when both are absent).
pub fn open(config: &Config, now: i64) -> anyhow::Result<Arc<Certificates>> {
    if config.tls.acme() {
        let (cert, key) = acme::files(&config.acme_dir());
        if cert.exists() && key.exists() {
            match Certificates::from_files(&cert, &key) {
                Ok(certificates) => return Ok(certificates),
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "the saved ACME certificate is not usable; a new one will be requested");
                }
            }
        }
    }
    let (cert, key) = (config.cert_path(), config.key_path());
    generate_if_absent(&cert, &key, &config.smtp.hostname, now)?;
    Certificates::from_files(&cert, &key)
}

/// Starts what keeps the certificate fresh: the file watch (`tls.watch_interval`)
/// and, with ACME on, the HTTP-01 responder on `tls.acme_http_listen` and the
/// renewal task.
pub async fn start_tasks(
    config: &Config,
    certificates: &Arc<Certificates>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if config.tls.watch_interval > 0 {
        tasks.push(tokio::spawn(
            Arc::clone(certificates).watch(Duration::from_secs(config.tls.watch_interval)),
        ));
    }
    if config.tls.acme() {
        let addr = &config.tls.acme_http_listen;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (tls.acme_http_listen)"))?;
        let acme = acme::Acme::new(config, Arc::clone(certificates), clock);
        tasks.push(tokio::spawn(acme::http01::serve(listener, acme.challenges())));
        tasks.push(tokio::spawn(acme::renew::run(acme)));
    }
    Ok(tasks)
}

/// Days a generated development certificate is valid: the CA/Browser Forum's
/// limit for a publicly trusted certificate is 397.
pub const DEV_CERT_DAYS: i64 = 397;

/// Generates a self-signed pair for `localhost`, `hostname` and 127.0.0.1 at `cert`
/// and `key` when neither file exists, valid for [`DEV_CERT_DAYS`] from `now` (Unix
/// seconds).
pub fn generate_if_absent(cert: &Path, key: &Path, hostname: &str, now: i64) -> anyhow::Result<()> {
    if !cert.exists() && !key.exists() {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !names.iter().any(|n| n == hostname) {
            names.push(hostname.to_owned());
        }
        let mut params = rcgen::CertificateParams::new(names).context("the development certificate's names")?;
        // Midnight UTC of the day holding a Unix time.
        let date = |seconds: i64| {
            let (year, month, day) = store::clock::civil_from_days(seconds.div_euclid(86_400));
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            rcgen::date_time_ymd(year as i32, month as u8, day as u8)
        };
        params.not_before = date(now - 86_400);
        params.not_after = date(now + (DEV_CERT_DAYS - 1) * 86_400);
        let signing_key = rcgen::KeyPair::generate().context("generating a development key")?;
        let generated = params
            .self_signed(&signing_key)
            .context("generating a development certificate")?;
        for path in [cert, key] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        std::fs::write(cert, generated.pem()).with_context(|| format!("writing {}", cert.display()))?;
        write_private(key, signing_key.serialize_pem().as_bytes())
            .with_context(|| format!("writing {}", key.display()))?;
        tracing::info!(cert = %cert.display(), "generated a development TLS certificate");
    }
    Ok(())
}

/// Reads a PEM certificate chain and its private key.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading TLS key {}", key.display()))?;
    Ok((certs, key))
}

/// Writes a file only its owner may read (mode 0600).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// A rustls server configuration with our provider, the shared certificates and
/// the given ALPN protocols. The server's cipher suite order wins over the
/// client's (rustls lists the strongest first).
pub fn server_config(certificates: &Arc<Certificates>, alpn: &[&[u8]]) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(certificates) as Arc<dyn rustls::server::ResolvesServerCert>);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The one crypto provider every TLS configuration uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .context("smtp.relay_client_ca")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::aws_lc_rs::cipher_suite;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A CA, and a certificate for `localhost` it signed, as files in `dir`.
    fn ca_and_leaf(dir: &Path) -> (CertificateDer<'static>, std::path::PathBuf, std::path::PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert_path, leaf.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (ca_cert.der().clone(), cert_path, key_path)
    }

    #[tokio::test]
    async fn the_server_picks_the_cipher_suite_by_its_own_order() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = ca_and_leaf(dir.path());
        let server = server_config(&Certificates::from_files(&cert, &key).unwrap(), &[]).unwrap();
        for (versions, client_order, expected) in [
            (
                &[&rustls::version::TLS13][..],
                vec![
                    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                    cipher_suite::TLS13_AES_256_GCM_SHA384,
                ],
                cipher_suite::TLS13_AES_256_GCM_SHA384,
            ),
            (
                &[&rustls::version::TLS12][..],
                vec![
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                ],
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ),
        ] {
            let client_provider = rustls::crypto::CryptoProvider {
                cipher_suites: client_order,
                ..rustls::crypto::aws_lc_rs::default_provider()
            };
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).unwrap();
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&server));
            let serving = tokio::spawn(async move {
                let mut stream = acceptor.accept(server_io).await.unwrap();
                let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap().suite();
                stream.write_all(b"ok").await.unwrap();
                stream.shutdown().await.unwrap();
                suite
            });
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, client_io).await.unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            assert_eq!(reply, b"ok");
            assert_eq!(serving.await.unwrap(), expected.suite(), "{versions:?}");
        }
    }
}
