//! One SMTP connection: its state, the read loop, and command dispatch. The
//! envelope, data and auth commands live in their own files.

use std::net::SocketAddr;
use std::sync::Arc;

use smtp_proto::request::receiver::RequestReceiver;
use smtp_proto::{Error as ProtoError, Request};
use store::accounts::User;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::reply::{Reply, common};
use super::state::{Next, State, Transaction};
use super::{ListenerKind, SmtpServer};
use crate::shutdown::Shutdown;

/// Longest AUTH continuation line we read.
pub(super) const MAX_AUTH_LINE: usize = 4096;
/// Longest command line we accept (RFC 5321 §4.5.3.1.4 allows 512; extensions
/// make lines longer in practice).
const MAX_COMMAND_LINE: usize = 4096;

/// One SMTP session.
pub struct Session {
    pub(super) server: Arc<SmtpServer>,
    pub(super) peer: SocketAddr,
    pub(super) kind: ListenerKind,
    pub(super) trusted: bool,
    pub(super) tls: bool,
    pub(super) helo: Option<String>,
    pub(super) user: Option<User>,
    /// The practice whose SMTP AUTH relay account `user` is, if it is one: the
    /// session relays for that practice's domains (`tenant.rs`).
    pub(super) relay_for: Option<store::ids::PracticeId>,
    /// SHA-256 (lower-case hex) of the TLS client certificate the relay client
    /// presented, checked against `smtp.relay_client_ca`.
    pub(super) client_cert: Option<String>,
    pub(super) auth_failures: u32,
    pub(super) tx: Transaction,
    pub(super) state: State,
    pub(super) line: Vec<u8>,
    /// Skipping the rest of an overlong command line.
    discard_line: bool,
    receiver: RequestReceiver,
    out: Vec<u8>,
    /// When the client connected: an unauthenticated submission client has
    /// `auth_timeout` from here.
    connected: Instant,
    /// When the client last did something that moves the session on; NOOP and
    /// the like do not count, so they cannot hold a connection open.
    active: Instant,
    /// Set by the listener: once stopping is asked for, the session closes
    /// with `421` at the next command (a message being received is finished,
    /// and answered, first).
    pub(super) shutdown: Option<Shutdown>,
}

/// Why the session stops waiting for the client.
enum Deadline {
    Idle,
    Auth,
}

impl Session {
    pub fn new(server: Arc<SmtpServer>, peer: SocketAddr, kind: ListenerKind) -> Self {
        let trusted = kind == ListenerKind::Relay
            && server
                .config
                .trusted_networks
                .iter()
                .any(|net| net.contains(&peer.ip()));
        Self {
            server,
            peer,
            kind,
            trusted,
            tls: false,
            helo: None,
            user: None,
            relay_for: None,
            client_cert: None,
            auth_failures: 0,
            tx: Transaction::default(),
            state: State::Command,
            line: Vec::new(),
            discard_line: false,
            receiver: RequestReceiver::default(),
            out: Vec::new(),
            connected: Instant::now(),
            active: Instant::now(),
            shutdown: None,
        }
    }

    /// When the wait for the client's next bytes ends, and why.
    fn deadline(&self) -> (Instant, Deadline) {
        let config = &self.server.config;
        if matches!(self.state, State::Data(_)) {
            return (Instant::now() + config.data_timeout, Deadline::Idle);
        }
        let idle = self.active + config.command_timeout;
        if self.kind == ListenerKind::Submission && self.user.is_none() {
            let auth = self.connected + config.auth_timeout;
            if auth < idle {
                return (auth, Deadline::Auth);
            }
        }
        (idle, Deadline::Idle)
    }

    pub(super) fn reply(&mut self, reply: &Reply) {
        if reply.code >= 400 {
            telemetry::metrics().refused(reply.status);
        }
        reply.write_to(&mut self.out);
    }

    pub(super) fn client(&self) -> String {
        format!("smtp:{}", self.peer.ip())
    }

