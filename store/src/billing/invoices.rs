//! Invoices: one per payment, numbered in one sequence for the installation,
//! seen by the person who paid.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Period, Plan, Product};
use crate::accounts::User;
use crate::ids::UserId;
use crate::job_kind::{JobKind, add_job};
use crate::rooms::Billing;
use crate::{Error, Result};

/// How often "Email me my invoices" may send (seconds).
const EMAIL_EVERY: i64 = 300;

/// One payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: i64,
    /// Sequential per installation.
    pub number: i64,
    pub plan_id: i64,
    pub payer_id: UserId,
    pub user_id: UserId,
    /// Who the plan is for (their address).
    pub user_email: String,
    pub product: Product,
    pub period: Period,
    pub amount_cents: i64,
    pub currency: String,
    pub period_start: i64,
    pub period_end: i64,
    pub paid_at: i64,
}

impl Invoice {
    /// The number as printed: `INV-000042`.
    pub fn label(&self) -> String {
        format!("INV-{:06}", self.number)
    }
}

/// Adds the invoice for one payment of `plan` in `tx`, with the next number.
pub(super) async fn add_invoice(
    tx: &mut crate::write_tx::WriteTx,
    plan: &Plan,
    period_start: i64,
    period_end: i64,
    paid_at: i64,
) -> Result<i64> {
    let number: i64 = sqlx::query("SELECT COALESCE(MAX(number), 0) + 1 AS next FROM billing_invoices")
        .fetch_one(&mut **tx)
        .await?
        .try_get("next")?;
    sqlx::query(
        "INSERT INTO billing_invoices (number, plan_id, payer_id, user_id, product, period, amount_cents, currency, period_start, period_end, paid_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(number)
    .bind(plan.id)
    .bind(plan.payer_id.0)
    .bind(plan.user_id.0)
    .bind(plan.product.as_str())
    .bind(plan.period.as_str())
    .bind(plan.amount_cents)
    .bind(&plan.currency)
    .bind(period_start)
    .bind(period_end)
    .bind(paid_at)
    .execute(&mut **tx)
    .await?;
    Ok(number)
}

const INVOICE_SELECT: &str = "SELECT i.id, i.number, i.plan_id, i.payer_id, i.user_id, u.email, i.product, i.period,
        i.amount_cents, i.currency, i.period_start, i.period_end, i.paid_at
 FROM billing_invoices i JOIN users u ON u.id = i.user_id";

fn invoice_from_row(row: &AnyRow) -> Result<Invoice> {
    Ok(Invoice {
        id: row.try_get("id")?,
        number: row.try_get("number")?,
        plan_id: row.try_get("plan_id")?,
        payer_id: UserId(row.try_get("payer_id")?),
        user_id: UserId(row.try_get("user_id")?),
        user_email: row.try_get("email")?,
        product: Product::parse(&row.try_get::<String, _>("product")?).ok_or(Error::Corrupt("invoice product"))?,
        period: Period::parse(&row.try_get::<String, _>("period")?).ok_or(Error::Corrupt("invoice period"))?,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get("currency")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        paid_at: row.try_get("paid_at")?,
    })
}

impl Billing<'_> {
    /// Every payment `payer` made (for themself and for others), newest first.
    pub async fn invoices_paid_by(&self, payer: UserId) -> Result<Vec<Invoice>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOICE_SELECT} WHERE i.payer_id = $1 ORDER BY i.number DESC"
        )))
        .bind(payer.0)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    /// One invoice by its number, for the person who paid it; anyone else's
    /// is not found.
    pub async fn invoice(&self, payer: UserId, number: i64) -> Result<Invoice> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOICE_SELECT} WHERE i.number = $1 AND i.payer_id = $2"
        )))
        .bind(number)
        .bind(payer.0)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        invoice_from_row(&row)
    }

    /// "Email me my invoices": queues the mail with the invoices `user` paid,
    /// to their own address. Once every five minutes; more is refused.
    pub async fn email_invoices(&self, user: &User) -> Result<()> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let recent = sqlx::query("SELECT 1 FROM mail_jobs WHERE kind = $1 AND user_id = $2 AND created_at > $3")
            .bind(JobKind::Invoices.as_str())
            .bind(user.id.0)
            .bind(now - EMAIL_EVERY)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if recent {
            return Err(Error::Conflict(
                "Your invoices were sent a few minutes ago; please check your mail before asking again.".into(),
            ));
        }
        add_job(&mut tx, JobKind::Invoices, user.id, None, now).await?;
        tx.commit().await?;
        self.signal_jobs();
        Ok(())
    }
}
