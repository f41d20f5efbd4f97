//! Signing in and the password's life: checking it (with lockout and per-client
//! throttling), setting, changing and resetting it, its history and maximum age,
//! and portal sessions.

use sqlx::Row;

use super::lockout::Scope;
use super::{TokenGrant, TokenPurpose, User, UserStatus, passwords};
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::ids::{MessageId, UserId};
use crate::{Auth, Error, Result};

/// A signed-in portal session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub user: User,
}

impl Auth<'_> {
    /// Checks an address and password (portal sign-in, SMTP AUTH). Every outcome
    /// is audited; a wrong address and a wrong password look the same to the
    /// caller, in answer and in time. Too many failures pause sign-in for the
    /// address (known or not) or throttle the client.
    pub async fn check_password(&self, email: &str, password: &str, client: &str) -> Result<User> {
        self.refuse_if_throttled(client).await?;
        self.check_account_password(email, password, client, true).await
    }

    /// Refuses (and audits) a client address that has failed too often lately.
    pub(super) async fn refuse_if_throttled(&self, client: &str) -> Result<()> {
        let policy = &self.policy;
        if !self.throttle.blocked(
            client,
            self.now(),
            policy.client_failure_limit,
            policy.client_failure_window,
        ) {
            return Ok(());
        }
        self.audit(AuditEvent {
            actor: "unknown",
            action: "signin.throttled",
            object: "",
            client,
        })
        .await?;
        Err(Error::Throttled)
    }

    /// Does `password` match `stored`? Always runs one argon2 verification (on a
    /// dummy hash without `stored`), so every answer costs the same time.
    pub(super) async fn verify_password(&self, password: &str, stored: Option<String>) -> bool {
        self.password_checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || passwords::verify(&password, stored.as_deref()))
            .await
            .unwrap_or(false)
    }

    /// How many password hashes this store has verified (dummy ones included):
    /// every answer to a password, right, wrong or for no account, runs one.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The account password itself, after the throttle: the address's lockout,
    /// failure counting and auditing. Addresses without an account go through
    /// the same steps (a dummy hash, their own failure count and lockout). With
    /// `password_allowed` false (a mail app of a two-step user) the password is
    /// checked against a dummy hash and fails.
    pub(super) async fn check_account_password(
        &self,
        email: &str,
        password: &str,
        client: &str,
        password_allowed: bool,
    ) -> Result<User> {
        let user = self.accounts().user_by_email(email).await?;
        let scope = Scope::password(email, user.as_ref());
        let locked = self.locked_until(&scope).await?.is_some();
        let stored: Option<String> = match &user {
            Some(user) if password_allowed => sqlx::query("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("password_hash")?,
            _ => None,
        };
        let ok = self.verify_password(password, stored).await;
        let actor = user
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |user| format!("user:{}", user.id));
        match user {
            _ if locked => {
                self.audit(AuditEvent {
                    actor: &actor,
                    action: "signin.locked",
                    object: "",
                    client,
                })
                .await?;
                Err(Error::Locked)
            }
            Some(user) if ok && user.status == UserStatus::Active => {
                self.clear_failures(&scope).await?;
                self.audit(AuditEvent {
                    actor: &actor,
                    action: "signin.success",
                    object: "",
                    client,
                })
                .await?;
                Ok(user)
            }
            _ => {
                self.throttle
                    .failed(client, self.now(), self.policy.client_failure_window);
                self.audit(AuditEvent {
                    actor: &actor,
                    action: "signin.failure",
                    object: if password_allowed {
                        ""
                    } else {
                        "account_password_needs_app_password"
                    },
                    client,
                })
                .await?;
                self.count_failure(&scope, self.policy.max_failed_signins, client)
                    .await?;
                Err(Error::AuthFailed)
            }
        }
    }

    /// Sets a password from a set-password link; the account becomes active.
    /// Returns the user and the message the link leads to, if any.
    pub async fn set_password(&self, token: &str, password: &str, client: &str) -> Result<(User, Option<MessageId>)> {
        let grant = self.check_token(token, TokenPurpose::SetPassword).await?;
        let user = self.accounts().user(grant.user_id).await?;
        let hash = self.new_password_hash(&user, password).await?;
        let user = self.commit_link_password(&grant, &user, hash, client).await?;
        Ok((user, grant.message_id))
    }

    /// Spends a set-password link and stores the new password in one
    /// transaction, audits it, and returns the user as now stored. Like any new
    /// password from a link (a reset), it ends every session and every other
    /// link of the user, revokes their app passwords, and lifts a lockout.
    pub(crate) async fn commit_link_password(
        &self,
        grant: &TokenGrant,
        user: &User,
        hash: String,
        client: &str,
    ) -> Result<User> {
        // A deactivated person's links died with the deactivation; none revives them.
        if user.status == UserStatus::Deactivated {
            return Err(Error::TokenInvalid);
        }
        let mut tx = self.write_tx().await?;
        self.spend_token(&mut tx, grant).await?;
        self.store_password(&mut tx, user, hash, None, true).await?;
        tx.commit().await?;
        self.mail().signal_mail();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "password.set",
            object: "",
            client,
        })
        .await?;
        self.accounts().user(user.id).await
    }

    /// A signed-in user changes their password, proving the current one first.
    /// Every other session (`keep_session` is the one asking) and every unused
    /// set-password link ends; with `revoke_app_passwords`, app passwords too.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep_session: &str,
        revoke_app_passwords: bool,
        client: &str,
    ) -> Result<()> {
        match self.check_password(&user.email, current, client).await {
            Ok(_) => {}
            Err(Error::AuthFailed) => return Err(Error::invalid("Your current password is not right.")),
            Err(other) => return Err(other),
        }
        let hash = self.new_password_hash(user, new).await?;
        let mut tx = self.write_tx().await?;
        self.store_password(&mut tx, user, hash, Some(keep_session), revoke_app_passwords)
            .await?;
        tx.commit().await?;
        self.mail().signal_mail();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "password.change",
            object: if revoke_app_passwords {
                "app_passwords_revoked"
            } else {
                ""
            },
            client,
        })
        .await
    }

    /// Checks a new password against the policy and the user's recent passwords,
    /// and hashes it.
    pub(super) async fn new_password_hash(&self, user: &User, password: &str) -> Result<String> {
        let rules = self.policy.passwords.clone();
        passwords::check_policy(password, &user.email, &rules)?;
        let mut recent: Vec<String> = Vec::new();
        if rules.history > 0 {
            let current: Option<String> = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("password_hash")?;
            recent.extend(current);
            let older = sqlx::query("SELECT hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(user.id.0)
                .bind(rules.history - 1)
                .fetch_all(&self.db)
                .await?;
            for row in older {
                recent.push(row.try_get("hash")?);
            }
        }
        let owned = password.to_owned();
        let (reused, hash) = tokio::task::spawn_blocking(move || {
            let reused = recent.iter().any(|old| passwords::verify(&owned, Some(old)));
            (reused, passwords::hash(&owned))
        })
        .await
        .map_err(|_| Error::invalid("This password can't be used."))?;
        if reused {
            return Err(Error::invalid(format!(
                "You have used this password before. Please choose one that is not among your last {}.",
                rules.history
            )));
        }
        hash
    }

    /// Makes `hash` the user's password and keeps the old one in the history.
    /// Old credentials end with it: every session but `keep_session`, pending
    /// sign-ins, unused set-password links and remembered devices, and with
    /// `revoke_app_passwords` every app password and the add-in key. A lockout of the password is
    /// lifted (a reset unlocks at once).
    pub(super) async fn store_password(
        &self,
        tx: &mut crate::write_tx::WriteTx,
        user: &User,
        hash: String,
        keep_session: Option<&str>,
        revoke_app_passwords: bool,
    ) -> Result<()> {
        let now = self.now();
        sqlx::query(
            "INSERT INTO password_history (user_id, hash, created_at)
             SELECT id, password_hash, $2 FROM users WHERE id = $1 AND password_hash IS NOT NULL",
        )
        .bind(user.id.0)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN
             (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user.id.0)
        .bind(self.policy.passwords.history.max(1))
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, status = 'active', failed_logins = 0, locked_at = NULL
             WHERE id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(user.id.0)
        .execute(&mut **tx)
        .await?;
        // A new password forgets every remembered device...
        sqlx::query("UPDATE remembered_devices SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user.id.0)
            .execute(&mut **tx)
            .await?;
        // ...ends every other session, pending sign-in and set-password link...
        let keep = keep_session.map_or_else(Vec::new, |token| sha256(token.as_bytes()));
        sqlx::query(
            "UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL AND hash <> $3
             AND purpose IN ('session', 'pending_signin', 'set_password')",
        )
        .bind(now)
        .bind(user.id.0)
        .bind(keep)
        .execute(&mut **tx)
        .await?;
        // ...and, when asked (always on a reset), every app password.
        if revoke_app_passwords {
            sqlx::query("UPDATE app_passwords SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(user.id.0)
                .execute(&mut **tx)
                .await?;
            // The add-in's contacts key was traded for a password: it goes with them.
            sqlx::query("DELETE FROM addin_keys WHERE user_id = $1")
                .bind(user.id.0)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("DELETE FROM signin_locks WHERE scope = $1")
            .bind(super::lockout::Scope::password_of(user.id).as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Signs in with a password and opens a session, without a second step.
    /// The portal uses [`crate::Auth::begin_sign_in`], which asks for one when due.
    pub async fn sign_in(&self, email: &str, password: &str, client: &str) -> Result<Session> {
        let user = self.password_step(email, password, client).await?;
        self.open_session(user).await
    }

    /// The password half of signing in: the password must be right and not
    /// past its maximum age. A password that is too old gets the caller a
    /// short-lived set-password token instead ([`Error::PasswordExpired`]).
    pub(super) async fn password_step(&self, email: &str, password: &str, client: &str) -> Result<User> {
        let user = self.check_password(email, password, client).await?;
        let max_age = self.policy.passwords.max_age_days;
        if max_age > 0 {
            let changed: Option<i64> = sqlx::query("SELECT password_changed_at FROM users WHERE id = $1")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("password_changed_at")?;
            if changed.is_some_and(|at| self.now() - at > max_age * 86_400) {
                let token = self
                    .issue_token(TokenPurpose::SetPassword, user.id, None, 15 * 60)
                    .await?;
                self.audit(AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "password.expired",
                    object: "",
                    client,
                })
                .await?;
                return Err(Error::PasswordExpired(crate::Sealed::new(token)));
            }
        }
        Ok(user)
    }

    /// Opens a portal session for a user who has passed every step.
    pub(super) async fn open_session(&self, user: User) -> Result<Session> {
        let token = self
            .issue_token(TokenPurpose::Session, user.id, None, self.policy.session_max)
            .await?;
        Ok(Session { token, user })
    }

    /// The user behind a session cookie, if the session is live. Touches it, so
    /// the idle timeout counts from the last request.
    pub async fn session_user(&self, token: &str) -> Result<Option<User>> {
        if token.len() > 100 {
            return Ok(None);
        }
        let hash = sha256(token.as_bytes());
        let now = self.now();
        let row = sqlx::query(
            "SELECT user_id FROM tokens WHERE hash = $1 AND purpose = 'session' AND used_at IS NULL
             AND expires_at > $2 AND last_seen_at > $3",
        )
        .bind(&hash)
        .bind(now)
        .bind(now - self.policy.session_idle)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("UPDATE tokens SET last_seen_at = $1 WHERE hash = $2")
            .bind(now)
            .bind(&hash)
            .execute(&self.db)
            .await?;
        let user = self.accounts().user(UserId(row.try_get("user_id")?)).await?;
        Ok((user.status == UserStatus::Active).then_some(user))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE hash = $2 AND purpose = 'session'")
            .bind(self.now())
            .bind(sha256(token.as_bytes()))
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
