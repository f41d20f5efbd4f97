//! `[billing]`: the plans' prices and currency, and who takes payments — the
//! `dev` provider (test cards, no network; the default) or Stripe (Checkout
//! Sessions for the card, signed webhooks for renewals and failures).

use std::fmt;

use serde::{Deserialize, Deserializer};
use store::billing::{BillingSettings, Prices, ProviderSettings, StripeSettings};

use super::choice::{self, Choice};

/// `billing.provider`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BillingProvider {
    /// Test cards, no network (see docs/billing.md).
    #[default]
    Dev,
    /// Stripe's HTTP API.
    Stripe,
}

impl Choice for BillingProvider {
    const SECTION: &'static str = "billing";
    const KEY: &'static str = "provider";
    const WORDS: &'static [(&'static str, Self)] = &[("dev", Self::Dev), ("stripe", Self::Stripe)];
}

impl<'de> Deserialize<'de> for BillingProvider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        choice::deserialize(deserializer)
    }
}

impl fmt::Display for BillingProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// `[billing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Billing {
    /// `dev` (test cards, no network) or `stripe`.
    pub provider: BillingProvider,
    /// ISO 4217 code of every price, e.g. `usd`.
    pub currency: String,
    /// Prices as decimal amounts, e.g. `"10.00"` or `10.00`.
    #[serde(deserialize_with = "amount")]
    pub securemail_monthly: String,
    #[serde(deserialize_with = "amount")]
    pub securemail_annual: String,
    #[serde(deserialize_with = "amount")]
    pub outlook_monthly: String,
    #[serde(deserialize_with = "amount")]
    pub outlook_annual: String,
    /// Stripe's API; a test server's URL in tests.
    pub stripe_api_url: String,
    /// `sk_live_…` / `sk_test_…`.
    pub stripe_secret_key: String,
    /// The webhook endpoint's signing secret, `whsec_…`.
    pub stripe_webhook_secret: String,
    /// How old a webhook's signed time may be.
    pub webhook_tolerance_seconds: i64,
}

impl Default for Billing {
    fn default() -> Self {
        Self {
            provider: BillingProvider::Dev,
            currency: "usd".into(),
            securemail_monthly: "10.00".into(),
            securemail_annual: "100.00".into(),
            outlook_monthly: "5.00".into(),
            outlook_annual: "50.00".into(),
            stripe_api_url: "https://api.stripe.com".into(),
            stripe_secret_key: String::new(),
            stripe_webhook_secret: String::new(),
            webhook_tolerance_seconds: 300,
        }
    }
}

/// A price as written: a string (`"10.00"`) or a TOML number (`10.00`, `10`);
/// checked by [`cents`] with the section's other problems.
fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Whole(i64),
        Decimal(f64),
    }
    Ok(match Written::deserialize(deserializer)? {
        Written::Text(text) => text,
        Written::Whole(n) => n.to_string(),
        Written::Decimal(x) => x.to_string(),
    })
}

/// `"10.00"` → 1000 cents; at most two decimals, not negative, not absurd.
fn cents(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || fraction.len() > 2 || (!fraction.is_empty() && !digits(fraction)) || whole.len() > 7 {
        return Err(format!("{text:?} is not an amount like \"10.00\""));
    }
    let whole: i64 = whole.parse().map_err(|_| format!("{text:?} is not an amount"))?;
    let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    Ok(whole * 100 + fraction)
}

