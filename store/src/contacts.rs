//! A practice's known contacts, as the Outlook add-in asks for them: which of the
//! recipients on a message the practice already knows, and how they relate to it.
//! The answer mirrors how sealing resolves a recipient (`messages.rs`): a colleague
//! in the practice first, then the practice's contacts table.

use sqlx::Row;

use crate::accounts::{Relationship, Role, User, normalize_email};
use crate::{Error, Mail, Result};

/// The most addresses one question may hold.
pub const MAX_ADDRESSES: usize = 100;

/// One known contact of a practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownContact {
    /// The address, lower-cased.
    pub address: String,
    pub relationship: Relationship,
}

impl Mail<'_> {
    /// Which of `addresses` are known contacts of `user`'s practice, with their
    /// relationship. Others are simply absent, so the answer never tells whether an
    /// address has an account. A user outside any practice has no contacts.
    pub async fn known_contacts(&self, user: &User, addresses: &[String]) -> Result<Vec<KnownContact>> {
        if addresses.len() > MAX_ADDRESSES {
            return Err(Error::invalid(format!(
                "Ask about at most {MAX_ADDRESSES} addresses at a time."
            )));
        }
        let mut wanted = Vec::with_capacity(addresses.len());
        for address in addresses {
            let address = normalize_email(address)
                .map_err(|_| Error::invalid("One of the addresses is not a valid email address."))?;
            if !wanted.contains(&address) {
                wanted.push(address);
            }
        }
        let Some(practice) = user.practice_id else {
            return Ok(Vec::new());
        };
        let mut known = Vec::new();
        for address in wanted {
            let row = sqlx::query(
                "SELECT u.role, u.practice_id, c.relationship FROM users u
                 LEFT JOIN contacts c ON c.user_id = u.id AND c.practice_id = $1
                 WHERE u.email = $2",
            )
            .bind(practice.0)
            .bind(&address)
            .fetch_optional(&self.db)
            .await?;
            let Some(row) = row else { continue };
            let colleague = if row.try_get::<Option<i64>, _>("practice_id")? == Some(practice.0) {
                match Role::parse(&row.try_get::<String, _>("role")?) {
                    Some(Role::Doctor) => Some(Relationship::DoctorInPractice),
                    Some(Role::Staff) => Some(Relationship::StaffInPractice),
                    _ => None,
                }
            } else {
                None
            };
            let contact = row
                .try_get::<Option<String>, _>("relationship")?
                .as_deref()
                .and_then(Relationship::parse);
            if let Some(relationship) = colleague.or(contact) {
                known.push(KnownContact { address, relationship });
            }
        }
        Ok(known)
    }
}
