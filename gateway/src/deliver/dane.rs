//! DANE for SMTP (RFC 7672): an MX host whose `_<port>._tcp.<host>` TLSA
//! records come in a DNSSEC-validated ("secure") answer must offer STARTTLS and
//! present a certificate one of them matches: DANE-EE (usage 3) matches the
//! server's own certificate or public key, names and dates unchecked (§3.1.1);
//! DANE-TA (usage 2) matches a certificate in the chain the server sends, which
//! then anchors an ordinary chain check for the MX host's name (§3.1.2). PKIX
//! usages (0, 1) are unusable for SMTP and ignored (§3.1.3).

use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// One usable TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 (DANE-TA) or 3 (DANE-EE).
    pub usage: u8,
    /// 0: the whole certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: exact; 1: SHA-256; 2: SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

/// The record's data as a zone file writes it: `3 1 1 <hex>`.
impl std::fmt::Display for Tlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.usage,
            self.selector,
            self.matching,
            hex::encode(&self.data)
        )
    }
}

impl Tlsa {
    /// Keeps the records this client can use (DANE-TA and DANE-EE with known
    /// selector and matching types).
    #[must_use]
    pub fn usable(self) -> Option<Self> {
        (matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2).then_some(self)
    }

    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            _ => match x509_parser::parse_x509_certificate(cert.as_ref()) {
                Ok((_, parsed)) => parsed.tbs_certificate.subject_pki.raw.to_vec(),
                Err(_) => return false,
            },
        };
        let digested = match self.matching {
            0 => selected,
            1 => digest::digest(&digest::SHA256, &selected).as_ref().to_vec(),
            _ => digest::digest(&digest::SHA512, &selected).as_ref().to_vec(),
        };
        digested == self.data
    }
}

/// Verifies a server's certificate against its TLSA records.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    #[must_use]
    pub fn new(records: Vec<Tlsa>) -> Self {
        Self {
            records,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }

    /// A TLS client configuration that verifies with these records.
    #[must_use]
    pub fn client_config(self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::clone(&self.provider);
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth();
        Arc::new(config)
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = self.records.iter().filter(|r| r.usage == 3);
        if ee.clone().any(|record| record.matches(end_entity)) {
            return Ok(ServerCertVerified::assertion());
        }
        for record in self.records.iter().filter(|r| r.usage == 2) {
            for anchor in intermediates.iter().filter(|cert| record.matches(cert)) {
                let mut roots = RootCertStore::empty();
                if roots.add(anchor.clone().into_owned()).is_err() {
                    continue;
                }
                let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
                    .build()
                    .map_err(|e| rustls::Error::General(format!("DANE-TA: {e}")))?;
                if verifier
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .is_ok()
                {
                    return Ok(ServerCertVerified::assertion());
                }
            }
        }
        Err(rustls::Error::General(
            "no TLSA record matches the certificate (DANE)".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dane_ee_matches_the_key_or_the_certificate_and_nothing_else() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let sha256 = |bytes: &[u8]| digest::digest(&digest::SHA256, bytes).as_ref().to_vec();
        let record = |selector, matching, data| Tlsa {
            usage: 3,
            selector,
            matching,
            data,
        };
        assert!(record(1, 1, sha256(&spki)).matches(&der));
        assert!(record(0, 1, sha256(der.as_ref())).matches(&der));
        assert!(record(0, 0, der.as_ref().to_vec()).matches(&der));
        assert!(!record(1, 1, sha256(b"another key")).matches(&der));
        assert!(
            Tlsa {
                usage: 1,
                ..record(1, 1, Vec::new())
            }
            .usable()
            .is_none(),
            "PKIX-EE is unusable"
        );
        assert!(record(1, 3, Vec::new()).usable().is_none());
    }
}
