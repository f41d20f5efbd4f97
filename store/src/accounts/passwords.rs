//! Password rules and hashing: argon2id hashes, a policy (length, character
//! classes, not a common breached password), and the checks for reuse.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::{Error, Result};

/// The password policy; every rule can be set in the configuration.
#[derive(Debug, Clone)]
pub struct PasswordRules {
    pub min_length: usize,
    /// At least one lower-case letter, one upper-case letter, one digit and one symbol.
    pub require_mixed: bool,
    /// A new password may not be any of this many most recent ones (0: no check).
    pub history: i64,
    /// Days after which sign-in asks for a new password (0: never).
    pub max_age_days: i64,
    /// Refuse passwords on the shipped list of common breached passwords.
    pub reject_common: bool,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_mixed: true,
            history: 6,
            max_age_days: 90,
            reject_common: true,
        }
    }
}

static COMMON: &str = include_str!("../../data/common-passwords.txt");

/// Is `password` (or it with its trailing symbols or trailing digits and symbols
/// removed, as in `Password1!`) on the list of common passwords?
pub fn is_common(password: &str) -> bool {
    static LIST: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| {
        COMMON
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    });
    let lower = password.to_lowercase();
    let no_symbols = lower.trim_end_matches(|c: char| !c.is_alphanumeric());
    let no_digits = no_symbols.trim_end_matches(|c: char| !c.is_alphabetic());
    [lower.as_str(), no_symbols, no_digits]
        .iter()
        .any(|candidate| list.contains(candidate))
}

/// Checks a new password against the rules; the error says what is missing.
pub fn check_policy(password: &str, email: &str, rules: &PasswordRules) -> Result<()> {
    let chars = password.chars().count();
    if chars < rules.min_length {
        return Err(Error::invalid(format!(
            "Your password needs at least {} characters.",
            rules.min_length
        )));
    }
    if chars > 256 {
        return Err(Error::invalid("Your password may have at most 256 characters."));
    }
    if rules.require_mixed {
        let mut missing = Vec::new();
        if !password.chars().any(char::is_lowercase) {
            missing.push("a lower-case letter");
        }
        if !password.chars().any(char::is_uppercase) {
            missing.push("an upper-case letter");
        }
        if !password.chars().any(|c| c.is_ascii_digit()) {
            missing.push("a digit");
        }
        if password.chars().all(char::is_alphanumeric) {
            missing.push("a symbol such as - ! or #");
        }
        if !missing.is_empty() {
            return Err(Error::invalid(format!(
                "Your password also needs {}.",
                join_words(&missing)
            )));
        }
    }
    let local = email.split('@').next().unwrap_or_default();
    if password.eq_ignore_ascii_case(email)
        || (local.len() >= 4 && password.to_lowercase().contains(&local.to_lowercase()))
    {
        return Err(Error::invalid("Your password must not contain your email address."));
    }
    if rules.reject_common && is_common(password) {
        return Err(Error::invalid(
            "That password is one of the most common ones and appears in breached-password lists. Please choose another.",
        ));
    }
    Ok(())
}

/// Every rule a new password must meet, in words, to list before the person
/// types (the same rules [`check_policy`] applies).
pub fn describe(rules: &PasswordRules) -> Vec<String> {
    let mut lines = vec![format!("At least {} characters.", rules.min_length)];
    if rules.require_mixed {
        lines.push("A lower-case and an upper-case letter, a digit and a symbol such as - ! or #.".to_owned());
    }
    lines.push("Not your email address, nor the part of it before the @.".to_owned());
    if rules.reject_common {
        lines.push("Not one of the most common passwords (like Password1!).".to_owned());
    }
    if rules.history > 0 {
        lines.push(format!("Not one of your last {} passwords.", rules.history));
    }
    lines
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// An argon2id hash in PHC format, with a random salt.
pub(crate) fn hash(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| Error::invalid("This password can't be used."))
}

/// Does `password` match the stored hash? Without one, a dummy hash is checked
/// so unknown accounts cost as much time as known ones.
pub(crate) fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let candidate = match stored {
        Some(hash) => hash,
        None => DUMMY.get_or_init(|| hash(&crate::crypto::random_hex(16)).unwrap_or_default()),
    };
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_says_what_is_missing() {
        let rules = PasswordRules::default();
        let message = |pw: &str| check_policy(pw, "pat@example.org", &rules).unwrap_err().to_string();
        assert!(message("Sh0rt!").contains("at least 8"));
        assert_eq!(
            message("alllowercase"),
            "Your password also needs an upper-case letter, a digit and a symbol such as - ! or #."
        );
        assert!(message("NoDigits-Here").contains("a digit"));
        let own = check_policy("Patricia-Home-1", "patricia@example.org", &rules).unwrap_err();
        assert!(own.to_string().contains("email"), "contains the address's local part");
        assert!(
            message("Password1!").contains("common"),
            "a common password with decorations"
        );
        assert!(message("Qwerty123$").contains("common"));
        check_policy("Correct-Horse-42", "pat@example.org", &rules).unwrap();
        let lenient = PasswordRules {
            require_mixed: false,
            reject_common: false,
            ..PasswordRules::default()
        };
        check_policy("correct horse battery", "pat@example.org", &lenient).unwrap();
    }

    #[test]
    fn the_rules_are_listed_as_they_are_checked() {
        let lines = describe(&PasswordRules::default());
        assert_eq!(lines[0], "At least 8 characters.");
        assert!(lines.iter().any(|l| l.contains("email address")));
        assert!(lines.iter().any(|l| l.contains("last 6 passwords")));
        let lenient = PasswordRules {
            min_length: 12,
            require_mixed: false,
            history: 0,
            reject_common: false,
            ..PasswordRules::default()
        };
        let lines = describe(&lenient);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "At least 12 characters.");
    }

    #[test]
    fn hashing_round_trips() {
        let stored = hash("Correct-Horse-42").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("Correct-Horse-42", Some(&stored)));
        assert!(!verify("Correct-Horse-43", Some(&stored)));
        assert!(!verify("anything", None));
    }
}
