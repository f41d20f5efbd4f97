//! Practices, users, passwords, link tokens and portal sessions.
//!
//! Tokens (invitations, set-password links, sessions) carry 256 random bits, are
//! stored only as SHA-256 hashes, serve one purpose, expire, and are single-use
//! where they grant a step. Repeated failed sign-ins pause sign-in for the
//! address (for 15 minutes, doubling; a password reset lifts it at once) and
//! throttle the client address.

pub mod addin_keys;
pub mod app_passwords;
mod devices;
mod direct_delivery;
mod invites;
pub mod lockout;
pub mod manage;
pub mod passkeys;
pub mod passwords;
pub mod phone_number;
pub mod phones;
pub mod practice_info;
pub mod profile;
mod recovery;
mod registration;
pub mod relay_sources;
pub mod saml;
mod sealing;
mod sending;
mod signin;
pub mod sms;
pub mod staff_admin;
pub mod throttle;
mod tokens;
pub mod two_step;

pub use devices::SignIn;
pub use profile::{EmailChange, ProfileChange};
pub use recovery::LinkRequest;
pub use registration::{Invitation, Registration};
pub use sending::SenderRefusal;
pub use signin::Session;
pub use tokens::{TokenGrant, TokenPurpose, new_token};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::AuditEvent;
use crate::ids::{PracticeId, UserId};
use crate::{Accounts, Error, Result};

/// A practice: one medical or dental office, known by its mail domain.
#[derive(Debug, Clone, Serialize)]
pub struct Practice {
    pub id: PracticeId,
    pub name: String,
    pub domain: String,
}

/// How a recipient relates to the practice that writes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    Patient,
    DoctorInPractice,
    StaffInPractice,
    DoctorOtherPractice,
    StaffOtherPractice,
}

impl Relationship {
    pub const ALL: [Self; 5] = [
        Self::Patient,
        Self::DoctorInPractice,
        Self::StaffInPractice,
        Self::DoctorOtherPractice,
        Self::StaffOtherPractice,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text.trim().to_ascii_lowercase())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::DoctorInPractice => "doctor_in_practice",
            Self::StaffInPractice => "staff_in_practice",
            Self::DoctorOtherPractice => "doctor_other_practice",
            Self::StaffOtherPractice => "staff_other_practice",
        }
    }

    /// Words for people, e.g. on the role-choice page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::DoctorInPractice => "Doctor in my practice",
            Self::StaffInPractice => "Staff in my practice",
            Self::DoctorOtherPractice => "Doctor in another practice",
            Self::StaffOtherPractice => "Staff in another practice",
        }
    }

    /// The account role this relationship gives a new user.
    pub fn role(self) -> Role {
        match self {
            Self::Patient => Role::Patient,
            Self::DoctorInPractice | Self::DoctorOtherPractice => Role::Doctor,
            Self::StaffInPractice | Self::StaffOtherPractice => Role::Staff,
        }
    }

    /// In-practice recipients join the sender's practice.
    pub fn in_practice(self) -> bool {
        matches!(self, Self::DoctorInPractice | Self::StaffInPractice)
    }

    /// Other-practice recipients describe their own practice when registering.
    pub fn other_practice(self) -> bool {
        matches!(self, Self::DoctorOtherPractice | Self::StaffOtherPractice)
    }
}

/// What kind of person an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Doctor,
    Staff,
    Patient,
    /// A recipient whose relationship nobody has chosen yet.
    Unknown,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "doctor" => Some(Self::Doctor),
            "staff" => Some(Self::Staff),
            "patient" => Some(Self::Patient),
            "unknown" => Some(Self::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doctor => "doctor",
            Self::Staff => "staff",
            Self::Patient => "patient",
            Self::Unknown => "unknown",
        }
    }
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Written to, has not registered.
    Invited,
    /// Registered, has not set a password yet.
    Registered,
    /// Can sign in.
    Active,
    /// Left the practice: cannot sign in, has no sessions, links or app
    /// passwords; their sent messages stay (`sealpost user deactivate`).
    Deactivated,
}

impl UserStatus {
    fn parse(text: &str) -> Self {
        match text {
            "active" => Self::Active,
            "registered" => Self::Registered,
            "deactivated" => Self::Deactivated,
            _ => Self::Invited,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Registered => "registered",
            Self::Active => "active",
            Self::Deactivated => "deactivated",
        }
    }
}

/// What a person tells us about themselves when registering. Not PHI.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub procedures: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_address: Option<String>,
    /// The landline, E.164 (the cell phone is the account's `phone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landline: Option<String>,
    /// A dentist's ADA number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ada_number: Option<String>,
    /// A physician's NPI (10 digits, Luhn check digit over `80840` + the first 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
    /// The IANA time zone the portal shows times in (`Europe/Paris`); none:
    /// the browser's. Checked against the tz database by the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// An account.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub phone: String,
    pub role: Role,
    pub practice_id: Option<PracticeId>,
    pub paid: bool,
    pub user_manager: bool,
    pub status: UserStatus,
    pub profile: Profile,
}

impl User {
    /// The name to show: the full name, else the address.
    pub fn display_name(&self) -> &str {
        if self.full_name.is_empty() {
            &self.email
        } else {
            &self.full_name
        }
    }
}

const USER_COLUMNS: &str = "id, email, full_name, phone, role, practice_id, paid, user_manager, status, profile";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User> {
    let profile: String = row.try_get("profile")?;
    Ok(User {
        id: UserId(row.try_get("id")?),
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        phone: row.try_get("phone")?,
        role: Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Unknown),
        practice_id: row.try_get::<Option<i64>, _>("practice_id")?.map(PracticeId),
        paid: row.try_get::<i64, _>("paid")? != 0,
        user_manager: row.try_get::<i64, _>("user_manager")? != 0,
        status: UserStatus::parse(&row.try_get::<String, _>("status")?),
        profile: serde_json::from_str(&profile).unwrap_or_default(),
    })
}

