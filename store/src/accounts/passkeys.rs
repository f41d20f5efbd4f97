//! Passkeys (`WebAuthn`, <https://www.w3.org/TR/webauthn-3/>): registering one from
//! a signed-in session, and signing in with one, without an email address
//! (discoverable credentials). The ceremonies use webauthn-rs; their state lives
//! in `passkey_ceremonies`, keyed by the SHA-256 of a 256-bit token the browser
//! holds in a short-lived cookie, and is spent (deleted) on first use.
//!
//! A passkey proves possession of a device and (user verification) the person's
//! PIN or biometric, so a passkey sign-in counts as two factors and is not
//! blocked by a lockout that failed *password* guesses caused; failed passkey
//! attempts count against the client's throttle like failed passwords, and a
//! passkey is refused while wrong second-step codes have the account's second
//! step locked (it is a second step too).

use sqlx::Row;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Uuid,
};

use super::{Session, TokenPurpose, User, UserStatus, new_token};
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::ids::UserId;
use crate::{Auth, Error, Result};

/// How long a ceremony may take from start to finish, in seconds.
pub const CEREMONY_TTL: i64 = 300;

/// At most this many passkeys per account.
const MAX_PASSKEYS: i64 = 20;

/// A passkey as listed on the account page (never its key).
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Which ceremony a stored state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ceremony {
    Register,
    SignIn,
}

impl Ceremony {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "signin",
        }
    }
}

/// A ceremony state or credential that would not (de)serialise: an internal fault.
fn json(error: serde_json::Error) -> Error {
    Error::Io(std::io::Error::other(error))
}

fn refused(what: &str) -> Error {
    Error::invalid(format!("{what} Please try again."))
}

