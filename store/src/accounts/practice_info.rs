//! What a practice tells its users about itself (name, website, phone,
//! address): shown on every member's profile, changed only by the practice's
//! User Manager (its administrator in the portal). The phone is E.164.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::User;
use super::phone_number::optional_e164;
use crate::audit::AuditEvent;
use crate::ids::PracticeId;
use crate::{Accounts, Error, Result};

/// The practice's own details beside its name and domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PracticeInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The practice form as typed.
#[derive(Debug, Clone, Default)]
pub struct PracticeChange {
    pub name: String,
    pub website: String,
    pub phone: String,
    pub address: String,
}

impl Accounts<'_> {
    /// A practice's details (empty ones when it gave none).
    pub async fn practice_info(&self, id: PracticeId) -> Result<PracticeInfo> {
        let row = sqlx::query("SELECT details FROM practices WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let details: String = row.try_get("details")?;
        Ok(serde_json::from_str(&details).unwrap_or_default())
    }

    /// The User Manager changes their practice's name and details. Anyone
    /// else: [`Error::Forbidden`]. A problem: [`Error::Invalid`], saying which.
    pub async fn set_practice_info(&self, manager: &User, change: &PracticeChange, client: &str) -> Result<()> {
        let practice = match manager.practice_id {
            Some(id) if manager.user_manager => id,
            _ => {
                return Err(Error::Forbidden(
                    "only the practice's User Manager changes its information",
                ));
            }
        };
        let name = change.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::invalid("Please enter the practice's name."));
        }
        let website = change.website.trim();
        if website.chars().count() > 200
            || website.chars().any(|c| c.is_whitespace() || c.is_control())
            || (!website.is_empty() && !website.contains('.'))
        {
            return Err(Error::invalid(
                "Please enter a web address like www.example.com, or leave it empty.",
            ));
        }
        let phone = optional_e164(&change.phone, self.policy.default_phone_country).map_err(Error::invalid)?;
        let address = change.address.trim();
        if address.chars().count() > 500 {
            return Err(Error::invalid("Please enter a shorter address."));
        }
        let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let info = PracticeInfo {
            website: some(website),
            phone: some(&phone),
            address: some(address),
        };
        sqlx::query("UPDATE practices SET name = $1, details = $2 WHERE id = $3")
            .bind(name)
            .bind(serde_json::to_string(&info).unwrap_or_else(|_| "{}".into()))
            .bind(practice.0)
            .execute(&self.db)
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", manager.id),
            action: "practice.update",
            object: &format!("practice:{practice}"),
            client,
        })
        .await
    }
}