/// Lower-cases and checks an email address's shape.
pub fn normalize_email(address: &str) -> Result<String> {
    let address = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase();
    let valid = address.len() <= 254
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.contains('@') && (domain.contains('.') || domain == "localhost")
        })
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
    if valid {
        Ok(address)
    } else {
        Err(Error::invalid("Please enter a valid email address."))
    }
}

impl Accounts<'_> {
    /// Adds a practice (admin CLI).
    pub async fn add_practice(&self, name: &str, domain: &str) -> Result<Practice> {
        let name = name.trim();
        let domain = domain.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(Error::invalid("a practice needs a name"));
        }
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(Error::invalid(format!("{domain:?} is not a mail domain")));
        }
        if self.domain_taken(&domain).await? {
            return Err(Error::Conflict(format!(
                "a practice with domain {domain} exists already"
            )));
        }
        let id: i64 = sqlx::query("INSERT INTO practices (name, domain, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(&domain)
            .bind(self.now())
            .fetch_one(&self.db)
            .await?
            .try_get("id")?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "practice.add",
            object: &format!("practice:{id}"),
            client: "cli",
        })
        .await?;
        Ok(Practice {
            id: PracticeId(id),
            name: name.to_owned(),
            domain,
        })
    }

    pub async fn practice_by_domain(&self, domain: &str) -> Result<Option<Practice>> {
        let row = sqlx::query("SELECT id, name, domain FROM practices WHERE domain = $1")
            .bind(domain.to_ascii_lowercase())
            .fetch_optional(&self.db)
            .await?;
        row.map(|row| practice_from_row(&row)).transpose()
    }

    pub async fn practice(&self, id: PracticeId) -> Result<Practice> {
        let row = sqlx::query("SELECT id, name, domain FROM practices WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.db)
            .await?;
        practice_from_row(&row.ok_or(Error::NotFound)?)
    }

    /// Adds a practice doctor or staff member (admin CLI) and returns a
    /// set-password token for them. The first user of a practice manages its users.
    pub async fn add_practice_user(
        &self,
        email: &str,
        full_name: &str,
        role: Role,
        practice_domain: &str,
        paid: bool,
        user_manager: bool,
    ) -> Result<(User, String)> {
        let email = normalize_email(email)?;
        if !matches!(role, Role::Doctor | Role::Staff) {
            return Err(Error::invalid("a practice user's role is doctor or staff"));
        }
        let practice = self
            .practice_by_domain(practice_domain)
            .await?
            .ok_or_else(|| Error::invalid(format!("no practice has the domain {practice_domain}; add it first")))?;
        if self.user_by_email(&email).await?.is_some() {
            return Err(Error::Conflict(format!("a user with address {email} exists already")));
        }
        let first: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE practice_id = $1")
            .bind(practice.id.0)
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
        let id: i64 = sqlx::query(
            "INSERT INTO users (email, full_name, role, practice_id, paid, user_manager, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'registered', $7) RETURNING id",
        )
        .bind(&email)
        .bind(full_name.trim())
        .bind(role.as_str())
        .bind(practice.id.0)
        .bind(i64::from(paid))
        .bind(i64::from(user_manager || first == 0))
        .bind(self.now())
        .fetch_one(&self.db)
        .await?
        .try_get("id")?;
        let user = self.user(UserId(id)).await?;
        let token = self
            .auth()
            .issue_token(TokenPurpose::SetPassword, user.id, None, self.policy.staff_setup_ttl)
            .await?;
        self.audit(AuditEvent {
            actor: "admin",
            action: "user.add",
            object: &format!("user:{id}"),
            client: "cli",
        })
        .await?;
        Ok((user, token))
    }

    pub async fn user(&self, id: UserId) -> Result<User> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.db)
        .await?;
        user_from_row(&row.ok_or(Error::NotFound)?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        )))
        .bind(email.trim().to_ascii_lowercase())
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// May `address` send secure mail ([`User::may_send_secure`])? The
    /// account if so, else why not.
    pub async fn secure_sender(&self, address: &str) -> Result<Result<User, SenderRefusal>> {
        let Some(user) = self.user_by_email(address).await? else {
            return Ok(Err(SenderRefusal::Unknown));
        };
        Ok(user.may_send_secure().map(|()| user))
    }
}

fn practice_from_row(row: &AnyRow) -> Result<Practice> {
    Ok(Practice {
        id: PracticeId(row.try_get("id")?),
        name: row.try_get("name")?,
        domain: row.try_get("domain")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationships_parse_and_map_to_roles() {
        for r in Relationship::ALL {
            assert_eq!(Relationship::parse(r.as_str()), Some(r));
        }
        assert_eq!(Relationship::parse(" Patient "), Some(Relationship::Patient));
        assert_eq!(Relationship::parse("admin"), None);
        assert_eq!(Relationship::DoctorOtherPractice.role(), Role::Doctor);
        assert!(Relationship::StaffInPractice.in_practice());
    }

    #[test]
    fn email_normalization_rejects_junk() {
        assert_eq!(normalize_email(" <Pat@Example.COM> ").unwrap(), "pat@example.com");
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        assert!(normalize_email("a@b@example.com\r\n").is_err());
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        assert!(a.len() >= 43);
        assert_ne!(a, new_token());
    }
}
