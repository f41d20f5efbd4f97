//! Plans and billing: what a person may buy (SecureMail, the Outlook add-in;
//! monthly or annual, at the configured prices), the plans bought and who pays
//! for them, invoices numbered in one sequence per installation, and the
//! provider's events (kept by id, so a replayed webhook changes nothing).
//!
//! Plan state drives `User::paid`: a SecureMail plan that starts sets it, and
//! [`Billing::end_lapsed`] clears it when the user's last SecureMail plan has
//! run out, so `User::may_send_secure` stays the one rule for who may send.

mod events;
mod invoices;
mod plans;
pub mod signature;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use invoices::Invoice;
pub use plans::PlanLine;

use crate::Sealed;

/// What can be bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Product {
    /// Sending secure mail (the paid account).
    SecureMail,
    /// The Outlook add-in, on top of SecureMail.
    Outlook,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecureMail => "securemail",
            Self::Outlook => "outlook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::SecureMail, Self::Outlook]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    /// The name people see.
    pub fn label(self) -> &'static str {
        match self {
            Self::SecureMail => "SecureMail",
            Self::Outlook => "Outlook add-in",
        }
    }
}

/// How often a plan is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Period {
    Monthly,
    Annual,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Annual => "annual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Monthly, Self::Annual].into_iter().find(|p| p.as_str() == text)
    }

    /// The length of one paid period, in seconds (30 or 365 days).
    pub fn seconds(self) -> i64 {
        match self {
            Self::Monthly => 30 * 86_400,
            Self::Annual => 365 * 86_400,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Monthly => "Monthly",
            Self::Annual => "Annual",
        }
    }
}

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlanStatus {
    /// Paid and renewing.
    Active,
    /// Cancelled: runs to the end of its paid period, then ends.
    Cancelled,
    /// A renewal payment failed: runs to the end of its paid period unless a
    /// later payment succeeds.
    PastDue,
    /// Over: the user is free again (unless another plan pays).
    Ended,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cancelled => "cancelled",
            Self::PastDue => "past_due",
            Self::Ended => "ended",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "active" => Self::Active,
            "cancelled" => Self::Cancelled,
            "past_due" => Self::PastDue,
            _ => Self::Ended,
        }
    }
}

/// Prices in the smallest unit of the currency (cents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    /// ISO 4217 code, lower case (`usd`), as Stripe writes it.
    pub currency: String,
    pub securemail_monthly: i64,
    pub securemail_annual: i64,
    pub outlook_monthly: i64,
    pub outlook_annual: i64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            currency: "usd".into(),
            securemail_monthly: 1_000,
            securemail_annual: 10_000,
            outlook_monthly: 500,
            outlook_annual: 5_000,
        }
    }
}

impl Prices {
    /// The price of one period of a product.
    pub fn of(&self, product: Product, period: Period) -> i64 {
        match (product, period) {
            (Product::SecureMail, Period::Monthly) => self.securemail_monthly,
            (Product::SecureMail, Period::Annual) => self.securemail_annual,
            (Product::Outlook, Period::Monthly) => self.outlook_monthly,
            (Product::Outlook, Period::Annual) => self.outlook_annual,
        }
    }
}

/// An amount with its currency, written for people: `$10.00 USD`.
pub fn money(cents: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let sign = match code.as_str() {
        "USD" | "CAD" | "AUD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        _ => "",
    };
    format!("{sign}{}.{:02} {code}", cents / 100, cents % 100)
}

/// The Stripe account the Stripe provider uses.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// Stripe's API, `https://api.stripe.com` (a test server's URL in tests).
    pub api_url: String,
    pub secret_key: Sealed<String>,
    /// The endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Sealed<String>,
    /// How old a webhook's signed timestamp may be, in seconds.
    pub tolerance: i64,
}

/// Who takes payments.
#[derive(Debug, Clone, Default)]
pub enum ProviderSettings {
    /// Test cards, no network: for development and the walk-through.
    #[default]
    Dev,
    Stripe(StripeSettings),
}

impl ProviderSettings {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Stripe(_) => "stripe",
        }
    }
}

/// The `[billing]` settings the store and the portal use.
#[derive(Debug, Clone, Default)]
pub struct BillingSettings {
    pub prices: Prices,
    pub provider: ProviderSettings,
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: i64,
    /// Who the plan is for.
    pub user_id: crate::ids::UserId,
    /// Who pays for it.
    pub payer_id: crate::ids::UserId,
    pub product: Product,
    pub period: Period,
    pub amount_cents: i64,
    pub currency: String,
    pub status: PlanStatus,
    pub provider: String,
    /// The provider's subscription id (empty for the dev provider).
    pub provider_ref: String,
    /// When the paid period ends (Unix seconds).
    pub period_end: i64,
}
