//! Manage Users: a practice's User Manager sees everyone invited to the
//! practice with their registration status, corrects an invited person's email
//! and phone, re-invites them, turns two-step verification off or on per user
//! (where the policy allows), and deactivates someone who left. Every call is
//! authorised here: the caller must be a User Manager of the same practice, and
//! anyone else's users are simply not found. A person with a message from another practice waiting is
//! never edited or re-invited here: their invitation is not this practice's.

use sqlx::Row;

use super::{TokenPurpose, User, UserStatus, normalize_email};
use crate::audit::AuditEvent;
use crate::ids::{MessageId, PracticeId, UserId};
use crate::job_kind::{JobKind, add_job};
use crate::{Accounts, Error, Result};

/// How far a person got with registering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Invited (or added), has not chosen a password yet.
    Invited,
    /// Can sign in, but has no second step (not set up, or turned off).
    WithoutTwoStep,
    /// Can sign in with a password and a second step.
    Full,
    /// Left the practice: can no longer sign in (their sent messages stay).
    Deactivated,
}

impl Registration {
    pub fn label(self) -> &'static str {
        match self {
            Self::Invited => "Invited",
            Self::WithoutTwoStep => "Registered without two-step verification",
            Self::Full => "Fully registered",
            Self::Deactivated => "Deactivated",
        }
    }
}

/// One person in the Manage Users list.
#[derive(Debug, Clone)]
pub struct ManagedUser {
    pub user: User,
    pub registration: Registration,
    /// A User Manager turned two-step off for this person.
    pub two_step_off: bool,
}

