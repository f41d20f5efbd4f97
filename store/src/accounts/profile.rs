//! Changing what a person's profile says about them after registration: name,
//! phones (E.164, see `phone_number.rs`), a doctor's ADA number or NPI,
//! specialty and procedures, the time zone the portal shows times in, and the
//! email address, which changes only once the new address confirms it by a
//! link (the current address is told it was asked for).

use sqlx::Row;

use super::phone_number::{optional_e164, to_e164};
use super::recovery::LinkRequest;
use super::{Role, TokenPurpose, User, normalize_email};
use crate::audit::AuditEvent;
use crate::job_kind::{JobKind, add_job};
use crate::{Accounts, Error, Result};

/// Longer values are not time zone names (the longest is 32 bytes).
const MAX_TIME_ZONE: usize = 64;

/// What the profile form changes. Phones as typed; the store keeps E.164.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub full_name: String,
    /// The cell phone (the account's `phone`): required.
    pub phone: String,
    pub landline: String,
    /// Doctors only (ignored for others), like the two below.
    pub ada_number: String,
    pub npi: String,
    pub specialty: Option<String>,
    pub procedures: Vec<String>,
}

/// The answer to an email change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChange {
    /// The confirmation link went to the new address.
    Sent(LinkRequest),
    /// A link went to that address moments ago; nothing was sent.
    HeldBack(LinkRequest),
}

