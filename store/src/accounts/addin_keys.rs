//! The Outlook add-in's own credential. The add-in asks the portal which
//! recipients are known contacts (`/api/contacts`) and must keep a credential
//! for that in Office's roaming settings; an app password there would open the
//! user's mail over SMTP and IMAP too. So the user connects once with an app
//! password and the add-in keeps only this key: 256 random bits, stored hashed,
//! one per user (a new one replaces the old), and accepted by the contacts API
//! alone — the SMTP and IMAP sign-ins never look at it.

use sqlx::Row;

use super::{User, new_token};
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::ids::UserId;
use crate::{Auth, Error, Result};

/// Every add-in key starts with this, so it is recognisable (and never mistaken
/// for an app password) wherever it turns up.
pub const KEY_PREFIX: &str = "spk_";

impl Auth<'_> {
    /// Makes `user` a new add-in key (their earlier one stops working) and
    /// returns its only clear copy.
    pub async fn issue_addin_key(&self, user: &User, client: &str) -> Result<String> {
        let key = format!("{KEY_PREFIX}{}", new_token());
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM addin_keys WHERE user_id = $1")
            .bind(user.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO addin_keys (user_id, hash, created_at) VALUES ($1, $2, $3)")
            .bind(user.id.0)
            .bind(sha256(key.as_bytes()))
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "addin_key.issue",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        Ok(key)
    }

    /// The user an add-in key belongs to, if it is current and their account is
    /// not locked; anything else is [`Error::AuthFailed`].
    pub async fn addin_key_user(&self, key: &str) -> Result<User> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 100 {
            return Err(Error::AuthFailed);
        }
        let row = sqlx::query(
            "SELECT k.user_id FROM addin_keys k JOIN users u ON u.id = k.user_id
             WHERE k.hash = $1 AND u.locked_at IS NULL",
        )
        .bind(sha256(key.as_bytes()))
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::AuthFailed)?;
        let id = UserId(row.try_get("user_id")?);
        sqlx::query("UPDATE addin_keys SET last_used_at = $1 WHERE user_id = $2")
            .bind(self.now())
            .bind(id.0)
            .execute(&self.db)
            .await?;
        self.accounts().user(id).await
    }
}
