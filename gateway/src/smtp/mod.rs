//! The SMTP server (RFC 5321) with ESMTP extensions SIZE (RFC 1870), 8BITMIME,
//! PIPELINING (RFC 2920), ENHANCEDSTATUSCODES (RFC 2034), SMTPUTF8 (RFC 6531),
//! STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954, only after STARTTLS on the
//! submission listener). Commands are parsed by `smtp-proto`; the session state
//! lives in [`session::Session`], one file per concern.

mod attachments;
mod auth;
mod backpressure;
mod data;
mod data_phase;
mod envelope;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod reply;
mod session;
mod state;
mod tenant;
#[cfg(test)]
mod tests;
mod thread;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::Wakers;
use crate::limits::{ConnectionLimits, Refusal};
use crate::shutdown::Shutdown;
pub use session::Session;

/// Which door a client came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// From the practice's mail system; relaying allowed from trusted networks.
    Relay,
    /// From people's mail clients; AUTH (after STARTTLS) required to send.
    Submission,
}

impl ListenerKind {
    /// The listener's name in metrics.
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Submission => "submission",
        }
    }
}

/// SMTP limits and identity.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Most connections at once on each listener (relay and submission have a
    /// budget each, so one cannot starve the other).
    pub max_connections: usize,
    /// Most connections at once from one client address on the submission
    /// listener (the relay's clients are the practice's own mail systems).
    pub submission_max_connections_per_ip: usize,
    /// Longest wait for a command line. NOOP, RSET, HELP, VRFY and refused
    /// commands do not restart this clock.
    pub command_timeout: Duration,
    /// On the submission listener, time from connecting to a successful AUTH;
    /// a client that has not signed in by then is disconnected.
    pub auth_timeout: Duration,
    /// Longest wait for the next piece of message data.
    pub data_timeout: Duration,
    pub trusted_networks: Vec<IpNet>,
    /// When set, relayed mail must carry `X-MS-Exchange-CrossTenant-Id` with
    /// this Microsoft 365 tenant id (lower case); see `tenant.rs`.
    pub relay_tenant_id: Option<String>,
    /// When set (`smtp.relay_client_ca`), the relay listener asks for a TLS
    /// client certificate after STARTTLS and checks it with this verifier; a
    /// certificate is optional, and a practice may name one as a relay source.
    pub relay_client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// Work waiting in the pipeline past which new mail gets `452 4.3.1`
    /// (see `backpressure.rs`).
    pub max_queue_depth: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: 300_000_000,
            max_recipients: 100,
            max_connections: 200,
            submission_max_connections_per_ip: 20,
            command_timeout: Duration::from_mins(5),
            auth_timeout: Duration::from_mins(1),
            data_timeout: Duration::from_mins(10),
            trusted_networks: vec!["127.0.0.0/8".parse().expect("valid network")],
            relay_tenant_id: None,
            relay_client_verifier: None,
            max_queue_depth: 10_000,
        }
    }
}

/// What every session shares.
pub struct SmtpServer {
    pub(crate) store: Arc<Store>,
    pub(crate) config: SmtpConfig,
    pub(crate) tls: Option<TlsAcceptor>,
    /// The relay listener's TLS, asking for a client certificate, when
    /// `relay_client_verifier` is set.
    relay_tls: Option<TlsAcceptor>,
    pub(crate) wakers: Wakers,
    pub(crate) backlog: backpressure::Backlog,
    relay_connections: ConnectionLimits,
    submission_connections: ConnectionLimits,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpServer {
    pub fn new(store: Arc<Store>, config: SmtpConfig, tls: Option<TlsAcceptor>, wakers: Wakers) -> Arc<Self> {
        let relay_connections = ConnectionLimits::new(config.max_connections, None);
        let submission_connections =
            ConnectionLimits::new(config.max_connections, Some(config.submission_max_connections_per_ip));
        let relay_tls = match (&config.relay_client_verifier, &tls) {
            (Some(verifier), Some(tls)) => {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                match rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
                    Ok(builder) => {
                        let mut relay = builder
                            .with_client_cert_verifier(Arc::clone(verifier))
                            .with_cert_resolver(Arc::clone(&tls.config().cert_resolver));
                        // The server's cipher order, as on the other listeners.
                        relay.ignore_client_order = true;
                        Some(TlsAcceptor::from(Arc::new(relay)))
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot set up client certificates on the relay listener");
                        None
                    }
                }
            }
            _ => None,
        };
        let backlog = backpressure::Backlog::new(config.max_queue_depth);
        Arc::new(Self {
            store,
            config,
            tls,
            relay_tls,
            wakers,
            backlog,
            relay_connections,
            submission_connections,
        })
    }

    /// Accepts connections on `listener` until `shutdown` is requested (then
    /// the listener is closed: new connections are refused) or the task is
    /// dropped. Each connection holds a clone of `shutdown` until it ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, kind: ListenerKind, mut shutdown: Shutdown) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.requested() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "smtp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { server.handle(stream, peer, kind, shutdown).await });
        }
        tracing::info!(?kind, "smtp listener closed for shutdown");
    }

    async fn handle(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr, kind: ListenerKind, shutdown: Shutdown) {
        let limits = match kind {
            ListenerKind::Relay => &self.relay_connections,
            ListenerKind::Submission => &self.submission_connections,
        };
        let _slot = match limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                let host = &self.config.hostname;
                let line = match refusal {
                    Refusal::Full => format!("421 4.3.2 {host} Too many connections; try again later\r\n"),
                    Refusal::PerAddress => {
                        format!("421 4.7.0 {host} Too many connections from your address; try again later\r\n")
                    }
                };
                tracing::info!(%peer, ?kind, ?refusal, "smtp connection refused");
                let _ = stream.write_all(line.as_bytes()).await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut session = Session::new(Arc::clone(&self), peer, kind);
        session.shutdown = Some(shutdown);
        let greeting = format!("220 {} ESMTP Sealpost ready\r\n", self.config.hostname);
        if stream.write_all(greeting.as_bytes()).await.is_err() {
            return;
        }
        match session.run(&mut stream).await {
            Ok(state::Next::StartTls) => {
                let relay_tls = self.relay_tls.clone().filter(|_| kind == ListenerKind::Relay);
                let Some(acceptor) = relay_tls.or_else(|| self.tls.clone()) else {
                    return;
                };
                match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
                    Ok(Ok(mut tls)) => {
                        session.tls_started();
                        session.client_cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|cert| hex::encode(store::crypto::sha256(cert.as_ref())));
                        if let Err(error) = session.run(&mut tls).await {
                            tracing::debug!(%error, %peer, "smtp session ended with an error");
                        }
                        let _ = tls.shutdown().await;
                    }
                    Ok(Err(error)) => tracing::info!(%error, %peer, "smtp TLS handshake failed"),
                    Err(_) => tracing::info!(%peer, "smtp TLS handshake timed out"),
                }
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, %peer, "smtp session ended with an error"),
        }
        session.abort_transaction().await;
    }
}
