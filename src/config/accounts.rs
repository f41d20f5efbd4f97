//! `[two_step]` and `[passwords]`: how people sign in.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::choice::{self, Choice};

/// `two_step.sms_provider`: how codes reach phones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmsProvider {
    /// Each text or call is written to `<data_dir>/outbox-sms/` (the default).
    #[default]
    Dev,
    /// Posted to a Twilio-style HTTP API (`two_step.sms_url`).
    Http,
}

impl Choice for SmsProvider {
    const SECTION: &'static str = "two_step";
    const KEY: &'static str = "sms_provider";
    const WORDS: &'static [(&'static str, Self)] = &[("dev", Self::Dev), ("http", Self::Http)];
}

impl<'de> Deserialize<'de> for SmsProvider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        choice::deserialize(deserializer)
    }
}

impl fmt::Display for SmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

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
    pub sms_provider: SmsProvider,
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
            sms_provider: SmsProvider::default(),
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

    /// The section's problems: sane limits, digit prefixes, and a complete
    /// `http` provider.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
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
        match self.sms_provider {
            SmsProvider::Dev => {}
            SmsProvider::Http => {
                if !(self.sms_url.starts_with("https://") || self.sms_url.starts_with("http://")) {
                    problems.push(format!("two_step.sms_url {:?} must be an http(s):// URL", self.sms_url));
                }
                if self.sms_from.trim().is_empty() {
                    problems.push("two_step.sms_from must be set for the http SMS provider".into());
                }
            }
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

    /// A minimum length people can meet and machines can store; no negative counts.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if !(8..=256).contains(&self.min_length) {
            problems.push("passwords.min_length must be between 8 and 256".into());
        }
        if self.history < 0 || self.max_age_days < 0 {
            problems.push("passwords.history and passwords.max_age_days must not be negative".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn sms_providers_load_by_their_words() {
        assert_eq!(load(&[]).unwrap().two_step.sms_provider, SmsProvider::Dev);
        let http = load(&[
            ("SEALPOST_TWO_STEP_SMS_PROVIDER", "http"),
            ("SEALPOST_TWO_STEP_SMS_URL", "https://sms.example.net/send"),
            ("SEALPOST_TWO_STEP_SMS_FROM", "+15550100"),
        ])
        .unwrap();
        assert_eq!(http.two_step.sms_provider, SmsProvider::Http);
        assert_eq!(http.two_step.sms_provider.to_string(), "http");
    }

    #[test]
    fn an_unknown_sms_provider_names_the_key_the_value_and_the_words() {
        let problems = load(&[("SEALPOST_TWO_STEP_SMS_PROVIDER", "twilio")]).unwrap_err();
        assert_eq!(problems, ["two_step.sms_provider \"twilio\" must be dev or http"]);
    }

    #[test]
    fn password_rules_are_checked() {
        let problems = load(&[
            ("SEALPOST_PASSWORDS_MIN_LENGTH", "4"),
            ("SEALPOST_PASSWORDS_HISTORY", "-1"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("passwords.min_length"));
        assert!(problems[1].contains("passwords.history"));
    }
}
