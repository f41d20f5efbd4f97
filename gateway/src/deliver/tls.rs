//! TLS for outbound SMTP: the client configuration (the system's roots, the
//! system's roots plus the admin's own for verified delivery, or any
//! certificate for a test peer or opportunistic TLS) and the handshake with a
//! deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Failure, Smarthost};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    host: &Smarthost,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure> {
    let name = ServerName::try_from(host.host.clone())
        .map_err(|_| Failure::Temporary(format!("{:?} is not a host name", host.host)))?;
    let config = match &host.tls_config {
        Some(config) => Arc::clone(config),
        None => client_config(host.accept_invalid_certs),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| Failure::Temporary("smarthost TLS handshake timed out".into()))?
        .map_err(|e| Failure::Temporary(format!("smarthost TLS handshake: {e}")))
}

/// A verifying configuration that trusts the system's roots and `extra` (PEM
/// certificates of a private CA an admin names for verified delivery).
pub fn verifying_config(extra: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default versions");
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in extra {
        let _ = roots.add(cert.clone());
    }
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Trusts the system's certificate store, or anything when told to (tests only).
/// Built once per process for each kind: reading the system's roots is not free.
fn client_config(accept_invalid_certs: bool) -> Arc<ClientConfig> {
    static VERIFYING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static ACCEPTING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cell = if accept_invalid_certs { &ACCEPTING } else { &VERIFYING };
    Arc::clone(cell.get_or_init(|| build_client_config(accept_invalid_certs)))
}

fn build_client_config(accept_invalid_certs: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default versions");
    let config = if accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Arc::new(config)
}

/// Accepts any server certificate, still checking handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
