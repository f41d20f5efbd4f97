//! The store's error type: what went wrong, never with PHI in the message.

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
    /// The object does not exist, or the caller may not see it.
    #[error("not found")]
    NotFound,
    /// Input the caller can correct; the text is meant for the person.
    #[error("{0}")]
    Invalid(String),
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    #[error("this link is not valid")]
    TokenInvalid,
    #[error("this link has expired")]
    TokenExpired,
    #[error("this link has already been used")]
    TokenUsed,
    #[error("wrong email address or password")]
    AuthFailed,
    /// Too many failed sign-ins: the account stays locked until a password reset.
    #[error("this account is locked after too many failed sign-ins; reset the password to unlock it")]
    Locked,
    /// The password is older than the policy allows; the token (a set-password
    /// token valid for 15 minutes) lets the person choose a new one.
    #[error("your password has expired; please choose a new one")]
    PasswordExpired(crate::Sealed<String>),
    /// Too many failed sign-ins from this client recently.
    #[error("too many failed sign-ins from this address; try again in a few minutes")]
    Throttled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for an [`Error::Invalid`] with a message for the person.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}
