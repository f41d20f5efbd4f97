//! One IMAP connection: its state (an enum, RFC 3501 §3), the command loop and
//! the dispatch to one handler per command group.

use std::net::SocketAddr;
use std::sync::Arc;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};
use store::accounts::User;
use store::mailbox::{MailEntry, MailboxInfo, MailboxName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::ImapServer;
use super::framing::{Frame, Input, tag_of};
use crate::shutdown::Shutdown;

/// What a session hears when the credential it signed in with stops holding.
pub(crate) const CREDENTIAL_GONE: &str =
    "* BYE Signed out: the app password was revoked, the password changed or the account locked";

/// What the connection does after a session run.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    StartTls,
    Close,
}

/// The selected mailbox as this session last told the client about it.
#[derive(Debug)]
pub(crate) struct Selected {
    pub mailbox: MailboxName,
    pub read_only: bool,
    pub info: MailboxInfo,
    /// Message sequence number n is `entries[n - 1]`.
    pub entries: Vec<MailEntry>,
}

/// RFC 3501 §3 connection states.
#[derive(Debug)]
pub(crate) enum State {
    NotAuthenticated,
    Authenticated(User),
    Selected(User, Selected),
    Logout,
}

/// What a handler wants after its reply.
pub(crate) enum Flow {
    Continue,
    StartTls,
    Close,
}

/// One IMAP session.
pub struct Session {
    pub(crate) server: Arc<ImapServer>,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) state: State,
    pub(crate) input: Input,
    /// Response bytes not yet written.
    pub(crate) out: Vec<u8>,
    /// A client not signed in by then is disconnected (`login_timeout` after it
    /// connected; NOOP or CAPABILITY do not extend it).
    login_deadline: tokio::time::Instant,
    /// What the client signed in with; checked again before each command.
    pub(crate) credential: Option<store::accounts::app_passwords::MailCredential>,
    /// Set by the listener: once stopping is asked for, the session says BYE
    /// between commands (a command being answered is finished first).
    pub(crate) shutdown: Option<Shutdown>,
    /// Data keys of the messages this session has opened (FETCH).
    pub(crate) keys: store::mailbox::KeyCache,
}

impl Session {
    pub fn new(server: Arc<ImapServer>, peer: SocketAddr, tls: bool) -> Self {
        let login_deadline = tokio::time::Instant::now() + server.config.login_timeout;
        Self {
            server,
            peer,
            tls,
            state: State::NotAuthenticated,
            input: Input::default(),
            out: Vec::new(),
            login_deadline,
            credential: None,
            shutdown: None,
            keys: store::mailbox::KeyCache::default(),
        }
    }

