//! Authenticator apps for the second step (TOTP, RFC 6238): SHA-1, 6 digits,
//! 30-second steps, one step of skew either way; each step is accepted once
//! (RFC 6238 section 5.2), and the secret is stored sealed.

use sqlx::Row;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::{Method, TotpSetup, normalize_code};
use crate::accounts::User;
use crate::crypto::random_bytes;
use crate::{Auth, Error, Result};

fn totp(secret: &[u8]) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .build()
        .map_err(|_| Error::Crypto)
}

impl Auth<'_> {
    /// Starts setting up an authenticator app: a fresh secret, kept sealed until
    /// the first code from the app confirms it.
    pub async fn begin_totp(&self, user: &User) -> Result<TotpSetup> {
        let secret = random_bytes::<20>();
        sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2")
            .bind(self.seal_value(&secret))
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        let encoded = Secret::from(secret).to_base32();
        let label = percent_label(&user.email);
        Ok(TotpSetup {
            uri: format!(
                "otpauth://totp/Sealpost:{label}?secret={encoded}&issuer=Sealpost&algorithm=SHA1&digits=6&period=30"
            ),
            secret: encoded,
        })
    }

    /// Confirms the app being set up with a code from it; it becomes the user's method.
    pub async fn confirm_totp(&self, user: &User, code: &str, client: &str) -> Result<()> {
        let pending: Option<Vec<u8>> = sqlx::query("SELECT totp_pending FROM users WHERE id = $1")
            .bind(user.id.0)
            .fetch_one(&self.db)
            .await?
            .try_get("totp_pending")?;
        let secret = self.open_value(&pending.ok_or(Error::AuthFailed)?)?;
        let step = totp(&secret)?.check(&normalize_code(code), self.now().unsigned_abs());
        let Some(step) = step else {
            self.two_step_outcome(user, "totp", false, client).await?;
            return Err(Error::AuthFailed);
        };
        sqlx::query(
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1,
             two_step_method = 'totp', two_step_failures = 0 WHERE id = $2",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(user.id.0)
        .execute(&self.db)
        .await?;
        self.two_step_enrolled(user, Method::Totp, client).await
    }

    /// Checks a code from the user's authenticator app; a step already used is
    /// refused. (Wrong codes in a row pause the second step: see
    /// [`crate::accounts::lockout`].)
    pub async fn verify_totp(&self, user: &User, code: &str, client: &str) -> Result<()> {
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM users WHERE id = $1")
            .bind(user.id.0)
            .fetch_one(&self.db)
            .await?;
        let sealed: Option<Vec<u8>> = row.try_get("totp_secret")?;
        let step = match sealed {
            Some(sealed) => totp(&self.open_value(&sealed)?)?
                .check(&normalize_code(code), self.now().unsigned_abs())
                .and_then(|s| i64::try_from(s).ok()),
            None => None,
        };
        let fresh = match step {
            Some(step) => {
                sqlx::query(
                    "UPDATE users SET totp_last_step = $1, two_step_failures = 0
                     WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
                )
                .bind(step)
                .bind(user.id.0)
                .execute(&self.db)
                .await?
                .rows_affected()
                    == 1
            }
            None => false,
        };
        self.two_step_outcome(user, "totp", fresh, client).await?;
        if fresh { Ok(()) } else { Err(Error::AuthFailed) }
    }
}

/// An email address as the label of an `otpauth` URI (RFC 3986 unreserved kept).
fn percent_label(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_the_rfc_6238_vector_with_skew_one() {
        // RFC 6238 appendix B, SHA-1 secret, truncated to 6 digits.
        let t = totp(b"12345678901234567890").unwrap();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(t.check("287082", 59), Some(1));
        assert_eq!(t.check("287082", 89), Some(1), "one step late is accepted");
        assert_eq!(t.check("287082", 120), None, "two steps late is not");
        assert_eq!(t.generate(1_111_111_109).to_string(), "081804");
    }

    #[test]
    fn otpauth_labels_are_percent_encoded() {
        assert_eq!(percent_label("a b@x.org"), "a%20b@x.org");
    }
}
