//! A practice's choice to let its secure messages go to partner domains as
//! the message itself over verified TLS instead of a notification
//! (best-method delivery; `direct.rs` queues the copies). Off until the
//! practice's User Manager turns it on; each change is in the audit log.

use sqlx::Row;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::PracticeId;
use crate::{Accounts, Error, Result};

impl Accounts<'_> {
    /// Whether practice `practice` lets its messages go directly to partners.
    pub async fn practice_direct_delivery(&self, practice: PracticeId) -> Result<bool> {
        let row = sqlx::query("SELECT direct_delivery FROM practices WHERE id = $1")
            .bind(practice.0)
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(row.try_get::<i64, _>("direct_delivery")? != 0)
    }

    /// A User Manager turns direct delivery on or off for their practice.
    /// Audited as `practice.direct_delivery` with `on` or `off`.
    pub async fn set_practice_direct_delivery(&self, user: &User, on: bool, client: &str) -> Result<()> {
        let practice = match user.practice_id {
            Some(practice) if user.user_manager => practice,
            _ => {
                return Err(Error::Forbidden(
                    "only a practice's User Manager sets how its messages are delivered",
                ));
            }
        };
        let guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE practices SET direct_delivery = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(practice.0)
            .execute(&mut *tx)
            .await?;
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: &format!("user:{}", user.id),
                action: "practice.direct_delivery",
                object: &format!("practice:{}/{}", practice.0, if on { "on" } else { "off" }),
                client,
            },
        )
        .await?;
        tx.commit().await?;
        drop(guard);
        Ok(())
    }
}
