//! Where a reply to a notification email goes (its `Reply-To`, RFC 5322
//! §3.6.2). A reply by email is never secure, so the notification says so and
//! links to the secure reply; the address only decides who gets the replies
//! people send anyway: a practice's front desk, or a no-reply address.

use std::collections::BTreeMap;

/// `outbound.notification_reply_to` and `outbound.practice_reply_to`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTo {
    /// For every practice without its own; `None`: no `Reply-To`, so replies
    /// go to the `From` address.
    pub default: Option<String>,
    /// By practice domain (lower case): a practice's own address.
    pub by_practice: BTreeMap<String, String>,
}

impl ReplyTo {
    /// The `Reply-To` of a notification from the practice at `domain`.
    #[must_use]
    pub fn for_practice(&self, domain: &str) -> Option<&str> {
        self.by_practice
            .get(&domain.to_ascii_lowercase())
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_practice_s_own_address_wins_over_the_default() {
        let reply_to = ReplyTo {
            default: Some("no-reply@example-dental.com".to_owned()),
            by_practice: [("smiles.example".to_owned(), "frontdesk@smiles.example".to_owned())].into(),
        };
        assert_eq!(
            reply_to.for_practice("Smiles.Example"),
            Some("frontdesk@smiles.example")
        );
        assert_eq!(
            reply_to.for_practice("other.example"),
            Some("no-reply@example-dental.com")
        );
        assert_eq!(ReplyTo::default().for_practice("smiles.example"), None);
    }
}
