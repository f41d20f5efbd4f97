//! IDLE (RFC 2177): wait for the store to say mail changed (a message sealed,
//! read in the portal or destroyed), report it, until the client says DONE. A
//! revoked app password, a new password or a lockout signals too, and ends an
//! idling session whose credential no longer holds. Every 15 s it also looks at
//! the database for changes another node made (they send no signal here).

use tokio::io::{AsyncRead, AsyncWrite};

use super::session::{Flow, Session, State};

/// How often an idling client's mailbox is looked at for changes made on
/// another node (this node's own changes arrive at once, by signal).
const OTHER_NODES_POLL: std::time::Duration = std::time::Duration::from_secs(15);

impl Session {
    pub(crate) async fn idle<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        tag: &str,
        io: &mut S,
    ) -> std::io::Result<Flow> {
        let mut changes = self.server.store.mail().mail_changes();
        changes.mark_unchanged();
        self.line("+ idling");
        self.refresh(true).await;
        self.flush(io).await?;
        let limit = self.server.config.idle_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        // Another node's changes send no signal here: look at the database now
        // and then too (several nodes on one database, issue 16).
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + OTHER_NODES_POLL, OTHER_NODES_POLL);
        loop {
            tokio::select! {
                line = self.input.line(io) => {
                    match line? {
                        Some(line) if line.eq_ignore_ascii_case(b"DONE") => {
                            self.tagged(tag, "OK", "IDLE terminated");
                            return Ok(Flow::Continue);
                        }
                        Some(_) => {
                            self.tagged(tag, "BAD", "Expected DONE");
                            return Ok(Flow::Continue);
                        }
                        None => return Ok(Flow::Close),
                    }
                }
                _ = poll.tick() => {
                    if matches!(self.state, State::Selected(..)) {
                        self.refresh(true).await;
                        self.flush(io).await?;
                    }
                }
                signal = changes.changed() => {
                    if signal.is_err() {
                        return Ok(Flow::Close);
                    }
                    changes.mark_unchanged();
                    // Revoking a credential signals too: end the session then.
                    if !self.credential_live().await {
                        self.line(super::session::CREDENTIAL_GONE);
                        return Ok(Flow::Close);
                    }
                    if matches!(self.state, State::Selected(..)) {
                        self.refresh(true).await;
                        self.flush(io).await?;
                    }
                }
                () = super::session::stop_requested(&mut self.shutdown) => {
                    self.line("* BYE [UNAVAILABLE] Server shutting down; try again later");
                    return Ok(Flow::Close);
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.line("* BYE Autologout; idle for too long");
                    return Ok(Flow::Close);
                }
            }
        }
    }
}
