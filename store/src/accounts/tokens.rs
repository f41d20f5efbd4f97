//! Link and session tokens: 256 random bits, stored only as SHA-256 hashes, one
//! purpose each, expiring, and single-use where they grant a step.

use base64::Engine as _;
use sqlx::Row;

use crate::crypto::{random_bytes, sha256};
use crate::ids::{MessageId, UserId};
use crate::{Auth, Error, Result};

/// A fresh token for a link or a session: 256 random bits, URL-safe.
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Invite,
    SetPassword,
    Session,
    /// A sign-in that passed the password and waits for its second step.
    PendingSignIn,
    /// Confirms the address an email change would move the account to.
    ConfirmEmail,
}

impl TokenPurpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::SetPassword => "set_password",
            Self::Session => "session",
            Self::PendingSignIn => "pending_signin",
            Self::ConfirmEmail => "confirm_email",
        }
    }
}

/// A valid, unused token's facts.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub hash: Vec<u8>,
    pub user_id: UserId,
    pub message_id: Option<MessageId>,
    pub expires_at: i64,
}

impl Auth<'_> {
    /// Issues a token and returns its only clear copy.
    pub async fn issue_token(
        &self,
        purpose: TokenPurpose,
        user: UserId,
        message: Option<&MessageId>,
        ttl: i64,
    ) -> Result<String> {
        let token = new_token();
        let now = self.now();
        sqlx::query(
            "INSERT INTO tokens (hash, purpose, user_id, message_id, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(sha256(token.as_bytes()))
        .bind(purpose.as_str())
        .bind(user.0)
        .bind(message.map(MessageId::as_str))
        .bind(now)
        .bind(now + ttl)
        .execute(&self.db)
        .await?;
        Ok(token)
    }

    /// Looks a token up: it must exist for `purpose`, be unused and unexpired.
    pub async fn check_token(&self, token: &str, purpose: TokenPurpose) -> Result<TokenGrant> {
        if token.len() > 100 {
            return Err(Error::TokenInvalid);
        }
        let hash = sha256(token.as_bytes());
        let row =
            sqlx::query("SELECT user_id, message_id, expires_at, used_at FROM tokens WHERE hash = $1 AND purpose = $2")
                .bind(&hash)
                .bind(purpose.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or(Error::TokenInvalid)?;
        if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
            return Err(Error::TokenUsed);
        }
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= self.now() {
            return Err(Error::TokenExpired);
        }
        Ok(TokenGrant {
            hash,
            user_id: UserId(row.try_get("user_id")?),
            message_id: row
                .try_get::<Option<String>, _>("message_id")?
                .as_deref()
                .and_then(MessageId::parse),
            expires_at,
        })
    }

    /// Whom a link token was for, used or expired alike (for "Send me a new
    /// link"): its user and message. Unknown tokens: [`Error::TokenInvalid`].
    pub(super) async fn token_owner(&self, token: &str, purpose: TokenPurpose) -> Result<(UserId, Option<MessageId>)> {
        if token.len() > 100 {
            return Err(Error::TokenInvalid);
        }
        let row = sqlx::query("SELECT user_id, message_id FROM tokens WHERE hash = $1 AND purpose = $2")
            .bind(sha256(token.as_bytes()))
            .bind(purpose.as_str())
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::TokenInvalid)?;
        Ok((
            UserId(row.try_get("user_id")?),
            row.try_get::<Option<String>, _>("message_id")?
                .as_deref()
                .and_then(MessageId::parse),
        ))
    }

    /// Marks a token used; fails if someone else used it first.
    pub(super) async fn spend_token(&self, tx: &mut crate::write_tx::WriteTx, grant: &TokenGrant) -> Result<()> {
        let done = sqlx::query("UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(self.now())
            .bind(&grant.hash)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Error::TokenUsed)
        }
    }
}
