//! Two-step verification: one-time codes sent to the registered phone by text
//! message or voice call, and authenticator apps (TOTP, RFC 6238).
//!
//! Phone codes: 6 digits from the system CSPRNG, stored only as a salted SHA-256
//! hash, valid 10 minutes, single use, and void after 5 wrong tries. The text that
//! carries a code waits in a queue sealed with the store's keys (see
//! [`crate::accounts::sms`]). TOTP: SHA-1, 6 digits, 30-second steps, one step of
//! skew either way; each step is accepted once (RFC 6238 section 5.2), and the
//! secret is stored sealed.

use sqlx::Row;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::User;
use super::phones::{international_digits, premium_rate};
use crate::audit::AuditEvent;
use crate::crypto::{random_bytes, sha256};
use crate::ids::UserId;
use crate::{Error, Result, Store};

/// How long a phone code lasts (seconds).
pub const CODE_TTL: i64 = 10 * 60;
/// Wrong tries after which a phone code is void.
pub const CODE_ATTEMPTS: i64 = 5;
/// Codes one user may be sent per [`SEND_WINDOW`].
const SEND_LIMIT: i64 = 5;
const SEND_WINDOW: i64 = 15 * 60;

/// The two-step rules from the configuration.
#[derive(Debug, Clone)]
pub struct TwoStepPolicy {
    /// Every user is asked for a second step (unless a User Manager turned it off).
    pub required: bool,
    /// User Managers may turn two-step verification off for a user.
    pub allow_disable: bool,
    /// Days a "remember this device" cookie skips the second step.
    pub remember_days: i64,
    /// Codes any one number may be sent per hour, whoever asks (toll fraud).
    pub codes_per_number_per_hour: i64,
    /// Codes to numbers being set up (not yet proven) per hour, all users together.
    pub enrol_codes_per_hour: i64,
    /// International prefixes (digits of the number after `+`) never texted or
    /// called, on top of [`super::phones::PREMIUM_PREFIXES`].
    pub denied_prefixes: Vec<String>,
}

impl Default for TwoStepPolicy {
    fn default() -> Self {
        Self {
            required: true,
            allow_disable: true,
            remember_days: 30,
            codes_per_number_per_hour: 10,
            enrol_codes_per_hour: 100,
            denied_prefixes: Vec::new(),
        }
    }
}

/// How a phone code reaches the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Voice,
}

impl Channel {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sms" => Some(Self::Sms),
            "voice" => Some(Self::Voice),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }
}

/// The second step a user has set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A code to the registered phone.
    Phone,
    /// An authenticator app.
    Totp,
}

impl Method {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "phone" => Some(Self::Phone),
            "totp" => Some(Self::Totp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Totp => "totp",
        }
    }
}

/// What a phone code is for; a code serves only its purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// The second step of a sign-in.
    SignIn,
    /// Proving a phone number while setting two-step up.
    Enrol,
    /// The phone step of a password reset.
    Reset,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "signin",
            Self::Enrol => "enrol",
            Self::Reset => "reset",
        }
    }
}

/// A user's two-step settings.
#[derive(Debug, Clone)]
pub struct TwoStep {
    /// The method set up, if any.
    pub method: Option<Method>,
    /// A User Manager turned two-step off for this user.
    pub off: bool,
    /// The registered phone (may be empty).
    pub phone: String,
    /// Two-step is asked of this user.
    pub on: bool,
}

/// An authenticator app being set up: the secret to show, and the `otpauth` URI.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub secret: String,
    pub uri: String,
}

/// Checks a phone number's shape: 7 to 15 digits, with `+ - ( ) . space`.
pub fn valid_phone(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits) && phone.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

/// The last digits of a number, for "we sent a code to the phone ending 67".
pub fn phone_hint(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(2)..].iter().collect()
}

fn new_code() -> String {
    // 4 random bytes reduced mod 10^6: the bias (2^32 mod 10^6 values) is < 0.03 %.
    let n = u32::from_be_bytes(random_bytes::<4>()) % 1_000_000;
    format!("{n:06}")
}

