//! SAML single sign-on's state: each practice's identity provider (its metadata,
//! set by an admin), the AuthnRequests we sent (so a Response must answer one,
//! once), the assertion ids we accepted (a replay cache), and opening a session
//! for a practice user the IdP vouched for. The XML and its signatures are the
//! portal's business (`portal::sso`); this module stores and decides.
#![allow(clippy::doc_markdown)] // SAML's words (IdP, AuthnRequest, NameID) read better bare

use sqlx::Row;

use super::{Practice, Role, Session, TokenPurpose, User, UserStatus};
use crate::audit::AuditEvent;
use crate::{Auth, Error, Result};

/// A practice's identity provider, as the admin configured it.
#[derive(Debug, Clone)]
pub struct PracticeIdp {
    pub practice: Practice,
    /// The IdP's entity id (the `Issuer` its assertions must carry).
    pub entity_id: String,
    /// The IdP's metadata XML (SSO URL and signing certificates).
    pub metadata: String,
}

/// What the IdP asserted and the portal verified (signature, issuer, audience,
/// recipient, times): the facts [`crate::Auth::finish_sso`] still checks against state.
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    /// The assertion's `ID`, kept until `expires_at` so it can't be replayed.
    pub assertion_id: String,
    /// The AuthnRequest this answers (`InResponseTo`).
    pub in_response_to: String,
    /// The person's email address (NameID or an email attribute).
    pub email: String,
    /// The last moment (Unix seconds) the assertion could be accepted.
    pub expires_at: i64,
}

/// Why single sign-on was refused, in a few words for the log and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SsoRefusal {
    #[error("no pending request matches InResponseTo (unsolicited, expired or used)")]
    UnknownRequest,
    #[error("assertion id seen before (replay)")]
    Replay,
    #[error("no doctor or staff account with this address in the practice")]
    UnknownUser,
}

/// Longest life of a pending AuthnRequest and of a replay-cache entry's grace.
pub const REQUEST_TTL: i64 = 10 * 60;

impl Auth<'_> {
    /// Sets (or replaces) a practice's identity provider (admin CLI). The caller
    /// has checked that `metadata` parses and names `entity_id`.
    pub async fn set_practice_idp(&self, domain: &str, entity_id: &str, metadata: &str) -> Result<Practice> {
        let practice = self
            .accounts()
            .practice_by_domain(domain)
            .await?
            .ok_or_else(|| Error::invalid(format!("no practice has the domain {domain}")))?;
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM saml_idps WHERE practice_id = $1")
            .bind(practice.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO saml_idps (practice_id, entity_id, metadata, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(practice.id.0)
            .bind(entity_id)
            .bind(metadata)
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "practice.sso_set",
            object: &format!("practice:{}", practice.id),
            client: "cli",
        })
        .await?;
        Ok(practice)
    }

    /// Turns single sign-on off for a practice (admin CLI). Returns whether it was on.
    pub async fn disable_practice_idp(&self, domain: &str) -> Result<bool> {
        let practice = self
            .accounts()
            .practice_by_domain(domain)
            .await?
            .ok_or_else(|| Error::invalid(format!("no practice has the domain {domain}")))?;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM saml_idps WHERE practice_id = $1")
            .bind(practice.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM saml_requests WHERE practice_id = $1")
            .bind(practice.id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "practice.sso_disable",
            object: &format!("practice:{}", practice.id),
            client: "cli",
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The identity provider of the practice with this domain, if it has one.
    pub async fn practice_idp(&self, domain: &str) -> Result<Option<PracticeIdp>> {
        let Some(practice) = self.accounts().practice_by_domain(domain).await? else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT entity_id, metadata FROM saml_idps WHERE practice_id = $1")
            .bind(practice.id.0)
            .fetch_optional(&self.db)
            .await?;
        row.map(|row| {
            Ok(PracticeIdp {
                practice,
                entity_id: row.try_get("entity_id")?,
                metadata: row.try_get("metadata")?,
            })
        })
        .transpose()
    }

    /// Remembers an AuthnRequest we are about to send, for [`REQUEST_TTL`].
    /// Also forgets expired requests and replay-cache entries.
    pub async fn begin_sso(&self, practice: &Practice, request_id: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM saml_requests WHERE expires_at < $1")
            .bind(now - REQUEST_TTL)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM saml_assertions WHERE expires_at < $1")
            .bind(now - REQUEST_TTL)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO saml_requests (id, practice_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(request_id)
            .bind(practice.id.0)
            .bind(now)
            .bind(now + REQUEST_TTL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Completes single sign-on for a verified assertion: spends the pending
    /// request, records the assertion id (a second use is a replay), finds the
    /// practice's doctor or staff member with the asserted address, and opens a
    /// session. Nothing is spent unless all of it holds. Accounts are never
    /// created here. A user the admin added who has not set a password yet
    /// becomes active: the IdP proved who they are.
    pub async fn finish_sso(
        &self,
        practice: &Practice,
        assertion: &VerifiedAssertion,
        client: &str,
    ) -> Result<Result<Session, SsoRefusal>> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let spent = sqlx::query(
            "UPDATE saml_requests SET used_at = $1
             WHERE id = $2 AND practice_id = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&assertion.in_response_to)
        .bind(practice.id.0)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(Err(SsoRefusal::UnknownRequest));
        }
        let seen = sqlx::query("SELECT 1 AS x FROM saml_assertions WHERE practice_id = $1 AND assertion_id = $2")
            .bind(practice.id.0)
            .bind(&assertion.assertion_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(Err(SsoRefusal::Replay));
        }
        let user = self.accounts().user_by_email(&assertion.email).await?;
        let Some(user) = user.filter(|user| sso_allowed(user, practice)) else {
            return Ok(Err(SsoRefusal::UnknownUser));
        };
        sqlx::query("INSERT INTO saml_assertions (practice_id, assertion_id, expires_at) VALUES ($1, $2, $3)")
            .bind(practice.id.0)
            .bind(&assertion.assertion_id)
            .bind(assertion.expires_at.max(now))
            .execute(&mut *tx)
            .await?;
        if user.status == UserStatus::Registered {
            sqlx::query("UPDATE users SET status = 'active' WHERE id = $1")
                .bind(user.id.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let token = self
            .issue_token(TokenPurpose::Session, user.id, None, self.policy.session_max)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "signin.sso",
            object: &format!("practice:{}", practice.id),
            client,
        })
        .await?;
        let user = self.accounts().user(user.id).await?;
        Ok(Ok(Session { token, user }))
    }

    /// Audits a refused single sign-on (the reason goes to the log, not the page).
    pub async fn sso_refused(&self, practice: &Practice, reason: &str, client: &str) -> Result<()> {
        tracing::warn!(practice = %practice.id, reason, client, "portal: single sign-on refused");
        self.audit(AuditEvent {
            actor: "unknown",
            action: "signin.sso_failure",
            object: &format!("practice:{}", practice.id),
            client,
        })
        .await
    }
}

/// Only the practice's own doctors and staff who registered (or were added by
/// an admin) may sign in through its IdP.
fn sso_allowed(user: &User, practice: &Practice) -> bool {
    user.practice_id == Some(practice.id)
        && matches!(user.role, Role::Doctor | Role::Staff)
        && matches!(user.status, UserStatus::Registered | UserStatus::Active)
}