/// Is `npi` a National Provider Identifier: 10 digits whose last is the Luhn
/// check digit of `80840` followed by the first nine.
pub fn valid_npi(npi: &str) -> bool {
    let digits: Vec<u32> = npi.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 10 || npi.chars().count() != 10 {
        return false;
    }
    // Luhn over "80840" + the first nine digits, doubling from the right.
    let mut sum = 0;
    for (i, d) in [8, 0, 8, 4, 0].iter().chain(&digits[..9]).rev().enumerate() {
        let mut d = *d;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    (10 - sum % 10) % 10 == digits[9]
}

/// Is `ada` an ADA member number: 5 to 12 digits.
pub fn valid_ada(ada: &str) -> bool {
    (5..=12).contains(&ada.len()) && ada.chars().all(|c| c.is_ascii_digit())
}

impl Accounts<'_> {
    /// Sets (or with `None` clears) `user`'s time zone. The caller checks the
    /// name against the tz database; here it must only be short and printable.
    pub async fn set_time_zone(&self, user: &User, time_zone: Option<&str>) -> Result<()> {
        let time_zone = time_zone.map(str::trim).filter(|z| !z.is_empty());
        if time_zone.is_some_and(|z| z.len() > MAX_TIME_ZONE || z.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(Error::invalid("Please choose a time zone from the list."));
        }
        let mut profile = self.user(user.id).await?.profile;
        profile.time_zone = time_zone.map(str::to_owned);
        sqlx::query("UPDATE users SET profile = $1 WHERE id = $2")
            .bind(serde_json::to_string(&profile).unwrap_or_else(|_| "{}".into()))
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Saves the profile form (the portal showed each problem next to its
    /// field; this checks again): phones become E.164, an NPI must pass its
    /// check digit. Specialty and procedures are the caller's (checked against
    /// the portal's list).
    pub async fn update_profile(&self, user: &User, change: &ProfileChange, client: &str) -> Result<User> {
        let country = self.policy.default_phone_country;
        let full_name = change.full_name.trim();
        if full_name.is_empty() || full_name.chars().count() > 200 || full_name.chars().any(char::is_control) {
            return Err(Error::invalid("Please enter your full name."));
        }
        let phone = to_e164(&change.phone, country).map_err(Error::invalid)?;
        let landline = optional_e164(&change.landline, country).map_err(Error::invalid)?;
        let mut profile = self.user(user.id).await?.profile;
        profile.landline = (!landline.is_empty()).then_some(landline);
        if user.role == Role::Doctor {
            let (ada, npi) = (change.ada_number.trim(), change.npi.trim());
            if !ada.is_empty() && !valid_ada(ada) {
                return Err(Error::invalid("An ADA number has 5 to 12 digits."));
            }
            if !npi.is_empty() && !valid_npi(npi) {
                return Err(Error::invalid(
                    "This is not a valid NPI: it has 10 digits and a check digit.",
                ));
            }
            profile.ada_number = (!ada.is_empty()).then(|| ada.to_owned());
            profile.npi = (!npi.is_empty()).then(|| npi.to_owned());
            profile.specialty.clone_from(&change.specialty);
            profile.procedures.clone_from(&change.procedures);
        }
        sqlx::query("UPDATE users SET full_name = $1, phone = $2, profile = $3 WHERE id = $4")
            .bind(full_name)
            .bind(&phone)
            .bind(serde_json::to_string(&profile).unwrap_or_else(|_| "{}".into()))
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "profile.update",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        self.user(user.id).await
    }

    /// The address an email change waits to move `user` to, if any.
    pub async fn pending_email(&self, user: &User) -> Result<Option<String>> {
        let row = sqlx::query("SELECT pending_email FROM users WHERE id = $1")
            .bind(user.id.0)
            .fetch_one(&self.db)
            .await?;
        Ok(row.try_get::<Option<String>, _>("pending_email")?)
    }

    /// Asks to move `user` to `new_email`: the new address gets a link that
    /// makes the change, the current one is told. An earlier pending change
    /// (and its link) is replaced. One link per address per 10 minutes.
    pub async fn request_email_change(&self, user: &User, new_email: &str, client: &str) -> Result<EmailChange> {
        let new_email = normalize_email(new_email)?;
        if new_email == user.email {
            return Err(Error::invalid("That is your address already."));
        }
        if self.user_by_email(&new_email).await?.is_some() {
            return Err(Error::invalid(
                "Another account uses that address. Please choose another, or ask your practice to help.",
            ));
        }
        let slot = self.auth().take_link_slot(&new_email).await?;
        if !slot.sent_now {
            return Ok(EmailChange::HeldBack(slot));
        }
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE users SET pending_email = $1 WHERE id = $2")
            .bind(&new_email)
            .bind(user.id.0)
            .execute(&mut *tx)
            .await?;
        kill_email_links(&mut tx, user, now).await?;
        add_job(&mut tx, JobKind::ConfirmEmail, user.id, None, now).await?;
        add_job(&mut tx, JobKind::EmailChangeNotice, user.id, None, now).await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "email.change_request",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        Ok(EmailChange::Sent(slot))
    }

    /// Drops a pending email change; its link stops working.
    pub async fn cancel_email_change(&self, user: &User) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE users SET pending_email = NULL WHERE id = $1")
            .bind(user.id.0)
            .execute(&mut *tx)
            .await?;
        kill_email_links(&mut tx, user, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// For the confirmation mail: the pending address and a fresh link token
    /// (as long as a set-password link). No change pending: [`Error::NotFound`].
    pub async fn email_change_link(&self, user: &User) -> Result<(String, String)> {
        let to = self.pending_email(user).await?.ok_or(Error::NotFound)?;
        let token = self
            .auth()
            .issue_token(TokenPurpose::ConfirmEmail, user.id, None, self.policy.set_password_ttl)
            .await?;
        Ok((to, token))
    }

    /// Follows a confirmation link: the account's address becomes the pending
    /// one. The link works once; a newer request or a cancel voids it.
    pub async fn confirm_email_change(&self, token: &str, client: &str) -> Result<User> {
        let grant = self.auth().check_token(token, TokenPurpose::ConfirmEmail).await?;
        let user = self.user(grant.user_id).await?;
        let new_email = self.pending_email(&user).await?.ok_or(Error::TokenUsed)?;
        if self.user_by_email(&new_email).await?.is_some() {
            return Err(Error::invalid(
                "Another account uses that address now. Please choose another.",
            ));
        }
        let mut tx = self.write_tx().await?;
        self.auth().spend_token(&mut tx, &grant).await?;
        sqlx::query("UPDATE users SET email = $1, pending_email = NULL WHERE id = $2")
            .bind(&new_email)
            .bind(user.id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "email.change",
            object: &format!("user:{}", user.id),
            client,
        })
        .await?;
        self.user(user.id).await
    }
}

/// Voids `user`'s unused email confirmation links.
async fn kill_email_links(tx: &mut crate::write_tx::WriteTx, user: &User, now: i64) -> Result<()> {
    sqlx::query("UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
        .bind(now)
        .bind(user.id.0)
        .bind(TokenPurpose::ConfirmEmail.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{valid_ada, valid_npi};
    use crate::ids::UserId;

    #[test]
    fn an_npi_needs_its_luhn_check_digit() {
        assert!(valid_npi("1234567893"), "the CMS example");
        for bad in ["1234567890", "123456789", "12345678931", "123456789a", " 234567893", ""] {
            assert!(!valid_npi(bad), "{bad:?}");
        }
        assert!(valid_ada("123456789"));
        assert!(!valid_ada("1234") && !valid_ada("12345x") && !valid_ada(&"1".repeat(13)));
    }

    #[tokio::test]
    async fn the_time_zone_is_kept_with_the_rest_of_the_profile() {
        let (_dir, store, _) = crate::testing::store().await;
        let id: i64 = sqlx::Row::get(
            &sqlx::query(
                r#"INSERT INTO users (email, role, status, created_at, profile)
                   VALUES ('pat@example.org', 'patient', 'active', 0, '{"specialty":"Endodontics"}') RETURNING id"#,
            )
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        );
        let accounts = store.accounts();
        let user = accounts.user(UserId(id)).await.unwrap();
        accounts.set_time_zone(&user, Some(" Europe/Paris ")).await.unwrap();
        let profile = accounts.user(user.id).await.unwrap().profile;
        assert_eq!(profile.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(profile.specialty.as_deref(), Some("Endodontics"), "the rest stays");
        for bad in ["x".repeat(65), "Europe/Paris\n".to_owned() + "x", "a b".to_owned()] {
            assert!(accounts.set_time_zone(&user, Some(&bad)).await.is_err(), "{bad:?}");
        }
        accounts.set_time_zone(&user, Some("")).await.unwrap();
        assert_eq!(accounts.user(user.id).await.unwrap().profile.time_zone, None);
    }
}