fn code_hash(salt: &[u8], code: &str) -> Vec<u8> {
    let mut input = salt.to_vec();
    input.extend_from_slice(code.as_bytes());
    sha256(&input)
}

fn normalize_code(code: &str) -> String {
    code.chars().filter(char::is_ascii_digit).collect()
}

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

impl Store {
    /// A user's two-step settings, and whether two-step is asked of them.
    pub async fn two_step(&self, user: UserId) -> Result<TwoStep> {
        let row = sqlx::query("SELECT phone, two_step_off, two_step_method FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let method = row
            .try_get::<Option<String>, _>("two_step_method")?
            .as_deref()
            .and_then(Method::parse);
        let off = row.try_get::<i64, _>("two_step_off")? != 0;
        Ok(TwoStep {
            on: !off && (self.policy.two_step.required || method.is_some()),
            method,
            off,
            phone: row.try_get("phone")?,
        })
    }

    /// Sends a code by text or voice: to the registered phone, or while setting
    /// up (`CodePurpose::Enrol`) to `phone`. Earlier codes of the same purpose
    /// become void. Against toll fraud: never to a premium-rate number; at most
    /// 5 codes per user per 15 minutes, `codes_per_number_per_hour` to any one
    /// number, and `enrol_codes_per_hour` to new numbers in all.
    pub async fn send_code(
        &self,
        user: &User,
        purpose: CodePurpose,
        channel: Channel,
        phone: Option<&str>,
        client: &str,
    ) -> Result<()> {
        let phone = match (purpose, phone) {
            (CodePurpose::Enrol, Some(phone)) => phone.trim().to_owned(),
            _ => self.two_step(user.id).await?.phone,
        };
        if !valid_phone(&phone) {
            return Err(Error::invalid(
                "Please enter a phone number we can reach you at, like +1 555 123 4567.",
            ));
        }
        let two_step = &self.policy.two_step;
        if premium_rate(&phone, &two_step.denied_prefixes) {
            return Err(Error::invalid(
                "We can't send codes to premium-rate numbers. Please enter a mobile or landline number, or use an authenticator app.",
            ));
        }
        let destination =
            international_digits(&phone).unwrap_or_else(|| phone.chars().filter(char::is_ascii_digit).collect());
        let now = self.now();
        let recent: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE user_id = $1 AND created_at > $2")
                .bind(user.id.0)
                .bind(now - SEND_WINDOW)
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
        if recent >= SEND_LIMIT {
            return Err(Error::invalid(
                "We have sent you several codes already. Please wait 15 minutes before asking for another.",
            ));
        }
        let to_number: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE destination = $1 AND created_at > $2")
                .bind(&destination)
                .bind(now - 3600)
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
        if to_number >= two_step.codes_per_number_per_hour {
            return Err(Error::invalid(
                "This number has been sent several codes in the last hour. Please wait an hour, or use an authenticator app.",
            ));
        }
        if purpose == CodePurpose::Enrol {
            let enrolling: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE purpose = 'enrol' AND created_at > $1")
                    .bind(now - 3600)
                    .fetch_one(&self.db)
                    .await?
                    .try_get("n")?;
            if enrolling >= two_step.enrol_codes_per_hour {
                tracing::warn!(
                    limit = two_step.enrol_codes_per_hour,
                    "two-step: hourly cap on codes to new numbers reached"
                );
                return Err(Error::invalid(
                    "We are sending many codes right now and have paused codes to new numbers. Please try again in an hour, or use an authenticator app.",
                ));
            }
        }
        let code = new_code();
        let salt = random_bytes::<16>();
        let text = format!("Your Sealpost code is {code}. It expires in 10 minutes. Never share it.");
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE two_step_codes SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user.id.0)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO two_step_codes (user_id, purpose, phone, salt, code_hash, created_at, expires_at, destination)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id.0)
        .bind(purpose.as_str())
        .bind(&phone)
        .bind(salt.to_vec())
        .bind(code_hash(&salt, &code))
        .bind(now)
        .bind(now + CODE_TTL)
        .bind(&destination)
        .execute(&mut *tx)
        .await?;
        self.queue_sms(&mut tx, user.id, &phone, channel, &text).await?;
        tx.commit().await?;
        self.signal_sms();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "two_step.code_sent",
            object: channel.as_str(),
            client,
        })
        .await
    }

    /// Checks a phone code. Returns the number it was sent to. Wrong, expired,
    /// used and exhausted codes all fail alike ([`Error::AuthFailed`]).
    pub async fn verify_code(&self, user: &User, purpose: CodePurpose, code: &str, client: &str) -> Result<String> {
        let code = normalize_code(code);
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT id, phone, salt, code_hash, attempts FROM two_step_codes
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user.id.0)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let mut outcome = Err(Error::AuthFailed);
        if let Some(row) = row {
            let id: i64 = row.try_get("id")?;
            let salt: Vec<u8> = row.try_get("salt")?;
            let stored: Vec<u8> = row.try_get("code_hash")?;
            let attempts: i64 = row.try_get::<i64, _>("attempts")? + 1;
            let matches = code.len() == 6 && attempts <= CODE_ATTEMPTS && code_hash(&salt, &code) == stored;
            let spent = matches || attempts >= CODE_ATTEMPTS;
            sqlx::query("UPDATE two_step_codes SET attempts = $1, used_at = $2 WHERE id = $3")
                .bind(attempts)
                .bind(spent.then_some(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if matches {
                outcome = Ok(row.try_get::<String, _>("phone")?);
            }
        }
        tx.commit().await?;
        self.two_step_outcome(user, "phone", outcome.is_ok(), client).await?;
        outcome
    }

    /// Audits a second-step attempt; failures count against the client address.
    async fn two_step_outcome(&self, user: &User, method: &str, ok: bool, client: &str) -> Result<()> {
        if !ok {
            self.throttle
                .failed(client, self.now(), self.policy.client_failure_window);
        }
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: if ok { "two_step.success" } else { "two_step.failure" },
            object: method,
            client,
        })
        .await
    }

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

    /// Checks a second step by the user's method: a phone code for `purpose`, or
    /// an authenticator code.
    pub async fn verify_second_step(
        &self,
        user: &User,
        method: Method,
        purpose: CodePurpose,
        code: &str,
        client: &str,
    ) -> Result<()> {
        match method {
            Method::Totp => self.verify_totp(user, code, client).await,
            Method::Phone => self.verify_code(user, purpose, code, client).await.map(|_| ()),
        }
    }

    /// Confirms a phone with an enrolment code: the number the code went to
    /// becomes the registered phone and phone codes the user's method.
    pub async fn confirm_phone(&self, user: &User, code: &str, client: &str) -> Result<()> {
        let phone = self.verify_code(user, CodePurpose::Enrol, code, client).await?;
        sqlx::query("UPDATE users SET phone = $1, two_step_method = 'phone' WHERE id = $2")
            .bind(phone)
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        self.two_step_enrolled(user, Method::Phone, client).await
    }

    async fn two_step_enrolled(&self, user: &User, method: Method, client: &str) -> Result<()> {
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "two_step.enrolled",
            object: method.as_str(),
            client,
        })
        .await
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
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.chars().all(|d| d.is_ascii_digit()))
        );
        assert!(codes.len() > 40, "random codes rarely repeat");
        let salt = [1u8; 16];
        assert_ne!(code_hash(&salt, "123456"), code_hash(&[2u8; 16], "123456"));
        assert_eq!(normalize_code(" 123 456 "), "123456");
    }

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
    fn phones_and_hints() {
        assert!(valid_phone("+1 (555) 123-4567"));
        assert!(!valid_phone("12345"));
        assert!(!valid_phone("555 123 4567; rm"));
        assert_eq!(phone_hint("+1 555 123 4567"), "67");
        assert_eq!(percent_label("a b@x.org"), "a%20b@x.org");
    }
}
