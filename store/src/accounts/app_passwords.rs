//! App passwords: one per mail client (Outlook on a PC, a phone), made and
//! revoked in the portal, used with SMTP AUTH (and IMAP later). Each carries 140
//! random bits, is shown once and stored only as a SHA-256 hash, so it can be
//! checked quickly and revoked alone without touching the account password.

use sqlx::Row;

use super::User;
use super::lockout::Scope;
use crate::audit::AuditEvent;
use crate::crypto::{random_bytes, sha256};
use crate::{Auth, Error, Result};

/// An app password as listed (never its value).
#[derive(Debug, Clone)]
pub struct AppPassword {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// 28 characters from a 32-character alphabet (140 bits), in groups of four, easy
/// to read and type: no i, l, o or 1.
fn generate() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";
    let bytes: [u8; 28] = random_bytes();
    let chars: Vec<u8> = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)]).collect();
    chars
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The form an app password is hashed in: without separators or case.
fn digest(password: &str) -> Vec<u8> {
    let compact: String = password
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    sha256(compact.as_bytes())
}

impl Auth<'_> {
    /// Makes an app password for `user`; returns its only clear copy.
    pub async fn create_app_password(&self, user: &User, label: &str, client: &str) -> Result<String> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 80 {
            return Err(Error::invalid(
                "Give the app password a name of up to 80 characters, like \u{201c}Outlook on my PC\u{201d}.",
            ));
        }
        let live: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM app_passwords WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
        if live >= 20 {
            return Err(Error::invalid(
                "You have 20 app passwords already. Revoke one you no longer use first.",
            ));
        }
        let password = generate();
        let id: i64 = sqlx::query(
            "INSERT INTO app_passwords (user_id, label, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.id.0)
        .bind(label)
        .bind(digest(&password))
        .bind(self.now())
        .fetch_one(&self.db)
        .await?
        .try_get("id")?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "app_password.create",
            object: &format!("app_password:{id}"),
            client,
        })
        .await?;
        Ok(password)
    }

    /// The user's live app passwords, newest first.
    pub async fn app_passwords(&self, user: &User) -> Result<Vec<AppPassword>> {
        let rows = sqlx::query(
            "SELECT id, label, created_at, last_used_at FROM app_passwords
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC",
        )
        .bind(user.id.0)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AppPassword {
                    id: row.try_get("id")?,
                    label: row.try_get("label")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of the user's app passwords; another user's id is not found.
    pub async fn revoke_app_password(&self, user: &User, id: i64, client: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE app_passwords SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(id)
        .bind(user.id.0)
        .execute(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        // Mail sessions (IMAP IDLE) look again at their credential.
        self.mail().signal_mail();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "app_password.revoke",
            object: &format!("app_password:{id}"),
            client,
        })
        .await
    }

    /// Checks a mail client's credentials: an app password of the account, or
    /// else, only for a user without two-step verification, the account
    /// password (with its lockout and throttling).
    pub async fn check_mail_client(&self, email: &str, password: &str, client: &str) -> Result<User> {
        Ok(self.sign_in_mail_client(email, password, client).await?.0)
    }

    /// [`crate::Auth::check_mail_client`], also saying which credential was used, so a
    /// long session (IMAP) can check it still holds before each command.
    ///
    /// Unknown addresses, wrong app passwords and account passwords of two-step
    /// users all run the same argon2 check (on a dummy hash where there is
    /// nothing to check), count against the same lockout and get the same
    /// answer, so neither the answer nor its timing tells whether an account exists.
    pub async fn sign_in_mail_client(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<(User, MailCredential)> {
        self.refuse_if_throttled(client).await?;
        let user = self.accounts().user_by_email(email).await?;
        if let Some(user) = &user
            && self.locked_until(&Scope::password_of(user.id)).await?.is_none()
        {
            let row =
                sqlx::query("SELECT id FROM app_passwords WHERE user_id = $1 AND hash = $2 AND revoked_at IS NULL")
                    .bind(user.id.0)
                    .bind(digest(password))
                    .fetch_optional(&self.db)
                    .await?;
            if let Some(row) = row {
                let id: i64 = row.try_get("id")?;
                sqlx::query("UPDATE app_passwords SET last_used_at = $1 WHERE id = $2")
                    .bind(self.now())
                    .bind(id)
                    .execute(&self.db)
                    .await?;
                self.clear_failures(&Scope::password_of(user.id)).await?;
                self.audit(AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "signin.app_password",
                    object: &format!("app_password:{id}"),
                    client,
                })
                .await?;
                return Ok((user.clone(), MailCredential::AppPassword(id)));
            }
        }
        // With two-step verification on, the account password alone is not
        // enough: mail apps use app passwords.
        let password_allowed = match &user {
            Some(user) => !self.two_step(user.id).await?.on,
            None => true,
        };
        let user = self
            .check_account_password(email, password, client, password_allowed)
            .await?;
        let changed_at = self.password_changed_at(&user).await?;
        Ok((user, MailCredential::AccountPassword { changed_at }))
    }

    /// Does a mail client's credential still hold: the app password not
    /// revoked, the account password not changed, and the account not locked?
    pub async fn mail_credential_live(&self, user: &User, credential: &MailCredential) -> Result<bool> {
        if self.locked_until(&Scope::password_of(user.id)).await?.is_some() {
            return Ok(false);
        }
        Ok(match credential {
            MailCredential::AppPassword(id) => {
                sqlx::query("SELECT 1 AS x FROM app_passwords WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(user.id.0)
                    .fetch_optional(&self.db)
                    .await?
                    .is_some()
            }
            MailCredential::AccountPassword { changed_at } => self.password_changed_at(user).await? == *changed_at,
        })
    }

    async fn password_changed_at(&self, user: &User) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT password_changed_at FROM users WHERE id = $1")
            .bind(user.id.0)
            .fetch_one(&self.db)
            .await?
            .try_get("password_changed_at")?)
    }
}

/// What a mail client signed in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailCredential {
    /// The app password with this id.
    AppPassword(i64),
    /// The account password, as it was when it was last changed.
    AccountPassword { changed_at: Option<i64> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_grouped_and_distinct() {
        let a = generate();
        assert_eq!(a.len(), 28 + 6);
        assert_eq!(a.split('-').count(), 7);
        assert_ne!(a, generate());
        assert!(!a.contains(['i', 'l', 'o', '1']));
        assert_eq!(
            digest(&a),
            digest(&a.to_uppercase().replace('-', " ")),
            "case and separators do not matter"
        );
    }
}
