//! Id newtypes, so an id of one kind can't be passed where another is meant.

use std::fmt;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// A practice (one medical or dental office).
    PracticeId
);
int_id!(
    /// A person with an account: practice staff or an outside recipient.
    UserId
);

/// A sealed message: 128 random bits, lower-case hex, safe to put in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MessageId(String);

impl MessageId {
    pub fn generate() -> Self {
        Self(crate::crypto::random_hex(16))
    }

    /// Accepts only the exact shape we generate, so a URL segment can't smuggle
    /// anything into a blob path or a query.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_parse_accepts_only_generated_shape() {
        let id = MessageId::generate();
        assert_eq!(MessageId::parse(id.as_str()), Some(id));
        assert!(MessageId::parse("../../etc/passwd").is_none());
        assert!(MessageId::parse("ABCDEF0123456789ABCDEF0123456789").is_none());
        assert!(MessageId::parse("abc").is_none());
    }
}
