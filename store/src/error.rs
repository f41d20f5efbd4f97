//! The store's error type: what happened, never with PHI in the message. The
//! words a person sees are the edges' (portal pages, SMTP and IMAP replies):
//! each maps these kinds to its own text.

/// Errors from the secure store. Messages are safe to log: they never carry PHI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob store: {0}")]
    Blob(#[from] object_store::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A sealed blob failed authentication: damaged, truncated or a wrong key.
    #[error("sealed data failed authentication (damaged, truncated or wrong key)")]
    Crypto,
    /// The key-encryption key that wrapped a data key is not in the keyring.
    #[error("key-encryption key {0} is not in the keyring")]
    UnknownKek(String),
    /// Absent: no such object, or one the caller may not see (to a stranger the
    /// two look the same: DESIGN.md, "a stranger learns nothing").
    #[error("not found")]
    NotFound,
    /// The caller is known, but a rule refuses them this operation (not a User
    /// Manager; a sender who may no longer send secure mail). Names the rule.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Stored data breaks the store's own rules (an unknown state or kind, a
    /// missing or malformed id): damage or a bug, not the caller's doing, and
    /// retrying will not mend it. Names what is wrong, never content.
    #[error("corrupt data: {0}")]
    Corrupt(&'static str),
    /// Input the caller can correct; the text says what is wrong with it.
    #[error("{0}")]
    Invalid(String),
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// A link token that was never issued (or for another purpose).
    #[error("link token unknown")]
    TokenInvalid,
    #[error("link token expired")]
    TokenExpired,
    #[error("link token already used")]
    TokenUsed,
    /// The address and password (or second step) did not match.
    #[error("credentials rejected")]
    AuthFailed,
    /// Too many failed sign-ins: sign-in for the address is paused (a password
    /// reset lifts it at once).
    #[error("sign-in locked after repeated failures")]
    Locked,
    /// The password is older than the policy allows; the token (a set-password
    /// token valid for 15 minutes) lets the person choose a new one.
    #[error("password expired")]
    PasswordExpired(crate::Sealed<String>),
    /// Too many failed sign-ins from this client recently.
    #[error("client throttled after repeated failed sign-ins")]
    Throttled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for an [`Error::Invalid`] with a message for the person.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// Will trying the same thing again fail the same way, whatever the
    /// database or blob store do meanwhile? A worker sets such work aside
    /// (logged) instead of retrying it for ever.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Corrupt(_) | Self::Forbidden(_))
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn kinds_say_what_happened_and_which_are_permanent() {
        assert_eq!(
            Error::Corrupt("message state").to_string(),
            "corrupt data: message state"
        );
        assert_eq!(
            Error::Forbidden("not a User Manager").to_string(),
            "forbidden: not a User Manager"
        );
        assert!(Error::Corrupt("x").is_permanent());
        assert!(Error::Forbidden("x").is_permanent());
        assert!(!Error::NotFound.is_permanent());
        assert!(!Error::Io(std::io::Error::other("disk")).is_permanent());
        // No text written for a person: the edges own those words.
        for error in [Error::Locked, Error::Throttled, Error::TokenExpired, Error::AuthFailed] {
            let text = error.to_string();
            assert!(!text.contains("please") && !text.contains("try again"), "{text}");
        }
    }
}
