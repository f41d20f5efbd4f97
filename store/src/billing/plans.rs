//! Plans: starting one on payment (the buyer themself, or their practice's
//! User Manager for one of its users), renewing, a failed renewal, cancelling
//! (a SecureMail plan takes the same user's Outlook plan with it), and ending
//! the plans whose paid period is over, which makes their users free again.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::invoices::add_invoice;
use super::{Period, Plan, PlanStatus, Product};
use crate::accounts::{Role, User};
use crate::audit::AuditEvent;
use crate::ids::UserId;
use crate::rooms::Billing;
use crate::{Error, Result};

/// Plans still running (paid, cancelled to period end, or past due).
const LIVE: &str = "status IN ('active', 'cancelled', 'past_due')";

/// How long past its period end a Stripe plan waits for its renewal's webhook.
const RENEWAL_GRACE: i64 = 3 * 86_400;

/// A plan with the name and address of the person it is for, for lists.
#[derive(Debug, Clone)]
pub struct PlanLine {
    pub plan: Plan,
    pub user_email: String,
    pub user_name: String,
}

const PLAN_COLUMNS: &str =
    "id, user_id, payer_id, product, period, amount_cents, currency, status, provider, provider_ref, period_end";

fn plan_from_row(row: &AnyRow) -> Result<Plan> {
    Ok(Plan {
        id: row.try_get("id")?,
        user_id: UserId(row.try_get("user_id")?),
        payer_id: UserId(row.try_get("payer_id")?),
        product: Product::parse(&row.try_get::<String, _>("product")?).ok_or(Error::Corrupt("plan product"))?,
        period: Period::parse(&row.try_get::<String, _>("period")?).ok_or(Error::Corrupt("plan period"))?,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get("currency")?,
        status: PlanStatus::parse(&row.try_get::<String, _>("status")?),
        provider: row.try_get("provider")?,
        provider_ref: row.try_get("provider_ref")?,
        period_end: row.try_get("period_end")?,
    })
}