impl Billing {
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        for (key, value) in self.price_keys() {
            match cents(value) {
                Ok(0) => problems.push(format!("billing.{key} must be more than 0")),
                Ok(_) => {}
                Err(e) => problems.push(format!("billing.{key}: {e}")),
            }
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_alphabetic()) {
            problems.push(format!(
                "billing.currency {:?} must be an ISO 4217 code like \"usd\"",
                self.currency
            ));
        }
        if !(1..=3600).contains(&self.webhook_tolerance_seconds) {
            problems.push("billing.webhook_tolerance_seconds must be between 1 and 3600".into());
        }
        if self.provider == BillingProvider::Stripe {
            if !(self.stripe_api_url.starts_with("https://") || self.stripe_api_url.starts_with("http://")) {
                problems.push(format!(
                    "billing.stripe_api_url {:?} must start with https://",
                    self.stripe_api_url
                ));
            }
            if self.stripe_secret_key.is_empty() {
                problems.push("billing.stripe_secret_key is needed with billing.provider = \"stripe\"".into());
            }
            if self.stripe_webhook_secret.is_empty() {
                problems.push("billing.stripe_webhook_secret is needed with billing.provider = \"stripe\"".into());
            }
        }
    }

    fn price_keys(&self) -> [(&'static str, &String); 4] {
        [
            ("securemail_monthly", &self.securemail_monthly),
            ("securemail_annual", &self.securemail_annual),
            ("outlook_monthly", &self.outlook_monthly),
            ("outlook_annual", &self.outlook_annual),
        ]
    }

    /// The settings the store and portal use (call after [`check`](Self::check)).
    pub fn settings(&self) -> BillingSettings {
        let price = |text: &str| cents(text).unwrap_or(0);
        BillingSettings {
            prices: Prices {
                currency: self.currency.to_ascii_lowercase(),
                securemail_monthly: price(&self.securemail_monthly),
                securemail_annual: price(&self.securemail_annual),
                outlook_monthly: price(&self.outlook_monthly),
                outlook_annual: price(&self.outlook_annual),
            },
            provider: match self.provider {
                BillingProvider::Dev => ProviderSettings::Dev,
                BillingProvider::Stripe => ProviderSettings::Stripe(StripeSettings {
                    api_url: self.stripe_api_url.trim_end_matches('/').to_owned(),
                    secret_key: store::Sealed::new(self.stripe_secret_key.clone()),
                    webhook_secret: store::Sealed::new(self.stripe_webhook_secret.clone()),
                    tolerance: self.webhook_tolerance_seconds,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use store::billing::ProviderSettings;

    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn prices_and_the_provider_come_from_the_section_and_are_checked() {
        let settings = load(&[]).unwrap().billing.settings();
        assert_eq!(settings.prices.securemail_monthly, 1_000);
        assert!(matches!(settings.provider, ProviderSettings::Dev));
        let settings = load(&[
            ("SEALPOST_BILLING_SECUREMAIL_MONTHLY", "12.5"),
            ("SEALPOST_BILLING_CURRENCY", "EUR"),
            ("SEALPOST_BILLING_PROVIDER", "stripe"),
            ("SEALPOST_BILLING_STRIPE_SECRET_KEY", "sk_test_x"),
            ("SEALPOST_BILLING_STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ])
        .unwrap()
        .billing
        .settings();
        assert_eq!(settings.prices.securemail_monthly, 1_250);
        assert_eq!(settings.prices.currency, "eur");
        assert!(matches!(settings.provider, ProviderSettings::Stripe(_)));
        let problems = load(&[
            ("SEALPOST_BILLING_SECUREMAIL_ANNUAL", "-5"),
            ("SEALPOST_BILLING_OUTLOOK_MONTHLY", "1.234"),
            ("SEALPOST_BILLING_OUTLOOK_ANNUAL", "0"),
            ("SEALPOST_BILLING_CURRENCY", "dollars"),
            ("SEALPOST_BILLING_PROVIDER", "stripe"),
        ])
        .unwrap_err()
        .join("\n");
        for key in [
            "securemail_annual",
            "outlook_monthly",
            "outlook_annual must be more than 0",
            "billing.currency",
            "stripe_secret_key is needed",
            "stripe_webhook_secret is needed",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
        let problems = load(&[("SEALPOST_BILLING_PROVIDER", "paypal")]).unwrap_err().join("\n");
        assert!(problems.contains("paypal"), "{problems}");
    }
}
