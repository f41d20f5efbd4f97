//! `[accounts]`: what accounts say about people: the country phone numbers
//! written without their country code belong to.

use serde::Deserialize;
use store::accounts::phone_number::PhoneCountry;

/// `[accounts]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// Two-letter country code (ISO 3166) of numbers typed without `+`, e.g. `US`.
    pub default_phone_country: String,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            default_phone_country: "US".into(),
        }
    }
}

impl Accounts {
    /// The country, once [`Self::check`] passed (else the United States).
    pub fn phone_country(&self) -> PhoneCountry {
        PhoneCountry::parse(&self.default_phone_country).unwrap_or_default()
    }

    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if PhoneCountry::parse(&self.default_phone_country).is_none() {
            problems.push(format!(
                "accounts.default_phone_country must be a two-letter country code such as US or GB, not {:?}",
                self.default_phone_country
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_default_phone_country_is_a_country_code() {
        let load = |value: &str| {
            Config::load(
                None,
                [("SEALPOST_ACCOUNTS_DEFAULT_PHONE_COUNTRY".to_owned(), value.to_owned())],
            )
        };
        assert_eq!(Config::load(None, []).unwrap().accounts.phone_country().code(), "US");
        assert_eq!(load("gb").unwrap().accounts.phone_country().code(), "GB");
        for bad in ["", "USA", "Narnia", "ZZ"] {
            let problems = load(bad).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains("accounts.default_phone_country")),
                "{bad}: {problems:?}"
            );
        }
    }
}
