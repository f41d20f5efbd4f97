//! Registration of an invited recipient: the invitation behind a link, and what
//! the person tells us about themselves.

use sqlx::Row;

use super::{Practice, Profile, Relationship, TokenGrant, TokenPurpose, User, UserStatus};
use crate::audit::AuditEvent;
use crate::ids::{MessageId, PracticeId};
use crate::{Accounts, Error, Result};

/// A registration form, as the portal received it.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub full_name: String,
    pub phone: String,
    pub profile: Profile,
}

/// A pending invitation, as the registration page needs it.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub user: User,
    pub message_id: Option<MessageId>,
    pub relationship: Option<Relationship>,
    pub practice: Practice,
}

impl Accounts<'_> {
    /// The invitation behind a link, for the registration page.
    pub async fn invitation(&self, token: &str) -> Result<Invitation> {
        Ok(self.invitation_and_grant(token).await?.0)
    }

    /// The invitation and the token grant behind it, from one token lookup.
    async fn invitation_and_grant(&self, token: &str) -> Result<(Invitation, TokenGrant)> {
        let grant = self.auth().check_token(token, TokenPurpose::Invite).await?;
        let user = self.user(grant.user_id).await?;
        let message = grant.message_id.clone().ok_or(Error::TokenInvalid)?;
        let row = sqlx::query(
            "SELECT c.relationship, m.practice_id FROM messages m
             LEFT JOIN contacts c ON c.practice_id = m.practice_id AND c.user_id = $2
             WHERE m.id = $1",
        )
        .bind(message.as_str())
        .bind(user.id.0)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::TokenInvalid)?;
        let relationship = row
            .try_get::<Option<String>, _>("relationship")?
            .as_deref()
            .and_then(Relationship::parse);
        let practice = self.practice(PracticeId(row.try_get("practice_id")?)).await?;
        let invitation = Invitation {
            user,
            message_id: Some(message),
            relationship,
            practice,
        };
        Ok((invitation, grant))
    }

    /// Whether an invitation's link may open `message`: the message it was made
    /// for, or (invitations are reused, see `invites.rs`) another message of the
    /// same practice to the same person.
    pub async fn invitation_opens(&self, invitation: &Invitation, message: &MessageId) -> Result<bool> {
        if invitation.message_id.as_ref() == Some(message) {
            return Ok(true);
        }
        let found = sqlx::query(
            "SELECT 1 AS found FROM message_recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.message_id = $1 AND r.user_id = $2 AND m.practice_id = $3",
        )
        .bind(message.as_str())
        .bind(invitation.user.id.0)
        .bind(invitation.practice.id.0)
        .fetch_optional(&self.db)
        .await?;
        Ok(found.is_some())
    }

    /// Registers an invited recipient: stores what they told us, spends the
    /// invitation and queues the set-password email.
    pub async fn register(&self, token: &str, form: Registration, client: &str) -> Result<User> {
        let (invitation, grant) = self.invitation_and_grant(token).await?;
        if invitation.user.status != UserStatus::Invited {
            return Err(Error::TokenUsed);
        }
        let full_name = form.full_name.trim();
        let phone = form.phone.trim();
        if full_name.is_empty() || full_name.len() > 200 {
            return Err(Error::invalid("Please enter your full name."));
        }
        let phone = super::phone_number::to_e164(phone, self.policy.default_phone_country).map_err(Error::invalid)?;
        let mut tx = self.write_tx().await?;
        self.auth().spend_token(&mut tx, &grant).await?;
        sqlx::query("UPDATE users SET full_name = $1, phone = $2, profile = $3, status = 'registered' WHERE id = $4")
            .bind(full_name)
            .bind(&phone)
            .bind(serde_json::to_string(&form.profile).unwrap_or_else(|_| "{}".into()))
            .bind(invitation.user.id.0)
            .execute(&mut *tx)
            .await?;
        crate::job_kind::add_job(
            &mut tx,
            crate::job_kind::JobKind::SetPassword,
            invitation.user.id,
            invitation.message_id.as_ref(),
            self.now(),
        )
        .await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", invitation.user.id),
            action: "account.register",
            object: &format!("user:{}", invitation.user.id),
            client,
        })
        .await?;
        self.user(invitation.user.id).await
    }
}
