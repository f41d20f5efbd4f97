//! Best-method delivery's decision: for each notification job, whether the
//! recipient gets the secure message itself (a *direct copy*, sent over
//! verified TLS by [`crate::deliver`]) or a notification with a link to the
//! portal. A direct copy is chosen only when all hold:
//!
//! - `outbound.mode = "mx"` and the recipient's domain is one of
//!   `outbound.direct_domains` (partners, named by the admin);
//! - the sending practice's User Manager turned direct delivery on;
//! - the recipients' copy is at most `outbound.direct_max_size` (it is
//!   DKIM-signed whole before it leaves);
//! - no direct copy was queued for this recipient and message before (a
//!   fallback is a notification, never a second try).
//!
//! This is a first choice only: whether the connection is verified is decided
//! when the copy is sent, on the connection itself, and a copy that cannot go
//! over verified TLS falls back to a notification (`deliver/direct.rs`).

use std::collections::HashSet;

use store::Store;
use store::direct::DirectChoice;
use store::direct_copy::DirectCopy;
use store::jobs::MailJob;

/// What the admin configured for direct delivery.
#[derive(Debug, Clone)]
pub struct DirectPolicy {
    /// Partner domains (lower case) whose recipients may get the message itself.
    domains: HashSet<String>,
    /// The largest recipients' copy sent directly, in bytes.
    pub max_size: u64,
    /// Seconds a direct copy is retried after a temporary failure that is
    /// not about TLS (a greylisting partner) before it falls back.
    pub retry_for: i64,
}

impl DirectPolicy {
    pub fn new(domains: impl IntoIterator<Item = String>, max_size: u64, retry_for: i64) -> Self {
        Self {
            domains: domains
                .into_iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            max_size,
            retry_for,
        }
    }

    /// Whether `address`'s domain is a partner.
    pub fn is_partner(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, domain)| self.domains.contains(&domain.to_ascii_lowercase()))
    }

    /// The path for a job, from what the store says about it.
    #[must_use]
    pub fn path(&self, choice: DirectChoice) -> Path {
        if !choice.allowed || choice.tried {
            // The practice did not ask for it, or this notification is the
            // fallback of a direct copy (already in the audit log).
            Path::Notification { record: None }
        } else if self.is_partner(&choice.recipient) && u64::try_from(choice.size).unwrap_or(u64::MAX) <= self.max_size
        {
            Path::Direct(choice)
        } else {
            Path::Notification {
                record: Some(choice.copy),
            }
        }
    }
}

/// The way a notification job goes.
#[derive(Debug)]
pub enum Path {
    /// The message itself, over verified TLS (or a notification if that fails).
    Direct(DirectChoice),
    /// A notification; `record`: the practice allows direct delivery, so the
    /// audit log says this recipient got a notification (`delivery.notification`).
    Notification { record: Option<DirectCopy> },
}

/// The path for one job: a notification unless direct delivery is configured,
/// allowed by the practice and the recipient's domain is a partner's.
///
/// # Errors
/// When the store is out of reach.
pub async fn choose(store: &Store, policy: Option<&DirectPolicy>, job: &MailJob) -> Result<Path, store::Error> {
    let Some(policy) = policy else {
        return Ok(Path::Notification { record: None });
    };
    Ok(match store.queue().direct_choice(job).await? {
        Some(choice) => policy.path(choice),
        None => Path::Notification { record: None },
    })
}

#[cfg(test)]
mod tests {
    use store::direct::DirectChoice;
    use store::direct_copy::DirectCopy;
    use store::ids::{MessageId, UserId};

    use super::{DirectPolicy, Path};

    fn choice(recipient: &str, allowed: bool, tried: bool, size: i64) -> DirectChoice {
        DirectChoice {
            copy: DirectCopy {
                message: MessageId::generate(),
                recipient: UserId(7),
            },
            allowed,
            recipient: recipient.to_owned(),
            sender: "ada@smiles.example".to_owned(),
            size,
            tried,
        }
    }

    #[test]
    fn only_an_allowed_partner_recipient_of_a_small_enough_message_goes_direct() {
        let policy = DirectPolicy::new(["Partner.Example.".to_owned()], 1000, 900);
        let direct = |c| matches!(policy.path(c), Path::Direct(_));
        let recorded = |c| matches!(policy.path(c), Path::Notification { record: Some(_) });
        assert!(direct(choice("dr@PARTNER.example", true, false, 1000)));
        // The practice did not turn it on: a notification, nothing to record.
        assert!(matches!(
            policy.path(choice("dr@partner.example", false, false, 10)),
            Path::Notification { record: None }
        ));
        // A fallback is a notification, never a second copy.
        assert!(matches!(
            policy.path(choice("dr@partner.example", true, true, 10)),
            Path::Notification { record: None }
        ));
        // Not a partner, a look-alike, or too large: a notification, recorded.
        assert!(recorded(choice("pat@example.org", true, false, 10)));
        assert!(recorded(choice("dr@evilpartner.example", true, false, 10)));
        assert!(recorded(choice("dr@partner.example.evil", true, false, 10)));
        assert!(recorded(choice("dr@partner.example", true, false, 1001)));
    }
}
