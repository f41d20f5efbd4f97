//! The IMAP server (`IMAP4rev1`, RFC 3501) with IDLE (RFC 2177), UIDPLUS (RFC 4315),
//! UNSELECT (RFC 3691) and STARTTLS, for reading the secure mailbox in a mail
//! client. Commands are parsed by `imap-codec` (sans-I/O); the session state
//! lives in [`session::Session`], one file per command group. Responses are
//! written by hand so a message body streams as a literal in bounded memory
//! (imap-next buffers whole responses, which a 500 MB FETCH must not).

mod auth;
mod fetch;
mod format;
mod framing;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod idle;
mod message;
mod outline;
mod search;
mod sections;
mod select;
mod sequence;
mod session;
mod source;
mod store_cmd;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use store::Store;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use session::Session;

use crate::limits::{ConnectionLimits, Refusal};
use crate::shutdown::Shutdown;

/// Refusals on the implicit-TLS port wait for a handshake (the refusal goes out
/// over TLS); at most this many at once, each for at most [`REFUSAL_HANDSHAKE`].
const MAX_TLS_REFUSALS: usize = 16;
const REFUSAL_HANDSHAKE: Duration = Duration::from_secs(5);

/// Which door a client came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapListenerKind {
    /// Plain text until STARTTLS; sign-in refused before it (LOGINDISABLED).
    StartTls,
    /// TLS from the first byte (port 993 style).
    ImplicitTls,
}

/// IMAP limits.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Most connections at once on each listener (STARTTLS and implicit TLS
    /// have a budget each).
    pub max_connections: usize,
    /// Most connections at once from one client address, per listener.
    pub max_connections_per_ip: usize,
    /// A client must sign in within this time from connecting.
    pub login_timeout: Duration,
    /// Largest literal a client may send (APPEND would need the message size).
    pub max_literal: u64,
    /// A client silent this long is logged out (RFC 9051 §5.4: at least 30 min).
    pub idle_timeout: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            max_connections: 200,
            max_connections_per_ip: 50,
            login_timeout: Duration::from_mins(1),
            max_literal: 64 * 1024,
            idle_timeout: Duration::from_mins(30),
        }
    }
}

/// What every session shares.
pub struct ImapServer {
    pub(crate) store: Arc<Store>,
    pub(crate) config: ImapConfig,
    pub(crate) tls: TlsAcceptor,
    plain_connections: ConnectionLimits,
    tls_connections: ConnectionLimits,
    tls_refusals: Arc<Semaphore>,
    /// MIME outlines of recently fetched messages, and the parse budget.
    pub(crate) outlines: outline::Outlines,
}

impl std::fmt::Debug for ImapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ImapServer {
    pub fn new(store: Arc<Store>, config: ImapConfig, tls: TlsAcceptor) -> Arc<Self> {
        let budget = || ConnectionLimits::new(config.max_connections, Some(config.max_connections_per_ip));
        let (plain_connections, tls_connections) = (budget(), budget());
        Arc::new(Self {
            store,
            config,
            tls,
            plain_connections,
            tls_connections,
            tls_refusals: Arc::new(Semaphore::new(MAX_TLS_REFUSALS)),
            outlines: outline::Outlines::default(),
        })
    }

    /// Accepts connections on `listener` until `shutdown` is requested (then
    /// the listener is closed: new connections are refused) or the task is
    /// dropped. Each connection holds a clone of `shutdown` until it ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, kind: ImapListenerKind, mut shutdown: Shutdown) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.requested() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "imap accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { server.handle(stream, peer, kind, shutdown).await });
        }
        tracing::info!(?kind, "imap listener closed for shutdown");
    }

    /// Says why a client is turned away: in the clear on the STARTTLS port, and
    /// only after the handshake on the implicit-TLS port (where a plain-text
    /// line would be garbage to the client).
    async fn refuse(&self, mut stream: TcpStream, peer: SocketAddr, kind: ImapListenerKind, refusal: Refusal) {
        tracing::info!(%peer, ?kind, ?refusal, "imap connection refused");
        let line: &[u8] = match refusal {
            Refusal::Full => b"* BYE [UNAVAILABLE] Too many connections; try again later\r\n",
            Refusal::PerAddress => b"* BYE [UNAVAILABLE] Too many connections from your address; try again later\r\n",
        };
        if kind == ImapListenerKind::StartTls {
            let _ = stream.write_all(line).await;
            return;
        }
        let Ok(_refusing) = Arc::clone(&self.tls_refusals).try_acquire_owned() else {
            return;
        };
        if let Ok(Ok(mut tls)) = tokio::time::timeout(REFUSAL_HANDSHAKE, self.tls.accept(stream)).await {
            let _ = tokio::time::timeout(REFUSAL_HANDSHAKE, async {
                let _ = tls.write_all(line).await;
                let _ = tls.shutdown().await;
            })
            .await;
        }
    }

    async fn handle(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        kind: ImapListenerKind,
        shutdown: Shutdown,
    ) {
        let limits = match kind {
            ImapListenerKind::StartTls => &self.plain_connections,
            ImapListenerKind::ImplicitTls => &self.tls_connections,
        };
        let _slot = match limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => return self.refuse(stream, peer, kind, refusal).await,
        };
        let _ = stream.set_nodelay(true);
        let handshake = Duration::from_secs(30).min(self.config.login_timeout);
        let mut session = Session::new(Arc::clone(&self), peer, kind == ImapListenerKind::ImplicitTls);
        session.shutdown = Some(shutdown);
        if kind == ImapListenerKind::ImplicitTls {
            match tokio::time::timeout(handshake, self.tls.accept(stream)).await {
                Ok(Ok(mut tls)) => {
                    run_session(&mut session, &mut tls, peer, true).await;
                    let _ = tls.shutdown().await;
                }
                Ok(Err(error)) => tracing::info!(%error, %peer, "imap TLS handshake failed"),
                Err(_) => tracing::info!(%peer, "imap TLS handshake timed out"),
            }
            return;
        }
        if !run_session(&mut session, &mut stream, peer, true).await {
            return;
        }
        match tokio::time::timeout(handshake, self.tls.accept(stream)).await {
            Ok(Ok(mut tls)) => {
                session.tls_started();
                run_session(&mut session, &mut tls, peer, false).await;
                let _ = tls.shutdown().await;
            }
            Ok(Err(error)) => tracing::info!(%error, %peer, "imap TLS handshake failed"),
            Err(_) => tracing::info!(%peer, "imap TLS handshake timed out"),
        }
    }
}

/// Runs a session on `io`; true when it asked to start TLS.
async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session,
    io: &mut S,
    peer: SocketAddr,
    greet: bool,
) -> bool {
    match session.run(io, greet).await {
        Ok(session::Next::StartTls) => true,
        Ok(session::Next::Close) => false,
        Err(error) => {
            tracing::debug!(%error, %peer, "imap session ended with an error");
            false
        }
    }
}

/// An IMAP string: quoted when short and plain, a literal otherwise (RFC 3501 §4.3).
pub(crate) fn string(out: &mut Vec<u8>, value: &[u8]) {
    let plain = value.len() < 1024 && value.iter().all(|b| (0x20..0x7f).contains(b));
    if plain {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
        out.extend_from_slice(value);
    }
}

/// An IMAP nstring: NIL or a string.
pub(crate) fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Always a literal (for header blocks and sections, which may hold CR LF).
pub(crate) fn string_literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}
