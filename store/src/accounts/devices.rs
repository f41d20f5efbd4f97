//! Signing in with two steps: the pending sign-in between the password and the
//! code, remembered devices ("remember this device" for 30 days), and the
//! phone step of a password reset.
//!
//! A pending sign-in token (256 bits, hashed, 10 minutes, spent by the second
//! step, void after 5 wrong codes) only lets its holder finish the second
//! step: it opens no session. Every second-step attempt checks the client
//! throttle and the account's lockouts first ([`super::lockout`]). A
//! remembered-device token (256 bits, hashed, per user) skips the second step
//! until it expires or the password changes.

use sqlx::Row;

use super::lockout::{SECOND_STEP_FAILURE_LIMIT, Scope, TOKEN_CODE_ATTEMPTS};
use super::two_step::{CodePurpose, Method};
use super::{Session, TokenGrant, TokenPurpose, User, new_token};
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::ids::MessageId;
use crate::{Auth, Error, Result};

/// How long a pending sign-in waits for its second step (seconds).
pub const PENDING_TTL: i64 = 10 * 60;

/// Where a sign-in stands after the password.
#[derive(Debug)]
pub enum SignIn {
    /// Every step is passed: the session.
    Done(Session),
    /// The second step is due; `pending` is the only clear copy of its token.
    SecondStep { pending: String, user: User },
}