impl Accounts<'_> {
    /// The practice the caller manages; anyone else is [`Error::Forbidden`]
    /// (which the portal shows as not found).
    fn managed_practice(manager: &User) -> Result<PracticeId> {
        match manager.practice_id {
            Some(id) if manager.user_manager && manager.status == UserStatus::Active => Ok(id),
            _ => Err(Error::Forbidden("not an active User Manager of a practice")),
        }
    }

    /// Everyone in the manager's practice, by name.
    pub async fn practice_users(&self, manager: &User) -> Result<Vec<ManagedUser>> {
        let practice = Self::managed_practice(manager)?;
        let rows = sqlx::query("SELECT id FROM users WHERE practice_id = $1 ORDER BY email")
            .bind(practice.0)
            .fetch_all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.managed(UserId(row.try_get("id")?)).await?);
        }
        Ok(out)
    }

    pub(super) async fn managed(&self, id: UserId) -> Result<ManagedUser> {
        let user = self.user(id).await?;
        let two_step = self.auth().two_step(id).await?;
        let registration = match user.status {
            UserStatus::Active if two_step.method.is_some() && !two_step.off => Registration::Full,
            UserStatus::Active => Registration::WithoutTwoStep,
            UserStatus::Deactivated => Registration::Deactivated,
            UserStatus::Invited | UserStatus::Registered => Registration::Invited,
        };
        Ok(ManagedUser {
            user,
            registration,
            two_step_off: two_step.off,
        })
    }

    /// [`Accounts::managed_user`], refused for someone deactivated: only an
    /// admin changes anything about them (`sealpost user reactivate`).
    async fn managed_active(&self, manager: &User, id: UserId) -> Result<ManagedUser> {
        let person = self.managed_user(manager, id).await?;
        if person.registration == Registration::Deactivated {
            return Err(Error::invalid(
                "This person is deactivated; only your IT admin can reactivate them.",
            ));
        }
        Ok(person)
    }

    /// One person of the manager's practice; others are not found. A failure
    /// of the database stays what it is (the person sees an error page, not a
    /// "not found").
    pub async fn managed_user(&self, manager: &User, id: UserId) -> Result<ManagedUser> {
        let practice = Self::managed_practice(manager)?;
        let person = self.managed(id).await?;
        if person.user.practice_id == Some(practice) {
            Ok(person)
        } else {
            Err(Error::NotFound)
        }
    }

    /// Refuses to touch a person who has a message from another practice
    /// waiting: their address and their invitations are not the manager's to
    /// move (an email change would carry the other practice's invitation to
    /// the new address).
    async fn only_own_invitations(&self, practice: PracticeId, id: UserId) -> Result<()> {
        let foreign = sqlx::query(
            "SELECT 1 AS n FROM message_recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.user_id = $1 AND m.practice_id <> $2 AND m.state = 'sealed'",
        )
        .bind(id.0)
        .bind(practice.0)
        .fetch_optional(&self.db)
        .await?;
        if foreign.is_some() {
            return Err(Error::invalid(
                "This person also has a secure message from outside your practice waiting, so their \
                 address cannot be changed or their invitation sent again here. They can register \
                 from the invitation they have; your IT admin can help otherwise.",
            ));
        }
        Ok(())
    }

    /// Corrects an invited person's email address and phone, then invites them
    /// again at the new address.
    pub async fn edit_invited_user(
        &self,
        manager: &User,
        id: UserId,
        email: &str,
        phone: &str,
        client: &str,
    ) -> Result<()> {
        let person = self.managed_active(manager, id).await?;
        if person.registration != Registration::Invited {
            return Err(Error::invalid(
                "Only people who have not registered yet can be edited here.",
            ));
        }
        self.only_own_invitations(Self::managed_practice(manager)?, id).await?;
        let email = normalize_email(email)?;
        // E.164, or empty (see `phone_number.rs`).
        let phone =
            super::phone_number::optional_e164(phone, self.policy.default_phone_country).map_err(Error::invalid)?;
        if email != person.user.email && self.user_by_email(&email).await?.is_some() {
            return Err(Error::Conflict(format!("Someone already has the address {email}.")));
        }
        sqlx::query("UPDATE users SET email = $1, phone = $2 WHERE id = $3")
            .bind(&email)
            .bind(&phone)
            .bind(id.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", manager.id),
            action: "manage.user_edit",
            object: &format!("user:{id}"),
            client,
        })
        .await?;
        self.reinvite(manager, id, client).await
    }

    /// Sends an invited person a fresh invitation; every earlier invitation
    /// or set-password link of theirs stops working.
    pub async fn reinvite(&self, manager: &User, id: UserId, client: &str) -> Result<()> {
        let person = self.managed_active(manager, id).await?;
        if person.registration != Registration::Invited {
            return Err(Error::invalid("This person has registered already."));
        }
        let practice = Self::managed_practice(manager)?;
        self.only_own_invitations(practice, id).await?;
        let message: Option<MessageId> = sqlx::query(
            "SELECT r.message_id FROM message_recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.user_id = $1 AND m.practice_id = $2 AND m.state = 'sealed' ORDER BY m.created_at DESC LIMIT 1",
        )
        .bind(id.0)
        .bind(practice.0)
        .fetch_optional(&self.db)
        .await?
        .map(|row| row.try_get::<String, _>("message_id"))
        .transpose()?
        .as_deref()
        .and_then(MessageId::parse);
        let kind = match (person.user.status, &message) {
            // Written to but never registered: a new invitation to the message.
            (UserStatus::Invited, Some(_)) => JobKind::Notify,
            // Added by an admin, or registered without a password: a new set-password link.
            _ => JobKind::SetPassword,
        };
        if person.user.status == UserStatus::Invited && message.is_none() {
            return Err(Error::invalid(
                "There is no message to invite this person to any more. Send them a new secure message instead.",
            ));
        }
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL AND purpose IN ($3, $4)")
            .bind(now)
            .bind(id.0)
            .bind(TokenPurpose::Invite.as_str())
            .bind(TokenPurpose::SetPassword.as_str())
            .execute(&mut *tx)
            .await?;
        add_job(
            &mut tx,
            kind,
            id,
            message.as_ref().filter(|_| kind == JobKind::Notify),
            now,
        )
        .await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", manager.id),
            action: "manage.reinvite",
            object: &format!("user:{id}"),
            client,
        })
        .await
    }

    /// Deactivates a person of the manager's practice who left (see
    /// `staff_admin.rs` for what ends). A manager cannot deactivate themselves.
    pub async fn deactivate_managed(&self, manager: &User, id: UserId, client: &str) -> Result<()> {
        let person = self.managed_active(manager, id).await?;
        if person.user.id == manager.id {
            return Err(Error::invalid(
                "You cannot deactivate yourself; ask another User Manager or your IT admin.",
            ));
        }
        self.deactivate(&person.user, &format!("user:{}", manager.id), client)
            .await
    }

    /// Turns two-step verification off (where the policy allows) or back on for
    /// a person of the manager's practice.
    pub async fn set_user_two_step(&self, manager: &User, id: UserId, on: bool, client: &str) -> Result<()> {
        self.managed_active(manager, id).await?;
        if !on && !self.policy.two_step.allow_disable {
            return Err(Error::invalid(
                "Your organisation's policy does not allow turning two-step verification off.",
            ));
        }
        sqlx::query("UPDATE users SET two_step_off = $1 WHERE id = $2")
            .bind(i64::from(!on))
            .bind(id.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", manager.id),
            action: if on {
                "manage.two_step_on"
            } else {
                "manage.two_step_off"
            },
            object: &format!("user:{id}"),
            client,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::Error;
    use crate::accounts::Role;
    use crate::testing::store;

    /// Only "absent" is not found: someone who is no User Manager is refused
    /// (the portal shows that as not found too), and a database failure stays
    /// a failure, which the portal shows as its error page, not a 404.
    #[tokio::test]
    async fn not_found_means_absent_and_a_database_failure_stays_one() {
        let (_dir, store, _) = store().await;
        store.accounts().add_practice("Smiles", "smiles.example").await.unwrap();
        let (manager, _) = store
            .accounts()
            .add_practice_user("ada@smiles.example", "Ada", Role::Doctor, "smiles.example", true, true)
            .await
            .unwrap();
        let (staff, _) = store
            .accounts()
            .add_practice_user("bob@smiles.example", "Bob", Role::Staff, "smiles.example", true, false)
            .await
            .unwrap();
        sqlx::query("UPDATE users SET status = 'active' WHERE id = $1")
            .bind(manager.id.0)
            .execute(&store.db)
            .await
            .unwrap();
        let manager = store.accounts().user(manager.id).await.unwrap();
        assert_eq!(
            store.accounts().managed_user(&manager, staff.id).await.unwrap().user.id,
            staff.id
        );
        let absent = crate::ids::UserId(staff.id.0 + 100);
        assert!(matches!(
            store.accounts().managed_user(&manager, absent).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            store.accounts().managed_user(&staff, manager.id).await,
            Err(Error::Forbidden(_))
        ));

        store.close().await;
        let failed = store.accounts().managed_user(&manager, staff.id).await;
        assert!(matches!(failed, Err(Error::Database(_))), "{failed:?}");
    }
}
