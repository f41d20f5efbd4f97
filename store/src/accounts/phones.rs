//! Phone numbers: their shape (`valid_phone`, `phone_hint`), and as toll fraud
//! sees them: a number's international digits (for the per-number cap) and
//! whether it is premium-rate (never texted or called).

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

/// Premium-rate numbers, never texted or called: North American 1-900 and
/// 1-976, United Kingdom 09.
pub const PREMIUM_PREFIXES: [&str; 3] = ["1900", "1976", "449"];

/// A number's digits in international form (`+44 20…` → `4420…`), as far as its
/// shape tells: `+`, `00` or `011` lead an international number, and a 10-digit
/// national number (or 11 digits starting with 1) is North American. Other
/// national numbers (a leading 0): `None`.
pub fn international_digits(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if phone.trim_start().starts_with('+') {
        Some(digits)
    } else if let Some(rest) = digits.strip_prefix("011").or_else(|| digits.strip_prefix("00")) {
        Some(rest.to_owned())
    } else if digits.len() == 10 && !digits.starts_with(['0', '1']) {
        Some(format!("1{digits}"))
    } else if digits.len() == 11 && digits.starts_with('1') {
        Some(digits)
    } else {
        None
    }
}

/// Is `phone` a premium-rate number (built in, or a denied prefix)? A national
/// number written with a leading `09` (UK premium rate) counts too.
pub fn premium_rate(phone: &str, denied: &[String]) -> bool {
    match international_digits(phone) {
        Some(number) => PREMIUM_PREFIXES
            .iter()
            .copied()
            .chain(denied.iter().map(String::as_str))
            .any(|prefix| !prefix.is_empty() && number.starts_with(prefix)),
        None => phone
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .starts_with("09"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premium_rate_numbers_are_refused_in_any_spelling() {
        let none: Vec<String> = Vec::new();
        for premium in [
            "+1 900 555 0100",
            "1-900-555-0100",
            "(976) 555-0100",
            "011 1 976 555 0100",
            "+44 909 879 0000",
            "0044 909 879 0000",
            "09098790000",
        ] {
            assert!(premium_rate(premium, &none), "{premium}");
        }
        for fine in [
            "+1 555 123 4567",
            "(212) 555-0100",
            "+44 20 7946 0000",
            "020 7946 0000",
            "+63 917 123 4567",
        ] {
            assert!(!premium_rate(fine, &none), "{fine}");
        }
        assert!(
            premium_rate("+882 1234 5678", &["882".to_owned()]),
            "a configured prefix"
        );
        assert_eq!(international_digits("(212) 555-0100").as_deref(), Some("12125550100"));
        assert_eq!(international_digits("020 7946 0000"), None);
    }

    #[test]
    fn phones_and_hints() {
        assert!(valid_phone("+1 (555) 123-4567"));
        assert!(!valid_phone("12345"));
        assert!(!valid_phone("555 123 4567; rm"));
        assert_eq!(phone_hint("+1 555 123 4567"), "67");
    }
}