    /// After the TLS handshake the session starts over (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.tx = Transaction::default();
        self.receiver = RequestReceiver::default();
        self.state = State::Command;
    }

    /// Drops a half-received message, if any.
    pub async fn abort_transaction(&mut self) {
        if let State::Data(phase) = std::mem::replace(&mut self.state, State::Command) {
            phase.discard().await;
        }
        self.tx = Transaction::default();
    }

    /// Reads and answers until the client quits, times out, or asks for TLS.
    /// Replies to pipelined commands go out together once the input is used up.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<Next> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let between_commands = matches!(self.state, State::Command);
            if between_commands && self.shutdown.as_ref().is_some_and(Shutdown::is_requested) {
                return self.close_for_shutdown(stream).await;
            }
            let (deadline, why) = self.deadline();
            let waited = tokio::select! {
                () = stop_requested(&mut self.shutdown), if between_commands => None,
                waited = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => Some(waited),
            };
            let Some(waited) = waited else {
                return self.close_for_shutdown(stream).await;
            };
            let read = if let Ok(read) = waited {
                read?
            } else {
                let host = &self.server.config.hostname;
                let reply = match why {
                    Deadline::Idle => Reply::new(421, "4.4.2", format!("{host} Timeout, closing connection")),
                    Deadline::Auth => Reply::new(
                        421,
                        "4.7.0",
                        format!("{host} Authentication not completed in time, closing connection"),
                    ),
                };
                self.reply(&reply);
                stream.write_all(&std::mem::take(&mut self.out)).await?;
                self.abort_transaction().await;
                return Ok(Next::Quit);
            };
            if read == 0 {
                self.abort_transaction().await;
                return Ok(Next::Quit);
            }
            let mut bytes = buf[..read].iter();
            let mut next = Next::Continue;
            while !bytes.as_slice().is_empty() && next == Next::Continue {
                // Stopping: the message in flight is finished, no further
                // pipelined command is run (the loop's top says 421).
                if matches!(self.state, State::Command) && self.shutdown.as_ref().is_some_and(Shutdown::is_requested) {
                    break;
                }
                next = self.ingest(&mut bytes).await;
            }
            if !self.out.is_empty() {
                stream.write_all(&std::mem::take(&mut self.out)).await?;
                stream.flush().await?;
            }
            if next != Next::Continue {
                // Anything pipelined after STARTTLS is dropped (RFC 3207 §4.2).
                return Ok(next);
            }
        }
    }

    /// `421` (RFC 5321 §3.8: the service is shutting down), and the end of the
    /// session; a transaction without its message yet is dropped (nothing of
    /// it was acknowledged).
    async fn close_for_shutdown<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<Next> {
        let host = self.server.config.hostname.clone();
        self.reply(&Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, try again later"),
        ));
        let written = stream.write_all(&std::mem::take(&mut self.out)).await;
        self.abort_transaction().await;
        written?;
        Ok(Next::Quit)
    }

    async fn ingest(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> Next {
        if matches!(self.state, State::Command) && self.overlong_line(bytes) {
            return Next::Continue;
        }
        if !matches!(self.state, State::Command) {
            self.active = Instant::now();
        }
        match &mut self.state {
            State::Data(_) => self.ingest_data(bytes).await,
            State::Auth(_) => {
                match read_line(&mut self.line, bytes) {
                    LineRead::Complete => {
                        let line = std::mem::take(&mut self.line);
                        return self.auth_continue(&line).await;
                    }
                    LineRead::TooLong => {
                        self.line.clear();
                        self.state = State::Command;
                        self.reply(&Reply::new(500, "5.5.6", "Authentication exchange line is too long"));
                    }
                    LineRead::Partial => {}
                }
                Next::Continue
            }
            State::Command => match self.receiver.ingest(bytes) {
                Ok(request) => {
                    let request = request.into_owned();
                    self.command(request).await
                }
                Err(ProtoError::NeedsMoreData { .. }) => Next::Continue,
                Err(error) => {
                    let reply = protocol_error(&error);
                    self.reply(&reply);
                    Next::Continue
                }
            },
        }
    }

    /// Refuses a command line longer than [`MAX_COMMAND_LINE`] whether it arrives
    /// in one read or several, and skips it whole. Returns whether it consumed input.
    fn overlong_line(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> bool {
        let slice = bytes.as_slice();
        let newline = slice.iter().position(|&b| b == b'\n');
        if self.discard_line {
            match newline {
                Some(at) => {
                    *bytes = slice[at + 1..].iter();
                    self.discard_line = false;
                }
                None => *bytes = [].iter(),
            }
            return true;
        }
        let length = self.receiver.buf().len() + newline.map_or(slice.len(), |at| at + 1);
        if length <= MAX_COMMAND_LINE {
            return false;
        }
        self.receiver.buf().clear();
        self.reply(&Reply::new(500, "5.5.2", "Line too long"));
        if let Some(at) = newline {
            *bytes = slice[at + 1..].iter();
        } else {
            *bytes = [].iter();
            self.discard_line = true;
        }
        true
    }

    async fn command(&mut self, request: Request<String>) -> Next {
        let keeps_idle = matches!(
            request,
            Request::Noop { .. } | Request::Rset | Request::Help { .. } | Request::Vrfy { .. } | Request::Expn { .. }
        );
        if !keeps_idle {
            self.active = Instant::now();
        }
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Lhlo { .. } => self.reply(&Reply::new(500, "5.5.1", "LHLO is for LMTP; this is SMTP")),
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response).await,
            Request::StartTls => return self.starttls(),
            Request::Rset => {
                self.abort_transaction().await;
                self.reply(&common::ok());
            }
            Request::Noop { .. } => self.reply(&common::ok()),
            Request::Quit => {
                self.reply(&Reply::new(221, "2.0.0", "Bye"));
                return Next::Quit;
            }
            Request::Vrfy { .. } => self.reply(&Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user; send mail and it will be tried",
            )),
            Request::Help { .. } => self.reply(&Reply::new(214, "2.0.0", "Sealpost secure mail gateway")),
            Request::Bdat { .. } => self.reply(&Reply::new(502, "5.5.1", "BDAT is not supported; use DATA")),
            Request::Expn { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply(&Reply::new(502, "5.5.1", "Command not implemented"));
            }
        }
        Next::Continue
    }

    fn ehlo(&mut self, host: String, extended: bool) {
        let host: String = host.chars().filter(char::is_ascii_graphic).take(255).collect();
        self.helo = Some(host);
        self.tx = Transaction::default();
        let name = &self.server.config.hostname;
        if !extended {
            let reply = Reply::new(250, "", format!("{name} Hello"));
            self.reply(&reply);
            return;
        }
        let mut lines = vec![
            format!("{name} Hello"),
            "PIPELINING".into(),
            format!("SIZE {}", self.server.config.max_message_size),
        ];
        lines.extend(["8BITMIME".into(), "ENHANCEDSTATUSCODES".into(), "SMTPUTF8".into()]);
        if !self.tls && self.server.tls.is_some() {
            lines.push("STARTTLS".into());
        }
        if self.kind == ListenerKind::Submission && self.tls && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let reply = Reply::new(250, "", lines.join("\r\n"));
        self.reply(&reply);
    }

    fn starttls(&mut self) -> Next {
        if self.tls {
            self.reply(&common::bad_sequence("TLS is already active"));
            return Next::Continue;
        }
        if self.server.tls.is_none() {
            self.reply(&Reply::new(502, "5.5.1", "STARTTLS is not available"));
            return Next::Continue;
        }
        self.reply(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        Next::StartTls
    }
}

