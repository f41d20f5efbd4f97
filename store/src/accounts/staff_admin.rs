//! What the admin CLI (and a User Manager, for deactivation) does to a
//! practice's staff: list a practice's people with their registration status,
//! make or unmake User Managers, deactivate someone who left (their sessions,
//! links, remembered devices, app passwords and add-in key end at once; the
//! messages they sent stay for their recipients) or undo that, and issue a
//! fresh set-password or invitation link (every earlier one dies).

use sqlx::Row;

use super::manage::ManagedUser;
use super::{TokenPurpose, User, UserStatus};
use crate::audit::AuditEvent;
use crate::ids::{MessageId, UserId};
use crate::{Accounts, Error, Result};

/// A fresh link for a person, from [`Accounts::fresh_link`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreshLink {
    /// `/m/{message}?invite={token}`: someone written to who never registered.
    Invitation(String),
    /// `/password/{token}`: someone added by an admin, registered without a
    /// password, or who forgot theirs.
    SetPassword(String),
}

impl FreshLink {
    /// The path after `public_url`.
    pub fn path(&self) -> &str {
        match self {
            Self::Invitation(path) | Self::SetPassword(path) => path,
        }
    }
}

impl Accounts<'_> {
    /// Everyone in the practice with the domain `domain`, by address, with their
    /// registration status (admin CLI: `sealpost user list --practice D`).
    pub async fn practice_members(&self, domain: &str) -> Result<Vec<ManagedUser>> {
        let practice = self
            .practice_by_domain(domain)
            .await?
            .ok_or_else(|| Error::invalid(format!("no practice with the domain {}", domain.trim())))?;
        let rows = sqlx::query("SELECT id FROM users WHERE practice_id = $1 ORDER BY email")
            .bind(practice.id.0)
            .fetch_all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.managed(UserId(row.try_get("id")?)).await?);
        }
        Ok(out)
    }

    /// A practice user by address; anyone else is a clear error.
    async fn staff_member(&self, email: &str) -> Result<User> {
        let user = self
            .user_by_email(email)
            .await?
            .ok_or_else(|| Error::invalid(format!("no user {}", email.trim())))?;
        if user.practice_id.is_none() {
            return Err(Error::invalid(format!("{} is not a member of a practice", user.email)));
        }
        Ok(user)
    }

    /// Makes `email` a User Manager of their practice, or (with `on` false)
    /// no longer one. The last active User Manager of a practice stays one.
    /// Returns the user as now stored.
    pub async fn set_user_manager(&self, email: &str, on: bool, actor: &str, client: &str) -> Result<User> {
        let user = self.staff_member(email).await?;
        if on && user.status == UserStatus::Deactivated {
            return Err(Error::invalid(format!("{} is deactivated", user.email)));
        }
        if !on && user.user_manager {
            let others = sqlx::query(
                "SELECT COUNT(*) AS n FROM users WHERE practice_id = $1 AND id <> $2
                 AND user_manager = 1 AND status <> 'deactivated'",
            )
            .bind(user.practice_id.map(|p| p.0))
            .bind(user.id.0)
            .fetch_one(&self.db)
            .await?
            .try_get::<i64, _>("n")?;
            if others == 0 {
                return Err(Error::invalid(format!(
                    "{} is the practice's only User Manager: make someone else one first",
                    user.email
                )));
            }
        }
        sqlx::query("UPDATE users SET user_manager = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor,
            action: if on { "user.manager_on" } else { "user.manager_off" },
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        self.user(user.id).await
    }

    /// `sealpost user deactivate --email E`.
    pub async fn deactivate_by_email(&self, email: &str, actor: &str, client: &str) -> Result<User> {
        let user = self.staff_member(email).await?;
        self.deactivate(&user, actor, client).await?;
        self.user(user.id).await
    }

    /// Deactivates a person who left the practice, in one transaction: they
    /// can no longer sign in (portal, IMAP, submission, single sign-on,
    /// passkeys), their password is void, every session and unused link ends, remembered devices and
    /// app passwords are revoked, the add-in key goes, queued set-password
    /// mails are dropped and they stop being a User Manager. Their messages
    /// stay. Deactivating twice is refused.
    pub(crate) async fn deactivate(&self, user: &User, actor: &str, client: &str) -> Result<()> {
        if user.status == UserStatus::Deactivated {
            return Err(Error::invalid(format!("{} is deactivated already", user.email)));
        }
        let now = self.now();
        let id = user.id.0;
        let mut tx = self.write_tx().await?;
        // The password goes too, and with it a mail client's session signed in
        // with it (IMAP checks the password's change time before each command).
        sqlx::query(
            "UPDATE users SET status = 'deactivated', user_manager = 0, password_hash = NULL,
             password_changed_at = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for revoke in [
            "UPDATE remembered_devices SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            "UPDATE app_passwords SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        ] {
            sqlx::query(revoke).bind(now).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM addin_keys WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE mail_jobs SET done_at = $1 WHERE user_id = $2 AND done_at IS NULL AND kind = 'set_password'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor,
            action: "user.deactivate",
            object: &format!("user:{}", user.id),
            client,
        })
        .await
    }

    /// Undoes a deactivation (`sealpost user reactivate`): the person is
    /// registered again without a usable password and gets a set-password link
    /// (returned); their old password, sessions and app passwords stay void.
    /// They are no User Manager until an admin makes them one again.
    pub async fn reactivate(&self, email: &str, actor: &str, client: &str) -> Result<FreshLink> {
        let user = self.staff_member(email).await?;
        if user.status != UserStatus::Deactivated {
            return Err(Error::invalid(format!("{} is not deactivated", user.email)));
        }
        sqlx::query("UPDATE users SET status = 'registered' WHERE id = $1")
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor,
            action: "user.reactivate",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        self.fresh_link(&user.email, actor, client).await
    }

    /// A fresh link for `email` (`sealpost user link`): an invitation to their
    /// latest message for someone written to who never registered, else a
    /// set-password link. Every earlier invitation and set-password link of
    /// theirs stops working. A deactivated person gets none.
    pub async fn fresh_link(&self, email: &str, actor: &str, client: &str) -> Result<FreshLink> {
        let user = self
            .user_by_email(email)
            .await?
            .ok_or_else(|| Error::invalid(format!("no user {}", email.trim())))?;
        if user.status == UserStatus::Deactivated {
            return Err(Error::invalid(format!(
                "{} is deactivated: no link is issued",
                user.email
            )));
        }
        let now = self.now();
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL AND purpose IN ($3, $4)")
            .bind(now)
            .bind(user.id.0)
            .bind(TokenPurpose::Invite.as_str())
            .bind(TokenPurpose::SetPassword.as_str())
            .execute(&self.db)
            .await?;
        let latest: Option<MessageId> = if user.status == UserStatus::Invited {
            sqlx::query(
                "SELECT r.message_id FROM message_recipients r JOIN messages m ON m.id = r.message_id
                 WHERE r.user_id = $1 AND m.state = 'sealed' ORDER BY m.created_at DESC LIMIT 1",
            )
            .bind(user.id.0)
            .fetch_optional(&self.db)
            .await?
            .map(|row| row.try_get::<String, _>("message_id"))
            .transpose()?
            .as_deref()
            .and_then(MessageId::parse)
        } else {
            None
        };
        let link = if let Some(message) = latest {
            let token = self
                .auth()
                .invitation_token(user.id, &message, self.policy.invite_ttl)
                .await?;
            FreshLink::Invitation(format!("/m/{message}?invite={token}"))
        } else {
            let token = self
                .auth()
                .issue_token(TokenPurpose::SetPassword, user.id, None, self.policy.set_password_ttl)
                .await?;
            FreshLink::SetPassword(format!("/password/{token}"))
        };
        self.audit(AuditEvent {
            actor,
            action: "user.link",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use crate::accounts::{Role, UserStatus};
    use crate::testing::store;

    /// A mail client signed in with the account password (two-step off) or an
    /// app password loses its session at once; the set-password link mailed
    /// before does not revive the account.
    #[tokio::test]
    async fn deactivation_ends_every_mail_credential_and_every_link() {
        let (_dir, store, _) = store().await;
        store.accounts().add_practice("Smiles", "smiles.example").await.unwrap();
        let (bob, token) = store
            .accounts()
            .add_practice_user("bob@smiles.example", "Bob", Role::Staff, "smiles.example", true, false)
            .await
            .unwrap();
        store
            .auth()
            .set_password(&token, "Maple-Tree-88", "test")
            .await
            .unwrap();
        sqlx::query("UPDATE users SET two_step_off = 1 WHERE id = $1")
            .bind(bob.id.0)
            .execute(&store.db)
            .await
            .unwrap();
        let bob = store.accounts().user(bob.id).await.unwrap();
        let app_password = store.auth().create_app_password(&bob, "Mail", "test").await.unwrap();
        let (_, by_password) = store
            .auth()
            .sign_in_mail_client("bob@smiles.example", "Maple-Tree-88", "test")
            .await
            .unwrap();
        let (_, by_app) = store
            .auth()
            .sign_in_mail_client("bob@smiles.example", &app_password, "test")
            .await
            .unwrap();
        let link = store
            .accounts()
            .fresh_link("bob@smiles.example", "admin", "test")
            .await
            .unwrap();
        let link_token = link.path().rsplit('/').next().unwrap().to_owned();

        let gone = store
            .accounts()
            .deactivate_by_email("bob@smiles.example", "admin", "test")
            .await
            .unwrap();
        assert_eq!(gone.status, UserStatus::Deactivated);
        for credential in [&by_password, &by_app] {
            assert!(!store.auth().mail_credential_live(&gone, credential).await.unwrap());
        }
        assert!(
            store
                .auth()
                .set_password(&link_token, "Other-Tree-99", "test")
                .await
                .is_err()
        );
        assert!(
            store
                .auth()
                .sign_in_mail_client("bob@smiles.example", "Maple-Tree-88", "test")
                .await
                .is_err()
        );
        assert!(gone.may_send_secure().is_err());
        assert!(
            store
                .accounts()
                .deactivate_by_email("bob@smiles.example", "admin", "test")
                .await
                .is_err(),
            "once is enough"
        );
    }
}
