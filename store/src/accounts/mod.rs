//! Practices, users, passwords, link tokens and portal sessions.
//!
//! Tokens (invitations, set-password links, sessions) carry 256 random bits, are
//! stored only as SHA-256 hashes, serve one purpose, expire, and are single-use
//! where they grant a step. Repeated failed sign-ins lock the account (until a
//! password reset) and throttle the client address.

pub mod passwords;
pub mod throttle;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::AuditEvent;
use crate::crypto::{random_bytes, sha256};
use crate::ids::{MessageId, PracticeId, UserId};
use crate::{Error, Result, Store};

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
}

impl UserStatus {
    fn parse(text: &str) -> Self {
        match text {
            "active" => Self::Active,
            "registered" => Self::Registered,
            _ => Self::Invited,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Registered => "registered",
            Self::Active => "active",
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

fn user_from_row(row: &AnyRow) -> Result<User> {
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

/// Why a message may not be sent securely by this address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderRefusal {
    /// No account with this address.
    Unknown,
    /// An account, but not a member of a practice.
    NotPracticeUser,
    /// A practice user without a paid account.
    NotPaid,
}

/// A fresh token for a link or a session: 256 random bits, URL-safe.
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Invite,
    SetPassword,
    Session,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::SetPassword => "set_password",
            Self::Session => "session",
        }
    }
}

/// A valid, unused token's facts.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub hash: Vec<u8>,
    pub user_id: UserId,
    pub message_id: Option<MessageId>,
    pub expires_at: i64,
}

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

/// A signed-in portal session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub user: User,
}

