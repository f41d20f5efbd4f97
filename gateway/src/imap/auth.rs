//! STARTTLS (RFC 3501 §6.2.1), LOGIN and AUTHENTICATE PLAIN (RFC 4616) with the
//! store's mail-client check (app passwords; throttling and lockout included),
//! and the re-check of that credential before each command of a signed-in
//! session (a revoked app password, a new password or a lockout ends it).
//! No sign-in before TLS: the plain port says LOGINDISABLED.

use base64::Engine as _;
use imap_codec::imap_types::auth::AuthMechanism;
use tokio::io::{AsyncRead, AsyncWrite};

use super::session::{Flow, Session, State};

impl Session {
    pub(crate) fn starttls(&mut self, tag: &str) -> Flow {
        if self.tls {
            self.tagged(tag, "BAD", "TLS is already on");
            return Flow::Continue;
        }
        self.tagged(tag, "OK", "Begin TLS negotiation now");
        Flow::StartTls
    }

    pub(crate) async fn login(&mut self, tag: &str, username: &str, password: &str) {
        if !self.tls {
            self.tagged(tag, "NO", "[PRIVACYREQUIRED] Sign in only after STARTTLS");
            return;
        }
        let client = format!("imap:{}", self.peer.ip());
        match self
            .server
            .store
            .auth()
            .sign_in_mail_client(username, password, &client)
            .await
        {
            Ok((user, credential)) => {
                self.state = State::Authenticated(user);
                self.credential = Some(credential);
                let caps = self.capabilities();
                self.tagged(tag, "OK", &format!("[CAPABILITY {caps}] Signed in"));
            }
            Err(store::Error::Throttled) => {
                self.tagged(tag, "NO", "[UNAVAILABLE] Too many failed sign-ins; try again later");
            }
            Err(store::Error::AuthFailed | store::Error::NotFound) => {
                self.tagged(
                    tag,
                    "NO",
                    "[AUTHENTICATIONFAILED] Wrong address or app password (create one in the portal under Account)",
                );
            }
            // The same for addresses with and without an account.
            Err(store::Error::Locked) => {
                self.tagged(
                    tag,
                    "NO",
                    "[AUTHENTICATIONFAILED] Sign-in for this address is paused after too many failures; try again later",
                );
            }
            Err(store::Error::PasswordExpired(_)) => {
                self.tagged(tag, "NO", "[EXPIRED] Password expired; set a new one in the portal");
            }
            Err(error) => self.store_failed(tag, &error),
        }
    }

    /// Does the credential this session signed in with still hold (the app
    /// password not revoked, the password not changed, the account not
    /// locked)? Not signed in: yes. A store failure: no (fail closed).
    pub(crate) async fn credential_live(&self) -> bool {
        let (Some(user), Some(credential)) = (self.user(), &self.credential) else {
            return true;
        };
        match self.server.store.auth().mail_credential_live(user, credential).await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(%error, peer = %self.peer, "imap: could not re-check the credential");
                false
            }
        }
    }

    pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        tag: &str,
        mechanism: &AuthMechanism<'_>,
        initial: Option<Vec<u8>>,
        io: &mut S,
    ) -> std::io::Result<()> {
        if !matches!(mechanism, AuthMechanism::Plain) {
            self.tagged(tag, "NO", "[CANNOT] Only AUTHENTICATE PLAIN is offered");
            return Ok(());
        }
        if !self.tls {
            self.tagged(tag, "NO", "[PRIVACYREQUIRED] Sign in only after STARTTLS");
            return Ok(());
        }
        let response = if let Some(initial) = initial {
            initial
        } else {
            self.line("+ ");
            self.flush(io).await?;
            let Some(line) = self.input.line(io).await? else {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            };
            if line == b"*" {
                self.tagged(tag, "BAD", "Authentication cancelled");
                return Ok(());
            }
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(line.trim_ascii()) {
                decoded
            } else {
                self.tagged(tag, "BAD", "Authentication data is not base64");
                return Ok(());
            }
        };
        // authzid NUL authcid NUL password; an authzid other than the user is refused.
        let mut fields = response.split(|&b| b == 0);
        let (Some(authz), Some(authc), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            self.tagged(tag, "BAD", "Malformed PLAIN response");
            return Ok(());
        };
        if !authz.is_empty() && authz != authc {
            self.tagged(
                tag,
                "NO",
                "[AUTHORIZATIONFAILED] Acting for another user is not allowed",
            );
            return Ok(());
        }
        let username = String::from_utf8_lossy(authc).into_owned();
        let password = String::from_utf8_lossy(password).into_owned();
        self.login(tag, &username, &password).await;
        Ok(())
    }
}
