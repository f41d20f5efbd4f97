//! `[two_step]` and `[passwords]`: how people sign in.

use serde::Deserialize;

/// `[two_step]`: two-step verification and how codes reach phones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoStep {
    /// Ask every user for a second step (a code by phone or an authenticator app).
    pub required: bool,
    /// Let User Managers turn two-step verification off for one of their users.
    pub allow_disable: bool,
    /// Days "remember this device" skips the second step on that browser.
    pub remember_days: i64,
    /// `dev` (write codes to `<data_dir>/outbox-sms/`) or `http` (a Twilio-style API).
    pub sms_provider: String,
    /// `http` provider: the URL form fields `To`, `From`, `Body` are posted to, e.g.
    /// `https://api.twilio.com/2010-04-01/Accounts/<SID>/Messages.json`.
    pub sms_url: String,
    /// `http` provider: the sending number or sender id.
    pub sms_from: String,
    /// `http` provider: the Basic-auth user (Twilio: the account SID).
    pub sms_username: String,
    /// `http` provider: the Basic-auth password (Twilio: the auth token).
    pub sms_password: String,
    /// Codes any one phone number may be sent per hour, whoever asks (toll fraud).
    pub codes_per_number_per_hour: i64,
    /// Codes to numbers being set up (not yet proven) per hour, all users together.
    pub enrol_codes_per_hour: i64,
    /// International prefixes (digits after `+`, e.g. `"882"`) never texted or
    /// called, on top of the built-in premium-rate ones (1-900, 1-976, UK 09).
    pub denied_prefixes: Vec<String>,
}

impl Default for TwoStep {
    fn default() -> Self {
        let policy = store::accounts::two_step::TwoStepPolicy::default();
        Self {
            required: policy.required,
            allow_disable: policy.allow_disable,
            remember_days: policy.remember_days,
            sms_provider: "dev".into(),
            sms_url: String::new(),
            sms_from: String::new(),
            sms_username: String::new(),
            sms_password: String::new(),
            codes_per_number_per_hour: policy.codes_per_number_per_hour,
            enrol_codes_per_hour: policy.enrol_codes_per_hour,
            denied_prefixes: policy.denied_prefixes,
        }
    }
}

impl TwoStep {
    pub fn policy(&self) -> store::accounts::two_step::TwoStepPolicy {
        store::accounts::two_step::TwoStepPolicy {
            required: self.required,
            allow_disable: self.allow_disable,
            remember_days: self.remember_days,
            codes_per_number_per_hour: self.codes_per_number_per_hour,
            enrol_codes_per_hour: self.enrol_codes_per_hour,
            denied_prefixes: self.denied_prefixes.clone(),
        }
    }

    pub(super) fn problems(&self, problems: &mut Vec<String>) {
        if !(1..=365).contains(&self.remember_days) {
            problems.push("two_step.remember_days must be between 1 and 365".into());
        }
        if self.codes_per_number_per_hour < 1 || self.enrol_codes_per_hour < 1 {
            problems
                .push("two_step.codes_per_number_per_hour and two_step.enrol_codes_per_hour must be at least 1".into());
        }
        for prefix in &self.denied_prefixes {
            if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_digit()) {
                problems.push(format!(
                    "two_step.denied_prefixes: {prefix:?} must be the digits of an international prefix, like \"882\""
                ));
            }
        }
        match self.sms_provider.as_str() {
            "dev" => {}
            "http" => {
                if !(self.sms_url.starts_with("https://") || self.sms_url.starts_with("http://")) {
                    problems.push(format!("two_step.sms_url {:?} must be an http(s):// URL", self.sms_url));
                }
                if self.sms_from.trim().is_empty() {
                    problems.push("two_step.sms_from must be set for the http SMS provider".into());
                }
            }
            other => problems.push(format!("two_step.sms_provider {other:?} must be dev or http")),
        }
    }
}

/// `[passwords]`: the password policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    pub min_length: usize,
    /// Require a lower-case and an upper-case letter, a digit and a symbol.
    pub require_mixed: bool,
    /// A new password may not repeat any of this many most recent ones (0: off).
    pub history: i64,
    /// Sign-in asks for a new password after this many days (0: never).
    pub max_age_days: i64,
    /// Refuse the 10,000 most common breached passwords (list shipped in the binary).
    pub reject_common: bool,
}

impl Default for Passwords {
    fn default() -> Self {
        let rules = store::accounts::passwords::PasswordRules::default();
        Self {
            min_length: rules.min_length,
            require_mixed: rules.require_mixed,
            history: rules.history,
            max_age_days: rules.max_age_days,
            reject_common: rules.reject_common,
        }
    }
}

impl Passwords {
    pub fn rules(&self) -> store::accounts::passwords::PasswordRules {
        store::accounts::passwords::PasswordRules {
            min_length: self.min_length,
            require_mixed: self.require_mixed,
            history: self.history,
            max_age_days: self.max_age_days,
            reject_common: self.reject_common,
        }
    }
}
