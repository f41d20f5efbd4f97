//! Recovery that strands nobody: set-password links (and confirmation mails)
//! go to one address at most once per [`LINK_INTERVAL`], counted for addresses
//! with and without an account alike, so the pages can say honestly when the
//! last one went out and when the next may be asked for. "Forgot your
//! password?" and "Send me a new link" (from an invitation or set-password
//! link that expired or was used) both go through here.

use std::fmt::Write as _;

use sqlx::Row;

use super::{TokenPurpose, UserStatus};
use crate::audit::AuditEvent;
use crate::crypto::sha256;
use crate::job_kind::{JobKind, add_job};
use crate::{Auth, Error, Result};

/// One link mail per address per this many seconds.
pub const LINK_INTERVAL: i64 = 600;

/// The answer to a request for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRequest {
    /// When the latest link for the address was asked for (now, if this
    /// request sent one).
    pub sent_at: i64,
    /// When the next one may be asked for.
    pub next_at: i64,
    /// This request sent a link; `false`: one went out less than
    /// [`LINK_INTERVAL`] ago and this request sent nothing.
    pub sent_now: bool,
}

/// `addr:` and the SHA-256 of the lower-cased address, in hex.
pub(crate) fn address_scope(email: &str) -> String {
    let digest = sha256(email.trim().to_ascii_lowercase().as_bytes());
    digest.iter().fold(String::from("addr:"), |mut scope, b| {
        let _ = write!(scope, "{b:02x}");
        scope
    })
}

/// `p•••@example.org`: enough for the owner to recognise their address.
pub fn masked_address(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
        }
        None => "\u{2022}\u{2022}\u{2022}".to_owned(),
    }
}

impl Auth<'_> {
    /// Takes the address's link slot if it is free: at most one link mail per
    /// [`LINK_INTERVAL`], whoever asks.
    pub(crate) async fn take_link_slot(&self, email: &str) -> Result<LinkRequest> {
        let now = self.now();
        let scope = address_scope(email);
        let taken = sqlx::query(
            "INSERT INTO link_requests (scope, requested_at) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET requested_at = $2 WHERE link_requests.requested_at <= $3
             RETURNING requested_at",
        )
        .bind(&scope)
        .bind(now)
        .bind(now - LINK_INTERVAL)
        .fetch_optional(&self.db)
        .await?;
        // Now and then forget old requests, so asking can't grow the table for ever.
        if crate::crypto::random_bytes::<1>()[0] == 0 {
            sqlx::query("DELETE FROM link_requests WHERE requested_at < $1")
                .bind(now - 86_400)
                .execute(&self.db)
                .await?;
        }
        if taken.is_some() {
            return Ok(LinkRequest {
                sent_at: now,
                next_at: now + LINK_INTERVAL,
                sent_now: true,
            });
        }
        let sent_at: i64 = sqlx::query("SELECT requested_at FROM link_requests WHERE scope = $1")
            .bind(&scope)
            .fetch_one(&self.db)
            .await?
            .try_get("requested_at")?;
        Ok(LinkRequest {
            sent_at,
            next_at: sent_at + LINK_INTERVAL,
            sent_now: false,
        })
    }

    /// "Forgot your password?": mails a set-password link to the account with
    /// this address, if there is one that has a password to set. The answer is
    /// the same for every address (with an account or not): when the latest
    /// link went out and when the next may be asked for.
    pub async fn request_password_reset(&self, email: &str, client: &str) -> Result<LinkRequest> {
        let slot = self.take_link_slot(email).await?;
        if !slot.sent_now {
            return Ok(slot);
        }
        let Some(user) = self.accounts().user_by_email(email).await? else {
            return Ok(slot);
        };
        if matches!(user.status, UserStatus::Invited | UserStatus::Deactivated) {
            return Ok(slot);
        }
        let mut tx = self.write_tx().await?;
        add_job(&mut tx, JobKind::SetPassword, user.id, None, self.now()).await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "password.reset_request",
            object: "",
            client,
        })
        .await?;
        Ok(slot)
    }

    /// "Send me a new link" from an invitation or set-password link that
    /// expired or was used: a fresh one to the same address (an invitation
    /// while the person has not registered, else a set-password link leading
    /// to the same message), at most one per [`LINK_INTERVAL`]. Returns the
    /// answer and the address, masked, for the page.
    pub async fn renew_link(&self, token: &str, client: &str) -> Result<(LinkRequest, String)> {
        let (user_id, message) = match self.token_owner(token, TokenPurpose::Invite).await {
            Ok(owner) => owner,
            Err(Error::TokenInvalid) => self.token_owner(token, TokenPurpose::SetPassword).await?,
            Err(other) => return Err(other),
        };
        let user = self.accounts().user(user_id).await?;
        let slot = self.take_link_slot(&user.email).await?;
        let masked = masked_address(&user.email);
        if !slot.sent_now {
            return Ok((slot, masked));
        }
        let kind = match (user.status, &message) {
            (UserStatus::Invited, Some(_)) => JobKind::Notify,
            (UserStatus::Invited, None) => return Err(Error::TokenInvalid),
            _ => JobKind::SetPassword,
        };
        let mut tx = self.write_tx().await?;
        add_job(&mut tx, kind, user.id, message.as_ref(), self.now()).await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "link.renew",
            object: kind.as_str(),
            client,
        })
        .await?;
        Ok((slot, masked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hashed_and_masked() {
        assert_eq!(address_scope(" Pat@Example.org"), address_scope("pat@example.org"));
        assert!(address_scope("pat@example.org").starts_with("addr:"));
        assert!(!address_scope("pat@example.org").contains("pat"));
        assert_eq!(
            masked_address("pat@example.org"),
            "p\u{2022}\u{2022}\u{2022}@example.org"
        );
    }

    #[tokio::test]
    async fn one_link_per_address_per_ten_minutes_known_or_not() {
        let (_dir, store, clock) = crate::testing::store().await;
        let auth = store.auth();
        for address in ["nobody@example.org", "someone@example.org"] {
            let first = auth.request_password_reset(address, "test").await.unwrap();
            assert!(first.sent_now);
            let again = auth.request_password_reset(address, "test").await.unwrap();
            assert!(!again.sent_now, "held back");
            assert_eq!(
                (again.sent_at, again.next_at),
                (first.sent_at, first.sent_at + LINK_INTERVAL)
            );
        }
        clock.advance(LINK_INTERVAL);
        assert!(
            auth.request_password_reset("nobody@example.org", "test")
                .await
                .unwrap()
                .sent_now
        );
    }
}
