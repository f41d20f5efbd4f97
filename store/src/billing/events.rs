//! Payments that finish elsewhere: a checkout started here and completed at
//! the provider, and the provider's events, each handled once however often
//! it is delivered.

use sqlx::Row;

use super::Plan;
use super::{Period, Product};
use crate::ids::UserId;
use crate::rooms::Billing;
use crate::{Error, Result};

impl Billing<'_> {
    /// Records a purchase about to be paid at the provider; the id goes to the
    /// provider and comes back with its completion.
    pub async fn start_checkout(
        &self,
        payer: &crate::accounts::User,
        for_user: UserId,
        product: Product,
        period: Period,
    ) -> Result<String> {
        self.check_purchase(payer, for_user, product).await?;
        let id = format!("co_{}", crate::crypto::random_hex(16));
        sqlx::query(
            "INSERT INTO billing_checkouts (id, payer_id, user_id, product, period, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(payer.id.0)
        .bind(for_user.0)
        .bind(product.as_str())
        .bind(period.as_str())
        .bind(self.now())
        .execute(&self.db)
        .await?;
        Ok(id)
    }

    /// The provider says a checkout was paid: its plan starts (once; a
    /// checkout already completed, or unknown, is not found).
    pub async fn complete_checkout(&self, checkout: &str, provider_ref: &str) -> Result<Plan> {
        let row = sqlx::query(
            "SELECT payer_id, user_id, product, period FROM billing_checkouts WHERE id = $1 AND completed_at IS NULL",
        )
        .bind(checkout)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let payer = self.accounts().user(UserId(row.try_get("payer_id")?)).await?;
        let for_user = UserId(row.try_get("user_id")?);
        let product =
            Product::parse(&row.try_get::<String, _>("product")?).ok_or(Error::Corrupt("checkout product"))?;
        let period = Period::parse(&row.try_get::<String, _>("period")?).ok_or(Error::Corrupt("checkout period"))?;
        let taken =
            sqlx::query("UPDATE billing_checkouts SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL")
                .bind(self.now())
                .bind(checkout)
                .execute(&self.db)
                .await?
                .rows_affected();
        if taken == 0 {
            return Err(Error::NotFound);
        }
        self.start_plan(&payer, for_user, product, period, provider_ref).await
    }

    /// Claims a provider event by its id: `false` if it was handled already
    /// (a replay). A handler that fails gives it back with [`Self::release_event`].
    pub async fn claim_event(&self, event_id: &str) -> Result<bool> {
        let provider = self.policy.billing.provider.name();
        let seen = sqlx::query("SELECT 1 FROM billing_events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .fetch_optional(&self.db)
            .await?
            .is_some();
        if seen {
            return Ok(false);
        }
        let inserted = sqlx::query("INSERT INTO billing_events (provider, event_id, received_at) VALUES ($1, $2, $3)")
            .bind(provider)
            .bind(event_id)
            .bind(self.now())
            .execute(&self.db)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            // Two deliveries at once: the other one has it.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives back an event whose handling failed, so the provider's retry is handled.
    pub async fn release_event(&self, event_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM billing_events WHERE provider = $1 AND event_id = $2")
            .bind(self.policy.billing.provider.name())
            .bind(event_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
