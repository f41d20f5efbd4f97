//! AUTH PLAIN (RFC 4616) and LOGIN, offered only on the submission listener and
//! only after STARTTLS. Three failures end the connection.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::ListenerKind;
use super::reply::{Reply, common};
use super::session::Session;
use super::state::{AuthStep, Next, State};

const MAX_FAILURES: u32 = 3;

fn decode(text: &str) -> Option<String> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

impl Session {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Next {
        if self.kind != ListenerKind::Submission {
            self.reply(&Reply::new(502, "5.5.1", "AUTH is offered on the submission port"));
            return Next::Continue;
        }
        if !self.tls {
            self.reply(&Reply::new(538, "5.7.11", "Encryption required: issue STARTTLS first"));
            return Next::Continue;
        }
        if self.user.is_some() {
            self.reply(&common::bad_sequence("already authenticated"));
            return Next::Continue;
        }
        if self.tx.mail_from.is_some() {
            self.reply(&common::bad_sequence("AUTH is not allowed during a mail transaction"));
            return Next::Continue;
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.state = State::Auth(AuthStep::Plain);
                self.reply(&Reply::new(334, "", ""));
            }
            AUTH_PLAIN => return self.auth_plain(&initial).await,
            AUTH_LOGIN if initial.is_empty() => {
                self.state = State::Auth(AuthStep::LoginUser);
                self.reply(&Reply::new(334, "", "VXNlcm5hbWU6"));
            }
            AUTH_LOGIN => match decode(&initial) {
                Some(user) => {
                    self.state = State::Auth(AuthStep::LoginPassword { user });
                    self.reply(&Reply::new(334, "", "UGFzc3dvcmQ6"));
                }
                None => self.reply(&Reply::new(501, "5.5.2", "Cannot decode the AUTH response")),
            },
            _ => self.reply(&Reply::new(
                504,
                "5.5.4",
                "Unrecognised authentication mechanism; use PLAIN or LOGIN",
            )),
        }
        Next::Continue
    }

    pub(super) async fn auth_continue(&mut self, line: &[u8]) -> Next {
        let State::Auth(step) = std::mem::replace(&mut self.state, State::Command) else {
            return Next::Continue;
        };
        let text = String::from_utf8_lossy(line).trim().to_owned();
        if text == "*" {
            self.reply(&Reply::new(501, "5.7.0", "Authentication cancelled"));
            return Next::Continue;
        }
        match step {
            AuthStep::Plain => self.auth_plain(&text).await,
            AuthStep::LoginUser => {
                if let Some(user) = decode(&text) {
                    self.state = State::Auth(AuthStep::LoginPassword { user });
                    self.reply(&Reply::new(334, "", "UGFzc3dvcmQ6"));
                } else {
                    self.reply(&Reply::new(501, "5.5.2", "Cannot decode the AUTH response"));
                }
                Next::Continue
            }
            AuthStep::LoginPassword { user } => {
                if let Some(password) = decode(&text) {
                    self.check_credentials(&user, &password).await
                } else {
                    self.reply(&Reply::new(501, "5.5.2", "Cannot decode the AUTH response"));
                    Next::Continue
                }
            }
        }
    }

    async fn auth_plain(&mut self, response: &str) -> Next {
        let Some(decoded) = decode(response) else {
            self.reply(&Reply::new(501, "5.5.2", "Cannot decode the AUTH response"));
            return Next::Continue;
        };
        let mut parts = decoded.split('\0');
        let (Some(authz), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.reply(&Reply::new(501, "5.5.2", "Malformed AUTH PLAIN response"));
            return Next::Continue;
        };
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
            self.reply(&Reply::new(535, "5.7.8", "Authentication credentials invalid"));
            return Next::Continue;
        }
        let (user, password) = (user.to_owned(), password.to_owned());
        self.check_credentials(&user, &password).await
    }

    async fn check_credentials(&mut self, user: &str, password: &str) -> Next {
        let client = self.client();
        match self
            .server
            .store
            .auth()
            .check_mail_client(user, password, &client)
            .await
        {
            Ok(user) => {
                self.relay_for = match self.server.store.accounts().relay_account_practice(&user).await {
                    Ok(practice) => practice,
                    Err(error) => {
                        tracing::error!(%error, "cannot look up relay accounts");
                        self.reply(&super::reply::common::temporary_failure());
                        return Next::Continue;
                    }
                };
                tracing::info!(user = %user.id, relay_account = self.relay_for.is_some(), "smtp authenticated");
                self.user = Some(user);
                self.reply(&Reply::new(235, "2.7.0", "Authentication successful"));
                Next::Continue
            }
            Err(store::Error::Throttled) => {
                self.reply(&Reply::new(
                    454,
                    "4.7.0",
                    "Too many failed authentication attempts from your address; try again later",
                ));
                Next::Quit
            }
            // A locked account answers like a wrong password: nothing to learn here.
            Err(_) => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_FAILURES {
                    self.reply(&Reply::new(
                        421,
                        "4.7.0",
                        "Too many failed authentication attempts; closing connection",
                    ));
                    return Next::Quit;
                }
                self.reply(&Reply::new(535, "5.7.8", "Authentication credentials invalid"));
                Next::Continue
            }
        }
    }
}