impl Store {
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
        if self.practice_by_domain(&domain).await?.is_some() {
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

    /// May `address` send secure mail? Only paid users of a known practice may.
    pub async fn secure_sender(&self, address: &str) -> Result<Result<User, SenderRefusal>> {
        let Some(user) = self.user_by_email(address).await? else {
            return Ok(Err(SenderRefusal::Unknown));
        };
        if user.practice_id.is_none() || !matches!(user.role, Role::Doctor | Role::Staff) {
            return Ok(Err(SenderRefusal::NotPracticeUser));
        }
        if !user.paid {
            return Ok(Err(SenderRefusal::NotPaid));
        }
        Ok(Ok(user))
    }

    /// Checks an address and password (portal sign-in, SMTP AUTH). Every outcome
    /// is audited; a wrong address and a wrong password look the same to the
    /// caller. Too many failures lock the account or throttle the client.
    pub async fn check_password(&self, email: &str, password: &str, client: &str) -> Result<User> {
        let policy = &self.policy;
        if self.throttle.blocked(
            client,
            self.now(),
            policy.client_failure_limit,
            policy.client_failure_window,
        ) {
            self.audit(AuditEvent {
                actor: "unknown",
                action: "signin.throttled",
                object: "",
                client,
            })
            .await?;
            return Err(Error::Throttled);
        }
        let user = self.user_by_email(email).await?;
        let (stored, locked): (Option<String>, bool) = match &user {
            Some(user) => {
                let row = sqlx::query("SELECT password_hash, locked_at FROM users WHERE id = $1")
                    .bind(user.id.0)
                    .fetch_one(&self.db)
                    .await?;
                (
                    row.try_get("password_hash")?,
                    row.try_get::<Option<i64>, _>("locked_at")?.is_some(),
                )
            }
            None => (None, false),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || passwords::verify(&password, stored.as_deref()))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if locked => {
                self.audit(AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "signin.locked",
                    object: "",
                    client,
                })
                .await?;
                Err(Error::Locked)
            }
            Some(user) if ok && user.status == UserStatus::Active => {
                sqlx::query("UPDATE users SET failed_logins = 0 WHERE id = $1")
                    .bind(user.id.0)
                    .execute(&self.db)
                    .await?;
                self.audit(AuditEvent {
                    actor: &format!("user:{}", user.id),
                    action: "signin.success",
                    object: "",
                    client,
                })
                .await?;
                Ok(user)
            }
            other => {
                self.throttle.failed(client, self.now(), policy.client_failure_window);
                let actor = match &other {
                    Some(user) => format!("user:{}", user.id),
                    None => "unknown".to_owned(),
                };
                self.audit(AuditEvent {
                    actor: &actor,
                    action: "signin.failure",
                    object: "",
                    client,
                })
                .await?;
                if let Some(user) = other {
                    let failures: i64 = sqlx::query(
                        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
                    )
                    .bind(user.id.0)
                    .fetch_one(&self.db)
                    .await?
                    .try_get("failed_logins")?;
                    if failures >= policy.max_failed_signins {
                        sqlx::query("UPDATE users SET locked_at = $1 WHERE id = $2 AND locked_at IS NULL")
                            .bind(self.now())
                            .bind(user.id.0)
                            .execute(&self.db)
                            .await?;
                        self.audit(AuditEvent {
                            actor: "system",
                            action: "account.lock",
                            object: &format!("user:{}", user.id),
                            client,
                        })
                        .await?;
                    }
                }
                Err(Error::AuthFailed)
            }
        }
    }

    /// "Forgot password": mails a set-password link to an account that has one
    /// coming (at most one such mail per 10 minutes). Says nothing about whether
    /// the address exists.
    pub async fn request_password_reset(&self, email: &str, client: &str) -> Result<()> {
        let Some(user) = self.user_by_email(email).await? else {
            return Ok(());
        };
        if user.status == UserStatus::Invited {
            return Ok(());
        }
        let recent = sqlx::query(
            "SELECT 1 AS x FROM mail_jobs WHERE user_id = $1 AND kind = 'set_password' AND created_at > $2",
        )
        .bind(user.id.0)
        .bind(self.now() - 600)
        .fetch_optional(&self.db)
        .await?;
        if recent.is_some() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        crate::jobs::add_job(&mut tx, crate::jobs::JobKind::SetPassword, user.id, None, self.now()).await?;
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "password.reset_request",
            object: "",
            client,
        })
        .await
    }

    /// Issues a token and returns its only clear copy.
    pub async fn issue_token(
        &self,
        purpose: TokenPurpose,
        user: UserId,
        message: Option<&MessageId>,
        ttl: i64,
    ) -> Result<String> {
        let token = new_token();
        let now = self.now();
        sqlx::query(
            "INSERT INTO tokens (hash, purpose, user_id, message_id, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(sha256(token.as_bytes()))
        .bind(purpose.as_str())
        .bind(user.0)
        .bind(message.map(MessageId::as_str))
        .bind(now)
        .bind(now + ttl)
        .execute(&self.db)
        .await?;
        Ok(token)
    }

    /// Looks a token up: it must exist for `purpose`, be unused and unexpired.
    pub async fn check_token(&self, token: &str, purpose: TokenPurpose) -> Result<TokenGrant> {
        if token.len() > 100 {
            return Err(Error::TokenInvalid);
        }
        let hash = sha256(token.as_bytes());
        let row =
            sqlx::query("SELECT user_id, message_id, expires_at, used_at FROM tokens WHERE hash = $1 AND purpose = $2")
                .bind(&hash)
                .bind(purpose.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or(Error::TokenInvalid)?;
        if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
            return Err(Error::TokenUsed);
        }
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= self.now() {
            return Err(Error::TokenExpired);
        }
        Ok(TokenGrant {
            hash,
            user_id: UserId(row.try_get("user_id")?),
            message_id: row
                .try_get::<Option<String>, _>("message_id")?
                .as_deref()
                .and_then(MessageId::parse),
            expires_at,
        })
    }

    /// Marks a token used; fails if someone else used it first.
    async fn spend_token(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, grant: &TokenGrant) -> Result<()> {
        let done = sqlx::query("UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(self.now())
            .bind(&grant.hash)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Error::TokenUsed)
        }
    }

    /// The invitation behind a link, for the registration page.
    pub async fn invitation(&self, token: &str) -> Result<Invitation> {
        let grant = self.check_token(token, TokenPurpose::Invite).await?;
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
        Ok(Invitation {
            user,
            message_id: Some(message),
            relationship,
            practice,
        })
    }

    /// Registers an invited recipient: stores what they told us, spends the
    /// invitation and queues the set-password email.
    pub async fn register(&self, token: &str, form: Registration, client: &str) -> Result<User> {
        let invitation = self.invitation(token).await?;
        let grant = self.check_token(token, TokenPurpose::Invite).await?;
        if invitation.user.status != UserStatus::Invited {
            return Err(Error::TokenUsed);
        }
        let full_name = form.full_name.trim();
        let phone = form.phone.trim();
        if full_name.is_empty() || full_name.len() > 200 {
            return Err(Error::invalid("Please enter your full name."));
        }
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if !(7..=15).contains(&digits) || !phone.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
            return Err(Error::invalid(
                "Please enter a phone number we can reach you at, like +1 555 123 4567.",
            ));
        }
        let mut tx = self.db.begin().await?;
        self.spend_token(&mut tx, &grant).await?;
        sqlx::query("UPDATE users SET full_name = $1, phone = $2, profile = $3, status = 'registered' WHERE id = $4")
            .bind(full_name)
            .bind(phone)
            .bind(serde_json::to_string(&form.profile).unwrap_or_else(|_| "{}".into()))
            .bind(invitation.user.id.0)
            .execute(&mut *tx)
            .await?;
        crate::jobs::add_job(
            &mut tx,
            crate::jobs::JobKind::SetPassword,
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

    /// Sets a password from a set-password link; the account becomes active.
    /// Returns the user and the message the link leads to, if any.
    pub async fn set_password(&self, token: &str, password: &str, client: &str) -> Result<(User, Option<MessageId>)> {
        let grant = self.check_token(token, TokenPurpose::SetPassword).await?;
        let user = self.user(grant.user_id).await?;
        let hash = self.new_password_hash(&user, password).await?;
        let mut tx = self.db.begin().await?;
        self.spend_token(&mut tx, &grant).await?;
        self.store_password(&mut tx, &user, hash).await?;
        tx.commit().await?;
        self.audit(AuditEvent { actor: &format!("user:{}", user.id), action: "password.set", object: "", client }).await?;
        Ok((self.user(user.id).await?, grant.message_id))
    }

    /// A signed-in user changes their password, proving the current one first.
    pub async fn change_password(&self, user: &User, current: &str, new: &str, client: &str) -> Result<()> {
        match self.check_password(&user.email, current, client).await {
            Ok(_) => {}
            Err(Error::AuthFailed) => return Err(Error::invalid("Your current password is not right.")),
            Err(other) => return Err(other),
        }
        let hash = self.new_password_hash(user, new).await?;
        let mut tx = self.db.begin().await?;
        self.store_password(&mut tx, user, hash).await?;
        tx.commit().await?;
        self.audit(AuditEvent { actor: &format!("user:{}", user.id), action: "password.change", object: "", client }).await
    }

    /// Checks a new password against the policy and the user's recent passwords,
    /// and hashes it.
    async fn new_password_hash(&self, user: &User, password: &str) -> Result<String> {
        let rules = self.policy.passwords.clone();
        passwords::check_policy(password, &user.email, &rules)?;
        let mut recent: Vec<String> = Vec::new();
        if rules.history > 0 {
            let current: Option<String> = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("password_hash")?;
            recent.extend(current);
            let older = sqlx::query("SELECT hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(user.id.0)
                .bind(rules.history - 1)
                .fetch_all(&self.db)
                .await?;
            for row in older {
                recent.push(row.try_get("hash")?);
            }
        }
        let owned = password.to_owned();
        let (reused, hash) = tokio::task::spawn_blocking(move || {
            let reused = recent.iter().any(|old| passwords::verify(&owned, Some(old)));
            (reused, passwords::hash(&owned))
        })
        .await
        .map_err(|_| Error::invalid("This password can't be used."))?;
        if reused {
            return Err(Error::invalid(format!(
                "You have used this password before. Please choose one that is not among your last {}.",
                rules.history
            )));
        }
        hash
    }

    /// Makes `hash` the user's password, keeps the old one in the history, and
    /// clears failures and any lockout.
    async fn store_password(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: &User, hash: String) -> Result<()> {
        let now = self.now();
        sqlx::query(
            "INSERT INTO password_history (user_id, hash, created_at)
             SELECT id, password_hash, $2 FROM users WHERE id = $1 AND password_hash IS NOT NULL",
        )
        .bind(user.id.0)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN
             (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user.id.0)
        .bind(self.policy.passwords.history.max(1))
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, status = 'active', failed_logins = 0, locked_at = NULL
             WHERE id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(user.id.0)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Signs in with a password and opens a session. A password past its maximum
    /// age opens no session: the caller gets a short-lived set-password token.
    pub async fn sign_in(&self, email: &str, password: &str, client: &str) -> Result<Session> {
        let user = self.check_password(email, password, client).await?;
        let max_age = self.policy.passwords.max_age_days;
        if max_age > 0 {
            let changed: Option<i64> = sqlx::query("SELECT password_changed_at FROM users WHERE id = $1")
                .bind(user.id.0)
                .fetch_one(&self.db)
                .await?
                .try_get("password_changed_at")?;
            if changed.is_some_and(|at| self.now() - at > max_age * 86_400) {
                let token = self.issue_token(TokenPurpose::SetPassword, user.id, None, 15 * 60).await?;
                self.audit(AuditEvent { actor: &format!("user:{}", user.id), action: "password.expired", object: "", client })
                    .await?;
                return Err(Error::PasswordExpired(crate::Sealed::new(token)));
            }
        }
        let token = self.issue_token(TokenPurpose::Session, user.id, None, self.policy.session_max).await?;
        Ok(Session { token, user })
    }

    /// The user behind a session cookie, if the session is live. Touches it, so
    /// the idle timeout counts from the last request.
    pub async fn session_user(&self, token: &str) -> Result<Option<User>> {
        if token.len() > 100 {
            return Ok(None);
        }
        let hash = sha256(token.as_bytes());
        let now = self.now();
        let row = sqlx::query(
            "SELECT user_id FROM tokens WHERE hash = $1 AND purpose = 'session' AND used_at IS NULL
             AND expires_at > $2 AND last_seen_at > $3",
        )
        .bind(&hash)
        .bind(now)
        .bind(now - self.policy.session_idle)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("UPDATE tokens SET last_seen_at = $1 WHERE hash = $2")
            .bind(now)
            .bind(&hash)
            .execute(&self.db)
            .await?;
        let user = self.user(UserId(row.try_get("user_id")?)).await?;
        Ok((user.status == UserStatus::Active).then_some(user))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE hash = $2 AND purpose = 'session'")
            .bind(self.now())
            .bind(sha256(token.as_bytes()))
            .execute(&self.db)
            .await?;
        Ok(())
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