impl Auth<'_> {
    /// Starts adding a passkey to `user`'s account. Returns the options for
    /// `navigator.credentials.create()` and the ceremony token for the cookie.
    pub async fn start_passkey_registration(
        &self,
        webauthn: &Webauthn,
        user: &User,
    ) -> Result<(CreationChallengeResponse, String)> {
        let rows = sqlx::query("SELECT user_handle, credential_id FROM passkeys WHERE user_id = $1")
            .bind(user.id.0)
            .fetch_all(&self.db)
            .await?;
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= MAX_PASSKEYS {
            return Err(Error::invalid(format!(
                "You have {MAX_PASSKEYS} passkeys already. Remove one you no longer use first."
            )));
        }
        let handle = match rows.first() {
            Some(row) => Uuid::parse_str(&row.try_get::<String, _>("user_handle")?)
                .map_err(|_| Error::Corrupt("passkey user handle"))?,
            None => Uuid::new_v4(),
        };
        let existing = rows
            .iter()
            .map(|row| row.try_get::<Vec<u8>, _>("credential_id"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (options, state) = webauthn
            .start_passkey_registration(handle, &user.email, user.display_name(), Some(existing))
            .map_err(|e| {
                tracing::warn!(error = %e, "passkey registration could not start");
                refused("Adding a passkey could not start.")
            })?;
        // The handle goes with the state: the account gets it with its first passkey.
        let saved = format!("{handle} {}", serde_json::to_string(&state).map_err(json)?);
        let token = self.save_ceremony(Ceremony::Register, Some(user.id), &saved).await?;
        Ok((options, token))
    }

    /// Finishes adding a passkey: checks the browser's answer against the
    /// ceremony `token` started by the same user, and stores the credential.
    pub async fn finish_passkey_registration(
        &self,
        webauthn: &Webauthn,
        user: &User,
        token: &str,
        label: &str,
        credential: &RegisterPublicKeyCredential,
        client: &str,
    ) -> Result<()> {
        let label = label.trim();
        let label = if label.is_empty() { "Passkey" } else { label };
        if label.chars().count() > 80 {
            return Err(Error::invalid("Give the passkey a name of up to 80 characters."));
        }
        let (owner, state) = self.take_ceremony(Ceremony::Register, token).await?;
        if owner != Some(user.id) {
            return Err(refused("This passkey request belongs to another session."));
        }
        let (handle, state) = state.split_once(' ').ok_or(Error::TokenInvalid)?;
        let handle = Uuid::parse_str(handle).map_err(|_| Error::TokenInvalid)?;
        let state: PasskeyRegistration = serde_json::from_str(state).map_err(json)?;
        let passkey = webauthn.finish_passkey_registration(credential, &state).map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            refused("Your device's answer could not be verified.")
        })?;
        let mut tx = self.write_tx().await?;
        let already = sqlx::query("SELECT 1 AS x FROM passkeys WHERE credential_id = $1")
            .bind(passkey.cred_id().as_slice())
            .fetch_optional(&mut *tx)
            .await?;
        if already.is_some() {
            return Err(Error::Conflict("This passkey is already registered.".into()));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO passkeys (user_id, user_handle, credential_id, label, credential, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user.id.0)
        .bind(handle.to_string())
        .bind(passkey.cred_id().as_slice())
        .bind(label)
        .bind(serde_json::to_string(&passkey).map_err(json)?)
        .bind(self.now())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "passkey.add",
            object: &format!("passkey:{id}"),
            client,
        })
        .await
    }

    /// Starts a passkey sign-in (no address asked: the device offers its
    /// passkeys for this site). Refused while the client is throttled.
    pub async fn start_passkey_signin(
        &self,
        webauthn: &Webauthn,
        client: &str,
    ) -> Result<(RequestChallengeResponse, String)> {
        self.refuse_if_throttled(client).await?;
        let (options, state) = webauthn.start_discoverable_authentication().map_err(|e| {
            tracing::warn!(error = %e, "passkey sign-in could not start");
            refused("Signing in with a passkey could not start.")
        })?;
        let token = self
            .save_ceremony(Ceremony::SignIn, None, &serde_json::to_string(&state).map_err(json)?)
            .await?;
        Ok((options, token))
    }

    /// Finishes a passkey sign-in and opens a session. Any failure is audited,
    /// counts against the client's throttle, and reads as [`Error::AuthFailed`].
    pub async fn finish_passkey_signin(
        &self,
        webauthn: &Webauthn,
        token: &str,
        credential: &PublicKeyCredential,
        client: &str,
    ) -> Result<Session> {
        self.refuse_if_throttled(client).await?;
        match self.verify_passkey_signin(webauthn, token, credential).await {
            Ok((user, passkey_id)) => {
                self.audit(AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "signin.passkey",
                    object: &format!("passkey:{passkey_id}"),
                    client,
                })
                .await?;
                let token = self
                    .issue_token(TokenPurpose::Session, user.id, None, self.policy.session_max)
                    .await?;
                Ok(Session { token, user })
            }
            Err((actor, error)) => {
                tracing::info!(reason = %error, "passkey sign-in refused");
                self.throttle
                    .failed(client, self.now(), self.policy.client_failure_window);
                self.audit(AuditEvent {
                    actor: &actor,
                    action: "signin.passkey_failure",
                    object: "",
                    client,
                })
                .await?;
                Err(Error::AuthFailed)
            }
        }
    }

    /// The checks behind a passkey sign-in; on failure, who it was about (for
    /// the audit) and why (for the operator's log).
    async fn verify_passkey_signin(
        &self,
        webauthn: &Webauthn,
        token: &str,
        credential: &PublicKeyCredential,
    ) -> std::result::Result<(User, i64), (String, String)> {
        let unknown = |why: String| ("unknown".to_owned(), why);
        let (_, state) = self
            .take_ceremony(Ceremony::SignIn, token)
            .await
            .map_err(|e| unknown(format!("ceremony: {e}")))?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&state).map_err(|e| unknown(format!("state: {e}")))?;
        let (handle, credential_id) = webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|e| unknown(format!("identify: {e}")))?;
        let row = sqlx::query("SELECT id, user_id, user_handle, credential FROM passkeys WHERE credential_id = $1")
            .bind(credential_id)
            .fetch_optional(&self.db)
            .await
            .map_err(|e| unknown(format!("database: {e}")))?
            .ok_or_else(|| unknown("no such passkey".into()))?;
        let get = |name: &str| row.try_get::<String, _>(name).map_err(|e| unknown(e.to_string()));
        let id: i64 = row.try_get("id").map_err(|e| unknown(e.to_string()))?;
        let user_id = UserId(row.try_get("user_id").map_err(|e| unknown(e.to_string()))?);
        let actor = format!("user:{user_id}");
        let fail = |why: String| (actor.clone(), why);
        if get("user_handle")? != handle.to_string() {
            return Err(fail("the user handle does not match the passkey".into()));
        }
        let mut passkey: Passkey = serde_json::from_str(&get("credential")?).map_err(|e| fail(e.to_string()))?;
        let result = webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
            .map_err(|e| fail(format!("verify: {e}")))?;
        let user = self.accounts().user(user_id).await.map_err(|e| fail(e.to_string()))?;
        if user.status != UserStatus::Active {
            return Err(fail("the account is not active".into()));
        }
        let scope = super::lockout::Scope::second_step(user_id);
        if self
            .locked_until(&scope)
            .await
            .map_err(|e| fail(e.to_string()))?
            .is_some()
        {
            return Err(fail("the second step is locked after wrong codes".into()));
        }
        passkey.update_credential(&result);
        sqlx::query("UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(&passkey).map_err(|e| fail(e.to_string()))?)
            .bind(self.now())
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok((user, id))
    }

    /// The user's passkeys, newest first.
    pub async fn passkeys(&self, user: &User) -> Result<Vec<PasskeyInfo>> {
        let rows =
            sqlx::query("SELECT id, label, created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY id DESC")
                .bind(user.id.0)
                .fetch_all(&self.db)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(PasskeyInfo {
                    id: row.try_get("id")?,
                    label: row.try_get("label")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Removes one of the user's passkeys; another user's id is not found.
    pub async fn remove_passkey(&self, user: &User, id: i64, client: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "passkey.remove",
            object: &format!("passkey:{id}"),
            client,
        })
        .await
    }

    /// Stores a ceremony's state (dropping expired ones); returns its token.
    async fn save_ceremony(&self, kind: Ceremony, user: Option<UserId>, state: &str) -> Result<String> {
        let token = new_token();
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO passkey_ceremonies (hash, kind, user_id, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256(token.as_bytes()))
        .bind(kind.as_str())
        .bind(user.map(|u| u.0))
        .bind(state)
        .bind(now + CEREMONY_TTL)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Spends a ceremony: deletes it and returns its user and state, if it is of
    /// `kind` and has not expired.
    async fn take_ceremony(&self, kind: Ceremony, token: &str) -> Result<(Option<UserId>, String)> {
        if token.is_empty() || token.len() > 100 {
            return Err(Error::TokenInvalid);
        }
        let mut tx = self.write_tx().await?;
        let row =
            sqlx::query("DELETE FROM passkey_ceremonies WHERE hash = $1 RETURNING kind, user_id, state, expires_at")
                .bind(sha256(token.as_bytes()))
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let row = row.ok_or(Error::TokenInvalid)?;
        if row.try_get::<String, _>("kind")? != kind.as_str() {
            return Err(Error::TokenInvalid);
        }
        if row.try_get::<i64, _>("expires_at")? <= self.now() {
            return Err(Error::TokenExpired);
        }
        let user = row.try_get::<Option<i64>, _>("user_id")?.map(UserId);
        Ok((user, row.try_get("state")?))
    }
}