    /// TLS is up: forget anything read before it.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.input.clear();
    }

    pub(crate) fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 IDLE UIDPLUS UNSELECT ENABLE");
        if self.tls {
            if matches!(self.state, State::NotAuthenticated) {
                caps.push_str(" AUTH=PLAIN");
            }
        } else {
            caps.push_str(" STARTTLS LOGINDISABLED");
        }
        caps
    }

    pub(crate) fn line(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(crate) fn tagged(&mut self, tag: &str, status: &str, text: &str) {
        self.line(&format!("{tag} {status} {text}"));
    }

    pub(crate) async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        if !self.out.is_empty() {
            io.write_all(&self.out).await?;
            self.out.clear();
        }
        io.flush().await
    }

    pub(crate) fn user(&self) -> Option<&User> {
        match &self.state {
            State::Authenticated(user) | State::Selected(user, _) => Some(user),
            _ => None,
        }
    }

    /// Runs commands until the client logs out, leaves, or asks for TLS.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S, greet: bool) -> std::io::Result<Next> {
        if greet {
            let caps = self.capabilities();
            self.line(&format!("* OK [CAPABILITY {caps}] Sealpost IMAP ready"));
            self.flush(io).await?;
        }
        loop {
            let max_literal = self.server.config.max_literal;
            let signed_in = self.user().is_some();
            let deadline = if signed_in {
                tokio::time::Instant::now() + self.server.config.idle_timeout
            } else {
                self.login_deadline
            };
            if self.shutdown.as_ref().is_some_and(Shutdown::is_requested) {
                return self.close_for_shutdown(io).await;
            }
            let waited = tokio::select! {
                () = stop_requested(&mut self.shutdown) => None,
                waited = tokio::time::timeout_at(deadline, self.input.command(io, max_literal)) => Some(waited),
            };
            let Some(waited) = waited else {
                return self.close_for_shutdown(io).await;
            };
            let frame = match waited {
                Ok(Ok(frame)) => frame,
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                    self.line("* BYE Input too large");
                    self.flush(io).await?;
                    return Ok(Next::Close);
                }
                Ok(Err(error)) => return Err(error),
                Err(_) if !signed_in => {
                    self.line("* BYE Autologout; not signed in in time");
                    self.flush(io).await?;
                    return Ok(Next::Close);
                }
                Err(_) => {
                    self.line("* BYE Autologout; idle for too long");
                    self.flush(io).await?;
                    return Ok(Next::Close);
                }
            };
            let bytes = match frame {
                Frame::Command(bytes) => bytes,
                Frame::Refused { tag, reason } => {
                    self.tagged(&tag, "BAD", reason);
                    self.flush(io).await?;
                    continue;
                }
                Frame::Eof => return Ok(Next::Close),
            };
            let flow = if let Ok((_, command)) = CommandCodec::default().decode(&bytes) {
                self.dispatch(command, io).await?
            } else {
                let tag = tag_of(&bytes);
                self.tagged(&tag, "BAD", "Unknown command or syntax error");
                Flow::Continue
            };
            self.flush(io).await?;
            match flow {
                Flow::Continue => {}
                Flow::StartTls => return Ok(Next::StartTls),
                Flow::Close => return Ok(Next::Close),
            }
        }
    }

    /// `* BYE` (RFC 9051 §7.1.5) because the server is stopping.
    async fn close_for_shutdown<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<Next> {
        self.line("* BYE [UNAVAILABLE] Server shutting down; try again later");
        self.flush(io).await?;
        Ok(Next::Close)
    }

    async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        command: Command<'_>,
        io: &mut S,
    ) -> std::io::Result<Flow> {
        let tag = command.tag.as_ref().to_owned();
        let name = command.body.name();
        if !self.credential_live().await {
            self.line(CREDENTIAL_GONE);
            self.state = State::Logout;
            return Ok(Flow::Close);
        }
        let authenticated = self.user().is_some();
        let selected = matches!(self.state, State::Selected(..));
        let flow = match command.body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.line(&format!("* CAPABILITY {caps}"));
                self.tagged(&tag, "OK", "CAPABILITY completed");
                Flow::Continue
            }
            CommandBody::Noop | CommandBody::Check => {
                if selected {
                    self.refresh(true).await;
                }
                self.tagged(&tag, "OK", &format!("{name} completed"));
                Flow::Continue
            }
            CommandBody::Logout => {
                self.line("* BYE Sealpost IMAP logging out");
                self.tagged(&tag, "OK", "LOGOUT completed");
                self.state = State::Logout;
                Flow::Close
            }
            CommandBody::StartTLS => self.starttls(&tag),
            CommandBody::Login { username, password } if !authenticated => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.login(&tag, &user, &pass).await;
                Flow::Continue
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                let initial = initial_response.map(|r| r.declassify().to_vec());
                self.authenticate(&tag, &mechanism, initial, io).await?;
                Flow::Continue
            }
            CommandBody::Enable { .. } if authenticated => {
                self.line("* ENABLED");
                self.tagged(&tag, "OK", "ENABLE completed");
                Flow::Continue
            }
            CommandBody::Select { mailbox, .. } if authenticated => {
                self.select(&tag, &mailbox, false).await;
                Flow::Continue
            }
            CommandBody::Examine { mailbox, .. } if authenticated => {
                self.select(&tag, &mailbox, true).await;
                Flow::Continue
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } if authenticated => {
                self.list(&tag, &reference, &mailbox_wildcard, "LIST");
                Flow::Continue
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } if authenticated => {
                self.list(&tag, &reference, &mailbox_wildcard, "LSUB");
                Flow::Continue
            }
            CommandBody::Status { mailbox, item_names } if authenticated => {
                self.status(&tag, &mailbox, &item_names).await;
                Flow::Continue
            }
            CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } if authenticated => {
                self.tagged(&tag, "OK", &format!("{name} completed"));
                Flow::Continue
            }
            CommandBody::Create { .. } | CommandBody::Delete { .. } | CommandBody::Rename { .. } if authenticated => {
                self.tagged(&tag, "NO", "[CANNOT] The mailboxes here are fixed: INBOX and Sent");
                Flow::Continue
            }
            CommandBody::Append { .. } if authenticated => {
                self.tagged(&tag, "NO", "[CANNOT] Messages arrive here only by secure mail");
                Flow::Continue
            }
            CommandBody::Idle if authenticated => self.idle(&tag, io).await?,
            CommandBody::Close | CommandBody::Unselect if selected => {
                self.close(&tag, name == "CLOSE").await;
                Flow::Continue
            }
            CommandBody::Expunge if selected => {
                self.expunge(&tag, None).await;
                Flow::Continue
            }
            CommandBody::ExpungeUid { sequence_set } if selected => {
                self.expunge(&tag, Some(&sequence_set)).await;
                Flow::Continue
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } if selected => {
                self.fetch(&tag, &sequence_set, macro_or_item_names, uid, io).await?;
                Flow::Continue
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } if selected => {
                self.store_flags(&tag, &sequence_set, kind, response, &flags, uid).await;
                Flow::Continue
            }
            CommandBody::Search { criteria, uid, .. } if selected => {
                self.search(&tag, criteria.as_ref(), uid);
                Flow::Continue
            }
            CommandBody::Copy { .. } | CommandBody::Move { .. } if selected => {
                self.tagged(&tag, "NO", "[CANNOT] Messages can't be copied between INBOX and Sent");
                Flow::Continue
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.tagged(&tag, "BAD", "Already signed in");
                Flow::Continue
            }
            _ if !authenticated => {
                self.tagged(&tag, "BAD", &format!("{name} needs a sign-in first"));
                Flow::Continue
            }
            _ if !selected && is_selected_command(name) => {
                self.tagged(&tag, "BAD", &format!("{name} needs a selected mailbox"));
                Flow::Continue
            }
            _ => {
                self.tagged(&tag, "BAD", &format!("{name} is not supported"));
                Flow::Continue
            }
        };
        Ok(flow)
    }

    /// The store failed: the client gets a short NO, the operator the detail.
    pub(crate) fn store_failed(&mut self, tag: &str, error: &store::Error) {
        tracing::warn!(%error, peer = %self.peer, "imap command failed in the store");
        self.tagged(tag, "NO", "[SERVERBUG] Internal error; try again later");
    }
}

fn is_selected_command(name: &str) -> bool {
    matches!(
        name,
        "CLOSE" | "UNSELECT" | "EXPUNGE" | "FETCH" | "STORE" | "SEARCH" | "COPY" | "MOVE" | "UID EXPUNGE"
    ) || name.starts_with("UID")
}

/// Resolves once stopping is asked for; never without a shutdown handle.
pub(crate) async fn stop_requested(shutdown: &mut Option<Shutdown>) {
    match shutdown {
        Some(shutdown) => shutdown.requested().await,
        None => std::future::pending().await,
    }
}
