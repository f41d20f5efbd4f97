//! What a mail job asks for, and adding one inside the caller's transaction: a
//! leaf, so accounts, messages and the queue (`jobs.rs`) can all add mail jobs
//! without importing one another.

use crate::Result;
use crate::ids::{MessageId, UserId};

/// What a mail job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Tell a recipient a secure message waits (an invitation if they have no account).
    Notify,
    /// Send a registered recipient the link to set their password.
    SetPassword,
    /// Ask a sender to choose the relationship of new recipients.
    ChooseRoles,
    /// Send a person the list of their invoices ("Email me my invoices").
    Invoices,
    /// Send the address an email change would move to its confirmation link.
    ConfirmEmail,
    /// Tell the current address that a change of address was asked for.
    EmailChangeNotice,
}

impl JobKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::SetPassword => "set_password",
            Self::ChooseRoles => "choose_roles",
            Self::Invoices => "invoices",
            Self::ConfirmEmail => "confirm_email",
            Self::EmailChangeNotice => "email_change_notice",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            Self::Notify,
            Self::SetPassword,
            Self::ChooseRoles,
            Self::Invoices,
            Self::ConfirmEmail,
            Self::EmailChangeNotice,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// Is this mail about one message (so its job must name it)?
    pub(crate) fn needs_message(self) -> bool {
        matches!(self, Self::Notify | Self::ChooseRoles)
    }
}

/// Adds a mail job in `tx`; the notifier picks it up once `tx` commits.
pub(crate) async fn add_job(
    tx: &mut crate::write_tx::WriteTx,
    kind: JobKind,
    user: UserId,
    message: Option<&MessageId>,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO mail_jobs (kind, user_id, message_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(kind.as_str())
        .bind(user.0)
        .bind(message.map(MessageId::as_str))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds several mail jobs in `tx` with one statement per 200 (a sealed
/// message's notifications): `(kind, user)`, all about `message`.
pub(crate) async fn add_jobs(
    tx: &mut crate::write_tx::WriteTx,
    jobs: &[(JobKind, UserId)],
    message: Option<&MessageId>,
    now: i64,
) -> Result<()> {
    for chunk in jobs.chunks(200) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${}, ${})", i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4))
            .collect();
        let sql = format!(
            "INSERT INTO mail_jobs (kind, user_id, message_id, created_at) VALUES {}",
            rows.join(", ")
        );
        // Only numbered placeholders are formatted in; the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (kind, user) in chunk {
            query = query
                .bind(kind.as_str())
                .bind(user.0)
                .bind(message.map(MessageId::as_str))
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
