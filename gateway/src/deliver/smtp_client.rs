//! A streaming SMTP client (RFC 5321) for the smarthost route: STARTTLS (RFC 3207)
//! or implicit TLS, AUTH PLAIN (RFC 4616), and DATA with dot-stuffing applied as
//! the message streams, so a message of any size goes out in bounded memory.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use futures::stream::BoxStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::{Failure, Smarthost, SmarthostTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2 suggests 5 minutes for most replies, 10 after the data.
const REPLY_TIMEOUT: Duration = Duration::from_mins(5);
const DATA_END_TIMEOUT: Duration = Duration::from_mins(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Client {
    io: BufStream<Box<dyn Io>>,
}

fn io_failure(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Temporary(format!("smarthost {what}: {e}"))
}

impl Client {
    fn new(io: Box<dyn Io>) -> Self {
        Self { io: BufStream::new(io) }
    }

    /// Reads one reply (all its lines); 4xx is a temporary failure, 5xx permanent.
    async fn reply(&mut self, wait: Duration, expect: u16) -> Result<String, Failure> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(wait, self.io.read_line(&mut line))
                .await
                .map_err(|_| Failure::Temporary("smarthost timed out".into()))?
                .map_err(io_failure("read"))?;
            if read == 0 || line.len() < 4 {
                return Err(Failure::Temporary("smarthost closed the connection".into()));
            }
            text.push_str(line.trim_end());
            text.push(' ');
            if line.as_bytes()[3] != b'-' {
                break;
            }
        }
        let code: u16 = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        match code / 100 {
            c if c == expect / 100 => Ok(text),
            5 => Err(Failure::Permanent(format!("smarthost refused: {}", text.trim()))),
            _ => Err(Failure::Temporary(format!("smarthost: {}", text.trim()))),
        }
    }

    async fn command(&mut self, line: &str, expect: u16) -> Result<String, Failure> {
        self.io.write_all(line.as_bytes()).await.map_err(io_failure("write"))?;
        self.io.write_all(b"\r\n").await.map_err(io_failure("write"))?;
        self.io.flush().await.map_err(io_failure("write"))?;
        self.reply(REPLY_TIMEOUT, expect).await
    }
}

/// Sends one message to one recipient through the smarthost.
pub(super) async fn send(
    host: &Smarthost,
    helo: &str,
    from: &str,
    to: &str,
    mut body: BoxStream<'static, Result<Vec<u8>, Failure>>,
) -> Result<(), Failure> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.host.as_str(), host.port)))
        .await
        .map_err(|_| Failure::Temporary("smarthost connection timed out".into()))?
        .map_err(io_failure("connect"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match host.tls {
        SmarthostTls::Implicit => Box::new(tls_connect(host, tcp).await?),
        SmarthostTls::StartTls | SmarthostTls::None => Box::new(tcp),
    };
    let mut client = Client::new(io);
    client.reply(REPLY_TIMEOUT, 220).await?;
    let ehlo = format!("EHLO {helo}");
    let capabilities = client.command(&ehlo, 250).await?;
    if host.tls == SmarthostTls::StartTls {
        if !capabilities.to_ascii_uppercase().contains("STARTTLS") {
            return Err(Failure::Temporary(
                "smarthost does not offer STARTTLS, which is required".into(),
            ));
        }
        client.command("STARTTLS", 220).await?;
        // Nothing may be buffered after the 220 (RFC 3207 §4.2).
        let plain = client.io.into_inner();
        client = Client::new(Box::new(tls_connect(host, plain).await?));
        client.command(&ehlo, 250).await?;
    }
    if let (Some(user), Some(password)) = (&host.username, &host.password) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        client.command(&format!("AUTH PLAIN {token}"), 235).await?;
    }
    client.command(&format!("MAIL FROM:<{from}>"), 250).await?;
    client.command(&format!("RCPT TO:<{to}>"), 250).await?;
    client.command("DATA", 354).await?;
    let mut stuffer = DotStuffer::default();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        // On an error the connection drops without the final dot, so the
        // smarthost discards the partial message.
        let chunk = chunk?;
        out.clear();
        stuffer.push(&chunk, &mut out);
        client.io.write_all(&out).await.map_err(io_failure("write"))?;
    }
    out.clear();
    stuffer.finish(&mut out);
    client.io.write_all(&out).await.map_err(io_failure("write"))?;
    client.io.flush().await.map_err(io_failure("write"))?;
    client.reply(DATA_END_TIMEOUT, 250).await?;
    let _ = client.command("QUIT", 221).await;
    Ok(())
}

/// Dot-stuffing (RFC 5321 §4.5.2) and the end-of-data line, streaming.
#[derive(Debug)]
struct DotStuffer {
    line_start: bool,
    last: [u8; 2],
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self {
            line_start: true,
            last: [b'\r', b'\n'],
        }
    }
}

impl DotStuffer {
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.line_start = b == b'\n';
            self.last = [self.last[1], b];
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        if self.last != [b'\r', b'\n'] {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

async fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    host: &Smarthost,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure> {
    let name = ServerName::try_from(host.host.clone())
        .map_err(|_| Failure::Temporary(format!("{:?} is not a host name", host.host)))?;
    let connector = tokio_rustls::TlsConnector::from(client_config(host.accept_invalid_certs));
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| Failure::Temporary("smarthost TLS handshake timed out".into()))?
        .map_err(io_failure("TLS handshake"))
}

/// Trusts the system's certificate store, or anything when told to (tests only).
fn client_config(accept_invalid_certs: bool) -> Arc<ClientConfig> {
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

#[cfg(test)]
mod tests {
    use super::DotStuffer;

    fn stuff(pieces: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for piece in pieces {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn stuffs_leading_dots_across_pieces_and_ends_data() {
        assert_eq!(
            stuff(&[b".hidden\r\nline\r", b"\n.", b"\r\n"]),
            b"..hidden\r\nline\r\n..\r\n.\r\n"
        );
        assert_eq!(stuff(&[b"no final newline"]), b"no final newline\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
    }
}