impl Auth<'_> {
    /// Signs in with a password. Asks for the second step unless two-step is
    /// off for the user or `device` is a device they asked us to remember.
    pub async fn begin_sign_in(
        &self,
        email: &str,
        password: &str,
        device: Option<&str>,
        client: &str,
    ) -> Result<SignIn> {
        let user = self.password_step(email, password, client).await?;
        self.after_password(user, device, client).await
    }

    /// After a password is proven (or set): the session, or the second step.
    /// When the user gets codes by phone, one is sent by text right away.
    async fn after_password(&self, user: User, device: Option<&str>, client: &str) -> Result<SignIn> {
        let two_step = self.two_step(user.id).await?;
        let remembered = match device {
            Some(device) => self.device_remembered(&user, device).await?,
            None => false,
        };
        if !two_step.on || remembered {
            return Ok(SignIn::Done(self.open_session(user).await?));
        }
        let pending = self
            .issue_token(TokenPurpose::PendingSignIn, user.id, None, PENDING_TTL)
            .await?;
        if two_step.method == Some(Method::Phone) {
            match self
                .send_code(&user, CodePurpose::SignIn, super::two_step::Channel::Sms, None, client)
                .await
            {
                // Too many codes lately: the page lets the person ask again later.
                Ok(()) | Err(Error::Invalid(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(SignIn::SecondStep { pending, user })
    }

    /// The user behind a pending sign-in token.
    pub async fn pending_sign_in(&self, pending: &str) -> Result<User> {
        let grant = self.check_token(pending, TokenPurpose::PendingSignIn).await?;
        self.accounts().user(grant.user_id).await
    }

    /// Finishes a pending sign-in with its second step: the code from the
    /// user's method, or, for a user who has none yet, the code that sets one
    /// up (`method` says which). Returns the session and, when asked to
    /// remember this device, the device token for its cookie.
    ///
    /// Refused while the client is throttled or the account locked; a few wrong
    /// codes void the pending sign-in ([`Error::TokenExpired`]: start over
    /// from the password).
    pub async fn finish_sign_in(
        &self,
        pending: &str,
        method: Method,
        code: &str,
        remember: bool,
        client: &str,
    ) -> Result<(Session, Option<String>)> {
        self.refuse_if_throttled(client).await?;
        let grant = self.check_token(pending, TokenPurpose::PendingSignIn).await?;
        let user = self.accounts().user(grant.user_id).await?;
        self.refuse_if_locked(&user, true, client).await?;
        self.reserve_code_attempt(&grant).await?;
        let outcome = match self.two_step(user.id).await?.method {
            Some(set_up) => {
                self.verify_second_step(&user, set_up, CodePurpose::SignIn, code, client)
                    .await
            }
            None => match method {
                Method::Phone => self.confirm_phone(&user, code, client).await,
                Method::Totp => self.confirm_totp(&user, code, client).await,
            },
        };
        self.second_step_outcome(&grant, &user, outcome, client).await?;
        let mut tx = self.write_tx().await?;
        self.spend_token(&mut tx, &grant).await?;
        tx.commit().await?;
        let device = if remember {
            Some(self.remember_device(&user, client).await?)
        } else {
            None
        };
        Ok((self.open_session(user).await?, device))
    }

    /// Refuses (and audits) a second step while the user's second step is
    /// locked after wrong codes, or (`password_too`) their password is.
    async fn refuse_if_locked(&self, user: &User, password_too: bool, client: &str) -> Result<()> {
        let mut locked = self.locked_until(&Scope::second_step(user.id)).await?.is_some();
        if password_too && !locked {
            locked = self.locked_until(&Scope::password_of(user.id)).await?.is_some();
        }
        if !locked {
            return Ok(());
        }
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "signin.locked",
            object: "second_step",
            client,
        })
        .await?;
        Err(Error::Locked)
    }

    /// Takes one of the few code attempts a pending sign-in or set-password
    /// link allows, before the code is checked (so parallel guesses can't
    /// exceed them). None left: the token is void.
    async fn reserve_code_attempt(&self, grant: &TokenGrant) -> Result<()> {
        let taken = sqlx::query(
            "UPDATE tokens SET attempts = attempts + 1 WHERE hash = $1 AND used_at IS NULL AND attempts < $2",
        )
        .bind(&grant.hash)
        .bind(TOKEN_CODE_ATTEMPTS)
        .execute(&self.db)
        .await?
        .rows_affected();
        if taken == 1 { Ok(()) } else { Err(Error::TokenExpired) }
    }

    /// After a second-step code: a right one clears the user's second-step
    /// failures; a wrong one counts against them (enough in a row lock the
    /// second step) and, once the token's attempts are used up, voids the
    /// pending sign-in or link ([`Error::TokenExpired`]).
    async fn second_step_outcome(
        &self,
        grant: &TokenGrant,
        user: &User,
        outcome: Result<()>,
        client: &str,
    ) -> Result<()> {
        match outcome {
            Ok(()) => self.clear_failures(&Scope::second_step(user.id)).await,
            Err(Error::AuthFailed) => {
                self.count_failure(&Scope::second_step(user.id), SECOND_STEP_FAILURE_LIMIT, client)
                    .await?;
                let void = sqlx::query(
                    "UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND attempts >= $3",
                )
                .bind(self.now())
                .bind(&grant.hash)
                .bind(TOKEN_CODE_ATTEMPTS)
                .execute(&self.db)
                .await?
                .rows_affected();
                if void == 1 {
                    self.audit(AuditEvent {
                        actor: &format!("user:{}", user.id),
                        action: "two_step.token_void",
                        object: "",
                        client,
                    })
                    .await?;
                    Err(Error::TokenExpired)
                } else {
                    Err(Error::AuthFailed)
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Remembers this device for the user for `remember_days`; returns the
    /// token for its cookie.
    pub async fn remember_device(&self, user: &User, client: &str) -> Result<String> {
        let token = new_token();
        let now = self.now();
        sqlx::query("INSERT INTO remembered_devices (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sha256(token.as_bytes()))
            .bind(user.id.0)
            .bind(now)
            .bind(now + self.policy.two_step.remember_days * 86_400)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "two_step.device_remembered",
            object: "",
            client,
        })
        .await?;
        Ok(token)
    }

    /// Is `device` a live remembered device of this user?
    pub async fn device_remembered(&self, user: &User, device: &str) -> Result<bool> {
        if device.len() > 100 {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT 1 AS x FROM remembered_devices
             WHERE hash = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(sha256(device.as_bytes()))
        .bind(user.id.0)
        .bind(self.now())
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }

    /// The second step a set-password link asks for: the method of a user with
    /// two-step on and set up (a reset), else none (first password, or off).
    pub async fn reset_step(&self, token: &str) -> Result<(User, Option<Method>)> {
        let grant = self.check_token(token, TokenPurpose::SetPassword).await?;
        let user = self.accounts().user(grant.user_id).await?;
        let two_step = self.two_step(user.id).await?;
        Ok((user, two_step.method.filter(|_| two_step.on)))
    }

    /// Sends the phone code a password reset asks for.
    pub async fn send_reset_code(&self, token: &str, channel: super::two_step::Channel, client: &str) -> Result<()> {
        let (user, method) = self.reset_step(token).await?;
        if method != Some(Method::Phone) {
            return Err(Error::NotFound);
        }
        self.send_code(&user, CodePurpose::Reset, channel, None, client).await
    }

    /// Sets a password from a set-password link. A user with two-step set up
    /// must give the code (a reset is "email link plus phone code"); the
    /// password rules are checked before the code is spent. The code is a
    /// second step like a sign-in's: refused while the client is throttled or
    /// the second step locked, and a few wrong codes void the link
    /// ([`Error::TokenExpired`]: ask for a new one). A lockout of the password
    /// itself does not stop a reset: the reset is what lifts it. Then: the session,
    /// or, for a user who has yet to set two-step up, the second step.
    pub async fn set_password_checked(
        &self,
        token: &str,
        password: &str,
        code: &str,
        client: &str,
    ) -> Result<(SignIn, Option<MessageId>)> {
        let grant = self.check_token(token, TokenPurpose::SetPassword).await?;
        let user = self.accounts().user(grant.user_id).await?;
        let two_step = self.two_step(user.id).await?;
        let hash = self.new_password_hash(&user, password).await?;
        let verified = match two_step.method.filter(|_| two_step.on) {
            Some(method) => {
                if code.trim().is_empty() {
                    return Err(Error::invalid("Please enter the code we sent you."));
                }
                self.refuse_if_throttled(client).await?;
                self.refuse_if_locked(&user, false, client).await?;
                self.reserve_code_attempt(&grant).await?;
                let outcome = self
                    .verify_second_step(&user, method, CodePurpose::Reset, code, client)
                    .await;
                match self.second_step_outcome(&grant, &user, outcome, client).await {
                    Err(Error::AuthFailed) => {
                        return Err(Error::invalid(
                            "That code is not right or has expired. Please try again or ask for a new code.",
                        ));
                    }
                    other => other?,
                }
                true
            }
            None => false,
        };
        let user = self.commit_link_password(&grant, &user, hash, client).await?;
        let next = if verified {
            SignIn::Done(self.open_session(user).await?)
        } else {
            self.after_password(user, None, client).await?
        };
        Ok((next, grant.message_id))
    }

    /// How many live remembered devices the user has (for the account page).
    pub async fn remembered_devices(&self, user: &User) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM remembered_devices WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(user.id.0)
        .bind(self.now())
        .fetch_one(&self.db)
        .await?
        .try_get("n")?)
    }
}
