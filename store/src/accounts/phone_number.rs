//! Phone numbers as people type them and as we keep them: parsed and checked
//! with the `phonenumber` crate (libphonenumber's metadata), stored in E.164
//! (`+12015550123`), shown in their country's national format (numbers of
//! another country than the installation's default: international format).
//! A number written without `+` belongs to `accounts.default_phone_country`.

use std::str::FromStr as _;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber, Type};

/// The country a number written without its country code belongs to (a
/// two-letter ISO 3166 code, `accounts.default_phone_country`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneCountry(Id);

impl Default for PhoneCountry {
    fn default() -> Self {
        Self(Id::US)
    }
}

impl PhoneCountry {
    /// `US`, `gb`, … (case does not matter); `None` for anything else.
    pub fn parse(code: &str) -> Option<Self> {
        let code = code.trim().to_ascii_uppercase();
        if code.len() != 2 {
            return None;
        }
        Id::from_str(&code).ok().map(Self)
    }

    /// The two-letter code, e.g. `US`.
    pub fn code(self) -> String {
        self.0.as_ref().to_owned()
    }
}

/// Why a typed number was refused: said next to its field.
pub const NOT_A_PHONE: &str = "This is not a phone number we can use. Please enter it as you would dial it, or with its country code, like +1 201 555 0123.";
const PREMIUM: &str = "Premium-rate numbers can't be used. Please enter your own phone number.";
const EXTENSION: &str = "Please leave out the extension: enter a number that reaches you directly.";

/// The E.164 form of a number as typed (`(201) 555-0123` → `+12015550123`), or
/// the sentence to show next to the field. Empty input is the caller's call.
pub fn to_e164(input: &str, country: PhoneCountry) -> Result<String, &'static str> {
    let input = input.trim();
    if input.is_empty() || input.chars().count() > 40 || input.chars().any(char::is_control) {
        return Err(NOT_A_PHONE);
    }
    // Letters are not digits here: "555-CALL-NOW" and "call me" are refused
    // (only an extension's "ext" or "x" is read, to say it can't be used).
    let letters: String = input
        .chars()
        .filter(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    if !letters.is_empty() && letters != "ext" && letters != "x" {
        return Err(NOT_A_PHONE);
    }
    let number = phonenumber::parse(Some(country.0), input).map_err(|_| NOT_A_PHONE)?;
    if !number.is_valid() {
        return Err(NOT_A_PHONE);
    }
    if number.extension().is_some() {
        return Err(EXTENSION);
    }
    if number
        .metadata(&phonenumber::metadata::DATABASE)
        .is_some_and(|_| number.number_type(&phonenumber::metadata::DATABASE) == Type::PremiumRate)
    {
        return Err(PREMIUM);
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// An optional number: empty stays empty, else [`to_e164`].
pub fn optional_e164(input: &str, country: PhoneCountry) -> Result<String, &'static str> {
    if input.trim().is_empty() {
        Ok(String::new())
    } else {
        to_e164(input, country)
    }
}

/// How to show a stored number: national format in the default country,
/// international elsewhere. What isn't E.164 (stored before numbers were
/// checked) is shown as it was typed.
pub fn display(stored: &str, country: PhoneCountry) -> String {
    let Some(number) = parse_stored(stored) else {
        return stored.to_owned();
    };
    let mode = if number.country().id() == Some(country.0) {
        Mode::National
    } else {
        Mode::International
    };
    number.format().mode(mode).to_string()
}

fn parse_stored(stored: &str) -> Option<PhoneNumber> {
    if !stored.starts_with('+') {
        return None;
    }
    phonenumber::parse(None, stored).ok().filter(PhoneNumber::is_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneCountry {
        PhoneCountry::default()
    }

    #[test]
    fn numbers_as_typed_become_e164() {
        for typed in [
            "(201) 555-0123",
            "201.555.0123",
            "+1 201 555 0123",
            "1-201-555-0123",
            " 2015550123 ",
        ] {
            assert_eq!(to_e164(typed, us()).as_deref(), Ok("+12015550123"), "{typed}");
        }
        assert_eq!(to_e164("+44 20 7946 0000", us()).as_deref(), Ok("+442079460000"));
        let gb = PhoneCountry::parse("gb").unwrap();
        assert_eq!(to_e164("020 7946 0000", gb).as_deref(), Ok("+442079460000"));
        assert_eq!(to_e164("07911 123456", gb).as_deref(), Ok("+447911123456"));
        assert_eq!(to_e164("+63 917 123 4567", us()).as_deref(), Ok("+639171234567"));
    }

    #[test]
    fn what_cant_be_a_phone_is_refused() {
        for bad in [
            "12345",
            "555",
            "call me",
            "555-CALL-NOW",
            "+1 555 123",
            "(000) 000-0000",
            "+999 1234 5678",
            "201 555 0123; rm -rf /",
            "201555\n0123",
            &"1".repeat(41),
            "",
        ] {
            assert!(to_e164(bad, us()).is_err(), "{bad:?}");
        }
        assert_eq!(to_e164("+1 900 555 0100", us()), Err(PREMIUM), "premium rate");
        assert_eq!(to_e164("201 555 0123 ext. 12", us()), Err(EXTENSION));
        assert_eq!(optional_e164("  ", us()).as_deref(), Ok(""));
        assert!(optional_e164("12", us()).is_err());
    }

    #[test]
    fn numbers_show_in_national_format_at_home() {
        assert_eq!(display("+12015550123", us()), "(201) 555-0123");
        assert_eq!(display("+442079460000", us()), "+44 20 7946 0000");
        let gb = PhoneCountry::parse("GB").unwrap();
        assert_eq!(display("+442079460000", gb), "020 7946 0000");
        assert_eq!(display("555 123 4567", us()), "555 123 4567", "an old unchecked value");
        assert_eq!(display("", us()), "");
    }

    #[test]
    fn countries_are_two_letter_codes() {
        assert_eq!(PhoneCountry::parse("us"), Some(PhoneCountry::default()));
        assert_eq!(
            PhoneCountry::parse(" DE ").map(PhoneCountry::code).as_deref(),
            Some("DE")
        );
        for bad in ["", "USA", "XX", "1", "zz"] {
            assert_eq!(PhoneCountry::parse(bad), None, "{bad}");
        }
    }
}