impl Billing<'_> {
    /// May `payer` buy `product` for user `for_user`? The user, if so. A person
    /// buys for themself, a User Manager for anyone of their practice; only a
    /// doctor or staff member of a practice can use a plan; nobody holds two
    /// running plans of one product; the Outlook add-in needs SecureMail.
    pub async fn check_purchase(&self, payer: &User, for_user: UserId, product: Product) -> Result<User> {
        let user = self.accounts().user(for_user).await?;
        let manages = payer.user_manager && payer.practice_id.is_some() && payer.practice_id == user.practice_id;
        if payer.id != user.id && !manages {
            return Err(Error::NotFound);
        }
        if user.practice_id.is_none() || !matches!(user.role, Role::Doctor | Role::Staff) {
            return Err(Error::Invalid(
                "Plans are for the doctors and staff of a practice; this account can already reply to what it receives."
                    .into(),
            ));
        }
        if self.live_plan(for_user, product).await?.is_some() {
            return Err(Error::Conflict(format!(
                "{} already has a running {} plan.",
                if payer.id == user.id {
                    "You"
                } else {
                    user.display_name()
                },
                product.label()
            )));
        }
        if product == Product::Outlook && self.live_plan(for_user, Product::SecureMail).await?.is_none() && !user.paid {
            return Err(Error::Invalid(
                "The Outlook add-in needs a SecureMail plan first.".into(),
            ));
        }
        Ok(user)
    }

    /// The running plan of one product for a user, if any.
    pub async fn live_plan(&self, user: UserId, product: Product) -> Result<Option<Plan>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM billing_plans WHERE user_id = $1 AND product = $2 AND {LIVE} ORDER BY id DESC LIMIT 1"
        )))
        .bind(user.0)
        .bind(product.as_str())
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(plan_from_row).transpose()
    }

    /// Starts a plan that was just paid for: its first invoice, and for
    /// SecureMail the user is paid from now on. `provider_ref` is the
    /// provider's subscription (empty for the dev provider).
    pub async fn start_plan(
        &self,
        payer: &User,
        for_user: UserId,
        product: Product,
        period: Period,
        provider_ref: &str,
    ) -> Result<Plan> {
        self.check_purchase(payer, for_user, product).await?;
        let prices = &self.policy.billing.prices;
        let amount = prices.of(product, period);
        let now = self.now();
        let period_end = now + period.seconds();
        let _guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO billing_plans (user_id, payer_id, product, period, amount_cents, currency, status, provider, provider_ref, period_end, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10) RETURNING id",
        )
        .bind(for_user.0)
        .bind(payer.id.0)
        .bind(product.as_str())
        .bind(period.as_str())
        .bind(amount)
        .bind(&prices.currency)
        .bind(self.policy.billing.provider.name())
        .bind(provider_ref)
        .bind(period_end)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let plan = Plan {
            id,
            user_id: for_user,
            payer_id: payer.id,
            product,
            period,
            amount_cents: amount,
            currency: prices.currency.clone(),
            status: PlanStatus::Active,
            provider: self.policy.billing.provider.name().into(),
            provider_ref: provider_ref.into(),
            period_end,
        };
        add_invoice(&mut tx, &plan, now, period_end, now).await?;
        if product == Product::SecureMail {
            sqlx::query("UPDATE users SET paid = 1 WHERE id = $1")
                .bind(for_user.0)
                .execute(&mut *tx)
                .await?;
        }
        let (actor, object) = (format!("user:{}", payer.id.0), format!("plan:{id}"));
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: &actor,
                action: "billing.plan.start",
                object: &object,
                client: "",
            },
        )
        .await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// The plans `payer` pays for that still run, newest first, with who each is for.
    pub async fn plans_paid_by(&self, payer: UserId) -> Result<Vec<PlanLine>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT p.id, p.user_id, p.payer_id, p.product, p.period, p.amount_cents, p.currency, p.status,
                    p.provider, p.provider_ref, p.period_end, u.email, u.full_name
             FROM billing_plans p JOIN users u ON u.id = p.user_id
             WHERE p.payer_id = $1 AND p.{LIVE} ORDER BY p.id DESC"
        )))
        .bind(payer.0)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PlanLine {
                    plan: plan_from_row(row)?,
                    user_email: row.try_get("email")?,
                    user_name: row.try_get("full_name")?,
                })
            })
            .collect()
    }

    /// A plan by id.
    pub async fn plan(&self, id: i64) -> Result<Plan> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM billing_plans WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        plan_from_row(&row)
    }

    /// Cancels a plan its payer pays for: it runs to the end of its paid
    /// period. Cancelling SecureMail also cancels the same user's Outlook
    /// plan. Returns every plan cancelled (the provider is told of each).
    /// Someone else's plan, or one already over, is not found.
    pub async fn cancel(&self, payer: &User, plan_id: i64) -> Result<Vec<Plan>> {
        let plan = self.plan(plan_id).await?;
        if plan.payer_id != payer.id || !matches!(plan.status, PlanStatus::Active | PlanStatus::PastDue) {
            return Err(Error::NotFound);
        }
        let mut cancelled = vec![plan.clone()];
        if plan.product == Product::SecureMail
            && let Some(outlook) = self.live_plan(plan.user_id, Product::Outlook).await?
            && outlook.status != PlanStatus::Cancelled
        {
            cancelled.push(outlook);
        }
        let now = self.now();
        let _guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let actor = format!("user:{}", payer.id.0);
        for plan in &mut cancelled {
            sqlx::query("UPDATE billing_plans SET status = 'cancelled', cancelled_at = $1 WHERE id = $2")
                .bind(now)
                .bind(plan.id)
                .execute(&mut *tx)
                .await?;
            plan.status = PlanStatus::Cancelled;
            let object = format!("plan:{}", plan.id);
            self.audit_in(
                &mut tx,
                AuditEvent {
                    actor: &actor,
                    action: "billing.plan.cancel",
                    object: &object,
                    client: "",
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(cancelled)
    }

    /// The running plan a provider's subscription pays for.
    pub async fn plan_by_ref(&self, provider_ref: &str) -> Result<Plan> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM billing_plans WHERE provider = $1 AND provider_ref = $2 AND provider_ref <> '' AND {LIVE}"
        )))
        .bind(self.policy.billing.provider.name())
        .bind(provider_ref)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        plan_from_row(&row)
    }

    /// A renewal was paid: the plan runs to `period_end` and gets an invoice
    /// (a past-due plan is active again; a cancelled one stays cancelled).
    pub async fn renew(&self, plan: &Plan, amount_cents: i64, period_end: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE billing_plans SET period_end = $1, status = CASE WHEN status = 'past_due' THEN 'active' ELSE status END WHERE id = $2",
        )
        .bind(period_end)
        .bind(plan.id)
        .execute(&mut *tx)
        .await?;
        let paid = Plan {
            amount_cents,
            ..plan.clone()
        };
        add_invoice(&mut tx, &paid, plan.period_end, period_end, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A renewal payment failed: the plan runs to the end of what was paid, then ends.
    pub async fn renewal_failed(&self, plan: &Plan) -> Result<()> {
        sqlx::query("UPDATE billing_plans SET status = 'past_due' WHERE id = $1 AND status = 'active'")
            .bind(plan.id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Ends a plan now (the provider ended its subscription).
    pub async fn end_now(&self, plan: &Plan) -> Result<()> {
        let now = self.now();
        sqlx::query(
            "UPDATE billing_plans SET status = CASE WHEN status = 'active' THEN 'cancelled' ELSE status END,
                    period_end = CASE WHEN period_end > $1 THEN $1 ELSE period_end END
             WHERE id = $2",
        )
        .bind(now)
        .bind(plan.id)
        .execute(&self.db)
        .await?;
        self.end_lapsed().await.map(|_| ())
    }

    /// The worker step: renews the dev provider's active plans whose period is
    /// over (its test card always pays), ends every other plan whose paid
    /// period is over (a Stripe plan still active gets a few days for its
    /// renewal's webhook), and makes a user whose SecureMail ended free again
    /// (their Outlook plan ends with it). Returns how many plans ended.
    pub async fn end_lapsed(&self) -> Result<usize> {
        let now = self.now();
        let due = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM billing_plans WHERE {LIVE} AND period_end <= $1"
        )))
        .bind(now)
        .fetch_all(&self.db)
        .await?;
        let mut ended = Vec::new();
        for row in &due {
            let plan = plan_from_row(row)?;
            match (plan.status, plan.provider.as_str()) {
                (PlanStatus::Active, "dev") => {
                    let mut end = plan.period_end;
                    while end <= now {
                        end += plan.period.seconds();
                    }
                    self.renew(&plan, plan.amount_cents, end).await?;
                }
                (PlanStatus::Active, _) if plan.period_end + RENEWAL_GRACE > now => {}
                _ => ended.push(plan),
            }
        }
        let _guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let mut count = 0;
        for plan in &ended {
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE billing_plans SET status = 'ended', ended_at = $1 WHERE id = $2 AND {LIVE}"
            )))
            .bind(now)
            .bind(plan.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                continue;
            }
            count += 1;
            let object = format!("plan:{}", plan.id);
            self.audit_in(
                &mut tx,
                AuditEvent {
                    actor: "system",
                    action: "billing.plan.end",
                    object: &object,
                    client: "",
                },
            )
            .await?;
            if plan.product != Product::SecureMail {
                continue;
            }
            let still_paid = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT 1 FROM billing_plans WHERE user_id = $1 AND product = 'securemail' AND {LIVE}"
            )))
            .bind(plan.user_id.0)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !still_paid {
                sqlx::query("UPDATE users SET paid = 0 WHERE id = $1")
                    .bind(plan.user_id.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE billing_plans SET status = 'ended', ended_at = $1 WHERE user_id = $2 AND product = 'outlook' AND {LIVE}"
                )))
                .bind(now)
                .bind(plan.user_id.0)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(count)
    }

    /// When a free user's last SecureMail plan ended, if they had one: the
    /// explanation a lapsed account gets.
    pub async fn lapsed_at(&self, user: &User) -> Result<Option<i64>> {
        if user.paid {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT MAX(ended_at) AS ended FROM billing_plans WHERE user_id = $1 AND product = 'securemail' AND status = 'ended'",
        )
        .bind(user.id.0)
        .fetch_one(&self.db)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("ended")?)
    }
}
