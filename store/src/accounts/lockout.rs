//! Lockouts after repeated failures, by scope: an address's password (whether or
//! not an account has that address: both are counted, locked and answered alike),
//! and a user's second step. A lockout is temporary and grows: 15 minutes, then
//! 30, 60, … (at most a day) while lockouts follow one another; a success, or a
//! new password for the password scope, starts over.

use std::fmt::Write as _;

use sqlx::Row;

use super::User;
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::ids::UserId;
use crate::{Auth, Result};

/// The first lockout's length (seconds); each one in a row doubles it.
pub const LOCK_BASE: i64 = 15 * 60;
/// The longest a lockout lasts (seconds).
const LOCK_MAX: i64 = 86_400;
/// Consecutive wrong second-step codes (authenticator or phone) that pause the
/// user's second step.
pub const SECOND_STEP_FAILURE_LIMIT: i64 = 10;
/// Wrong codes that void a pending sign-in or a set-password link.
pub const TOKEN_CODE_ATTEMPTS: i64 = 5;
/// Warn when this many tries or fewer are left before a lockout.
const WARN_WITHIN: i64 = 2;

/// What a lockout counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(String);

impl Scope {
    /// The password scope of an address: its account's, else the address's own.
    pub(crate) fn password(email: &str, user: Option<&User>) -> Self {
        if let Some(user) = user {
            return Self::password_of(user.id);
        }
        let normalized = email.trim().to_ascii_lowercase();
        let digest = sha256(normalized.as_bytes());
        let hex = digest.iter().fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        Self(format!("pw:addr:{hex}"))
    }

    pub(crate) fn password_of(user: UserId) -> Self {
        Self(format!("pw:user:{user}"))
    }

    pub(crate) fn second_step(user: UserId) -> Self {
        Self(format!("2fa:user:{user}"))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// What the audit log names as the locked object (never a hashed address).
    fn audit_object(&self) -> &str {
        if self.0.starts_with("pw:addr:") {
            "unknown"
        } else {
            &self.0
        }
    }
}

/// A lockout's length after `lockouts` earlier ones in a row.
pub fn lock_length(lockouts: i64) -> i64 {
    let doublings = u32::try_from(lockouts.clamp(0, 20)).unwrap_or(20);
    LOCK_BASE.saturating_mul(1_i64 << doublings).min(LOCK_MAX)
}

impl Auth<'_> {
    /// Is `scope` locked now? Then until when.
    pub(crate) async fn locked_until(&self, scope: &Scope) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT locked_until FROM signin_locks WHERE scope = $1")
            .bind(&scope.0)
            .fetch_optional(&self.db)
            .await?;
        let until = match row {
            Some(row) => row.try_get::<Option<i64>, _>("locked_until")?,
            None => None,
        };
        Ok(until.filter(|until| *until > self.now()))
    }

    /// Counts one failure against `scope`; at `limit` it locks (and audits it).
    pub(crate) async fn count_failure(&self, scope: &Scope, limit: i64, client: &str) -> Result<()> {
        let now = self.now();
        let row = sqlx::query(
            "INSERT INTO signin_locks (scope, failures, lockouts, updated_at) VALUES ($1, 1, 0, $2)
             ON CONFLICT (scope) DO UPDATE SET failures = signin_locks.failures + 1, updated_at = $2
             RETURNING failures, lockouts",
        )
        .bind(&scope.0)
        .bind(now)
        .fetch_one(&self.db)
        .await?;
        let failures: i64 = row.try_get("failures")?;
        let lockouts: i64 = row.try_get("lockouts")?;
        // Now and then, forget scopes quiet for two days (mostly addresses
        // without an account), so guessing can't grow the table for ever.
        if crate::crypto::random_bytes::<1>()[0] == 0 {
            sqlx::query(
                "DELETE FROM signin_locks WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $2)",
            )
            .bind(now - 2 * LOCK_MAX)
            .bind(now)
            .execute(&self.db)
            .await?;
        }
        if failures < limit {
            return Ok(());
        }
        sqlx::query(
            "UPDATE signin_locks SET failures = 0, lockouts = lockouts + 1, locked_until = $1, updated_at = $2
             WHERE scope = $3",
        )
        .bind(now + lock_length(lockouts))
        .bind(now)
        .bind(&scope.0)
        .execute(&self.db)
        .await?;
        // Mail sessions (IMAP IDLE) look again at their credential.
        self.mail().signal_mail();
        self.audit(AuditEvent {
            actor: "system",
            action: "account.lock",
            object: scope.audit_object(),
            client,
        })
        .await
    }

    /// A success (or a new password): failures and lockouts start over.
    pub(crate) async fn clear_failures(&self, scope: &Scope) -> Result<()> {
        sqlx::query("DELETE FROM signin_locks WHERE scope = $1")
            .bind(&scope.0)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// After a failed sign-in: how many more failures for this address will
    /// pause its sign-in, and for how many minutes, when that is close (the
    /// page warns). The same for addresses with and without an account.
    pub async fn sign_in_warning(&self, email: &str) -> Result<Option<(i64, i64)>> {
        let user = self.accounts().user_by_email(email).await?;
        let scope = Scope::password(email, user.as_ref());
        let row = sqlx::query("SELECT failures, lockouts FROM signin_locks WHERE scope = $1")
            .bind(&scope.0)
            .fetch_optional(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let left = self.policy.max_failed_signins - row.try_get::<i64, _>("failures")?;
        let minutes = lock_length(row.try_get("lockouts")?) / 60;
        Ok((left > 0 && left <= WARN_WITHIN).then_some((left, minutes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_at_fifteen_minutes_and_double_up_to_a_day() {
        assert_eq!(lock_length(0), 15 * 60);
        assert_eq!(lock_length(1), 30 * 60);
        assert_eq!(lock_length(2), 60 * 60);
        assert_eq!(lock_length(7), 86_400);
        assert_eq!(lock_length(1_000), 86_400);
    }

    #[test]
    fn unknown_addresses_have_their_own_scope_and_are_not_logged() {
        let a = Scope::password(" Nobody@Example.org", None);
        assert_eq!(a, Scope::password("nobody@example.org", None));
        assert!(a.0.starts_with("pw:addr:"));
        assert_eq!(a.audit_object(), "unknown");
        assert_eq!(Scope::password_of(UserId(7)).0, "pw:user:7");
    }
}