pub(super) enum LineRead {
    Complete,
    Partial,
    TooLong,
}

/// Moves bytes up to and including the next LF into `line`.
pub(super) fn read_line(line: &mut Vec<u8>, bytes: &mut std::slice::Iter<'_, u8>) -> LineRead {
    for &b in bytes.by_ref() {
        line.push(b);
        if b == b'\n' {
            return LineRead::Complete;
        }
        if line.len() > MAX_AUTH_LINE {
            return LineRead::TooLong;
        }
    }
    LineRead::Partial
}

fn protocol_error(error: &ProtoError) -> Reply {
    match error {
        ProtoError::UnknownCommand => Reply::new(500, "5.5.1", "Command not recognised"),
        ProtoError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ProtoError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        ProtoError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ProtoError::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("Invalid parameter {param:?}")),
        ProtoError::UnsupportedParameter { param } => {
            let param: String = param.chars().filter(char::is_ascii_graphic).take(40).collect();
            Reply::new(504, "5.5.4", format!("Unsupported parameter {param:?}"))
        }
        ProtoError::ResponseTooLong => Reply::new(500, "5.5.2", "Line too long"),
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Syntax error")
        }
    }
}

/// Resolves once stopping is asked for; never without a shutdown handle.
async fn stop_requested(shutdown: &mut Option<Shutdown>) {
    match shutdown {
        Some(shutdown) => shutdown.requested().await,
        None => std::future::pending().await,
    }
}
