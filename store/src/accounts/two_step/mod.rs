//! Two-step verification: one-time codes sent to the registered phone by text
//! message or voice call (`phone_codes.rs`), and authenticator apps (TOTP, RFC 6238:
//! `totp.rs`). This file holds the policy, the kinds, a user's settings and the
//! one check the sign-in asks for ([`crate::Auth::verify_second_step`]).

mod phone_codes;
mod totp;

use sqlx::Row;

use super::User;
use crate::audit::AuditEvent;
use crate::ids::UserId;
use crate::{Auth, Error, Result};

pub use crate::accounts::phones::{phone_hint, valid_phone};

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

fn normalize_code(code: &str) -> String {
    code.chars().filter(char::is_ascii_digit).collect()
}

impl Auth<'_> {
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
