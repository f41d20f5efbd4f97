//! Mail the gateway must send, and the outbound queue it sends from.
//!
//! The portal and the sealing step never send mail themselves: they add a *mail
//! job* (notify a recipient, send a set-password link, ask a sender for roles).
//! The gateway's notifier turns each job into a message, which enters the
//! *outbound queue* sealed on disk; the delivery worker sends it at least once,
//! retrying with backoff. Jobs and queue rows name people by id, never content.

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use sqlx::Row;

use crate::accounts::{Practice, TokenPurpose, User, UserStatus};
use crate::crypto::{Opener, WrappedKey};
use crate::ids::{MessageId, PracticeId, UserId};
use crate::sealed_stream::open_sealed_stream;
use crate::states::OutboundState;
use crate::{Error, Queue, Result};

pub use crate::job_kind::JobKind;

/// Seconds a claimed delivery stays with its worker (a large message to a slow
/// server may take minutes); see `claims.rs`.
pub const OUTBOUND_LEASE: i64 = 600;

/// A job of a kind about a message that names none (see [`job_from_row`]).
const NO_MESSAGE: Error = Error::Corrupt("mail job without the message id its kind needs");

/// One mail to compose.
#[derive(Debug, Clone)]
pub struct MailJob {
    pub id: i64,
    pub kind: JobKind,
    pub user_id: UserId,
    pub message_id: Option<MessageId>,
}

/// The message a mail is about (no PHI: sender, practice and the sender's note).
#[derive(Debug, Clone)]
pub struct MessageContext {
    pub id: MessageId,
    pub sender: User,
    pub practice: Practice,
    pub notice: Option<String>,
}

/// What the notifier needs to write one mail.
#[derive(Debug, Clone)]
pub struct MailContext {
    pub kind: JobKind,
    pub recipient: User,
    pub message: Option<MessageContext>,
    /// Path and query of the one link the mail carries (to be put after `public_url`).
    pub link: String,
    /// This mail invites someone who cannot sign in yet (no account, or no password).
    pub invitation: bool,
}

/// Queues one delivery of a spooled message: read from its file `blob`, or
/// from the row itself when `body` (the sealed message) is given and `blob` is
/// empty.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_outbound(
    tx: &mut crate::write_tx::WriteTx,
    blob: &str,
    body: Option<&[u8]>,
    mail_from: &str,
    rcpt: &str,
    key: &WrappedKey,
    strip_markers: bool,
    now: i64,
    node: &str,
) -> Result<()> {
    let id = crate::crypto::random_hex(16);
    insert_outbound_with(tx, &id, blob, body, mail_from, rcpt, key, strip_markers, now, node).await
}

/// [`insert_outbound`], with the sealed message in the row itself (`blob` empty)
/// when `body` is given. `node` holds the spool file `blob` (empty for a row
/// any node may send: its body is in the row).
#[allow(clippy::too_many_arguments)]
async fn insert_outbound_with(
    tx: &mut crate::write_tx::WriteTx,
    id: &str,
    blob: &str,
    body: Option<&[u8]>,
    mail_from: &str,
    rcpt: &str,
    key: &WrappedKey,
    strip_markers: bool,
    now: i64,
    node: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbound (id, blob, mail_from, rcpt_to, kek_id, wrapped_key, strip_markers, next_attempt_at, state, created_at, body, node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, $11)",
    )
    .bind(id)
    .bind(blob)
    .bind(mail_from)
    .bind(rcpt)
    .bind(&key.kek_id)
    .bind(&key.wrapped)
    .bind(i64::from(strip_markers))
    .bind(now)
    .bind(OutboundState::Queued.as_str())
    .bind(body)
    .bind(node)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A queued delivery: one recipient of one message.
#[derive(Debug, Clone)]
pub struct OutboundItem {
    pub id: String,
    pub mail_from: String,
    pub rcpt_to: String,
    pub attempts: i64,
    /// Remove `X-Sealpost-*` headers while sending (mail passing through).
    pub strip_markers: bool,
    pub created_at: i64,
    blob: String,
    key: WrappedKey,
    /// The sealed message, when it is kept in the row (`blob` is then empty).
    body: Option<Vec<u8>>,
    /// The secure message itself for one recipient over verified TLS
    /// (best-method delivery, `direct.rs`), instead of mail composed here.
    pub direct: Option<crate::direct_copy::DirectCopy>,
}

impl OutboundItem {
    /// The queue file this delivery reads.
    pub(crate) fn blob(&self) -> &str {
        &self.blob
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at` (Unix seconds).
    Retry {
        error: String,
        at: i64,
    },
    /// Permanent failure; the caller has already queued any DSN.
    Failed {
        error: String,
    },
}

pub(crate) fn outbound_from_row(row: &sqlx::any::AnyRow) -> Result<OutboundItem> {
    Ok(OutboundItem {
        id: row.try_get("id")?,
        blob: row.try_get("blob")?,
        mail_from: row.try_get("mail_from")?,
        rcpt_to: row.try_get("rcpt_to")?,
        key: WrappedKey {
            kek_id: row.try_get("kek_id")?,
            wrapped: row.try_get("wrapped_key")?,
        },
        strip_markers: row.try_get::<i64, _>("strip_markers")? != 0,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        body: row.try_get("body")?,
        // Only the delivery loop's query reads these columns.
        direct: match (
            row.try_get::<Option<String>, _>("direct_message_id").ok().flatten(),
            row.try_get::<Option<i64>, _>("direct_user_id").ok().flatten(),
        ) {
            (Some(message), Some(user)) => Some(crate::direct_copy::DirectCopy {
                message: MessageId::parse(&message).ok_or(Error::Corrupt("malformed message id of a direct copy"))?,
                recipient: UserId(user),
            }),
            _ => None,
        },
    })
}

/// A job as stored; one that breaks the rules of its kind is corrupt.
pub(crate) fn job_from_row(row: &sqlx::any::AnyRow) -> Result<MailJob> {
    let kind = JobKind::parse(&row.try_get::<String, _>("kind")?).ok_or(Error::Corrupt("unknown mail job kind"))?;
    let message_id = match row.try_get::<Option<String>, _>("message_id")? {
        Some(text) => Some(MessageId::parse(&text).ok_or(Error::Corrupt("malformed message id in a mail job"))?),
        None if kind.needs_message() => return Err(Error::Corrupt("mail job without the message id its kind needs")),
        None => None,
    };
    Ok(MailJob {
        id: row.try_get("id")?,
        kind,
        user_id: UserId(row.try_get("user_id")?),
        message_id,
    })
}

impl Queue<'_> {
    /// Jobs not yet done, oldest first. A job that can never be composed
    /// (an unknown kind, a missing or malformed message id) is set aside
    /// ([`crate::Queue::park_job`]) instead of holding up the others.
    pub async fn pending_jobs(&self, limit: i64) -> Result<Vec<MailJob>> {
        let rows = sqlx::query(
            "SELECT id, kind, user_id, message_id FROM mail_jobs WHERE done_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            match job_from_row(row) {
                Ok(job) => jobs.push(job),
                Err(error @ Error::Corrupt(_)) => self.park_job(row.try_get("id")?, &error).await?,
                Err(other) => return Err(other),
            }
        }
        Ok(jobs)
    }

    /// Sets aside a job that can never be composed: logged (job id and what is
    /// wrong, no PHI), marked done with the reason kept in `failure`, so it is
    /// neither retried for ever nor in the way of the others.
    pub async fn park_job(&self, job: i64, error: &Error) -> Result<()> {
        tracing::error!(job, %error, "mail job set aside: it cannot be composed");
        let _turn = self.write_gate().await;
        sqlx::query("UPDATE mail_jobs SET done_at = $1, failure = $2 WHERE id = $3")
            .bind(self.now())
            .bind(error.to_string())
            .bind(job)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Gathers what a job's mail says, issuing the token its link needs. A
    /// recipient or message gone meanwhile is [`Error::NotFound`] (skip the
    /// job); a job that breaks its kind's rules is [`Error::Corrupt`] (park it).
    pub async fn job_context(&self, job: &MailJob) -> Result<MailContext> {
        let mut recipient = self.accounts().user(job.user_id).await?;
        let message = match &job.message_id {
            Some(id) => Some(self.message_context(id).await?),
            None => None,
        };
        let mut invitation = false;
        let link = match job.kind {
            JobKind::SetPassword => {
                let token = self
                    .auth()
                    .issue_token(
                        TokenPurpose::SetPassword,
                        recipient.id,
                        job.message_id.as_ref(),
                        self.policy.set_password_ttl,
                    )
                    .await?;
                format!("/password/{token}")
            }
            JobKind::ChooseRoles => format!("/m/{}/roles", job.message_id.as_ref().ok_or(NO_MESSAGE)?),
            JobKind::Invoices => "/account/invoices".to_owned(),
            // Goes to the address the account would move to (none pending: skip).
            JobKind::ConfirmEmail => {
                let (to, token) = self.accounts().email_change_link(&recipient).await?;
                recipient.email = to;
                format!("/email/{token}")
            }
            JobKind::EmailChangeNotice => "/account/profile".to_owned(),
            JobKind::Notify => {
                let id = job.message_id.as_ref().ok_or(NO_MESSAGE)?;
                match recipient.status {
                    UserStatus::Invited => {
                        invitation = true;
                        // One invitation per recipient and practice, reused.
                        let token = self
                            .auth()
                            .invitation_token(recipient.id, id, self.policy.invite_ttl)
                            .await?;
                        format!("/m/{id}?invite={token}")
                    }
                    // Registered but never set a password (the link may have
                    // lapsed): this mail carries a fresh set-password link.
                    UserStatus::Registered => {
                        invitation = true;
                        let token = self
                            .auth()
                            .issue_token(
                                TokenPurpose::SetPassword,
                                recipient.id,
                                Some(id),
                                self.policy.invite_ttl,
                            )
                            .await?;
                        format!("/password/{token}")
                    }
                    // A deactivated person gets no new invitation or link.
                    UserStatus::Active | UserStatus::Deactivated => format!("/m/{id}"),
                }
            }
        };
        Ok(MailContext {
            kind: job.kind,
            recipient,
            message,
            link,
            invitation,
        })
    }

    /// The message a notification is about, its sender and practice, and the
    /// sender's note: one query (the note is sealed in the row; a message
    /// sealed before the row kept it has it read from its sealed metadata).
    async fn message_context(&self, id: &MessageId) -> Result<MessageContext> {
        let row = sqlx::query(
            "SELECT m.kek_id AS message_kek_id, m.wrapped_key AS message_wrapped_key, m.sealed_notice,
                    p.id AS practice_key, p.name AS practice_name, p.domain AS practice_domain, u.*
             FROM messages m JOIN users u ON u.id = m.sender_id JOIN practices p ON p.id = m.practice_id
             WHERE m.id = $1 AND m.state = $2",
        )
        .bind(id.as_str())
        .bind(crate::states::MessageState::Sealed.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let notice = match row.try_get::<Option<Vec<u8>>, _>("sealed_notice")? {
            Some(sealed) => {
                let key = self.keys.unwrap(&WrappedKey {
                    kek_id: row.try_get("message_kek_id")?,
                    wrapped: row.try_get("message_wrapped_key")?,
                })?;
                let json = crate::crypto::open_all(&key, crate::layout::BLOB_NOTICE, &sealed)?;
                serde_json::from_slice(&json).map_err(|_| Error::Corrupt("a message's sealed notice"))?
            }
            None => self.mail().message_meta_unchecked(id).await?.notice,
        };
        Ok(MessageContext {
            id: id.clone(),
            sender: crate::accounts::user_from_row(&row)?,
            practice: Practice {
                id: PracticeId(row.try_get("practice_key")?),
                name: row.try_get("practice_name")?,
                domain: row.try_get("practice_domain")?,
            },
            notice,
        })
    }

    /// Seals a composed mail into the outbound queue and marks its job done, in
    /// one transaction, so a job yields exactly one queued mail.
    ///
    /// The mail (a notification, a bounce: small, written by us) is sealed
    /// under its own data key into the queue row itself, so it is durable with
    /// the commit and needs no spool file (a file created, fsynced and deleted
    /// per notification was a large part of the secure path's system time).
    /// Returns the queued delivery's id.
    pub async fn queue_mail(&self, job: Option<i64>, mail_from: &str, rcpt_to: &str, message: &[u8]) -> Result<String> {
        let key = crate::crypto::DataKey::generate();
        let sealed = crate::crypto::seal_all(&key, crate::layout::BLOB_ORIGINAL, message);
        let wrapped = self.keys.wrap(&key);
        let id = crate::crypto::random_hex(16);
        let now = self.now();
        let row = std::sync::Arc::new((id.clone(), sealed, mail_from.to_owned(), rcpt_to.to_owned(), wrapped));
        // In a group commit with the other mails and messages written meanwhile
        // (`group_commit.rs`): one fsync for the batch, not one per mail.
        self.group_commit(
            std::sync::Arc::new(move |_store, tx| {
                let row = std::sync::Arc::clone(&row);
                Box::pin(async move {
                    let (id, sealed, mail_from, rcpt_to, wrapped) = &*row;
                    insert_outbound_with(
                        tx,
                        id,
                        "",
                        Some(sealed.as_slice()),
                        mail_from,
                        rcpt_to,
                        wrapped,
                        false,
                        now,
                        "",
                    )
                    .await?;
                    if let Some(job) = job {
                        sqlx::query("UPDATE mail_jobs SET done_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(job)
                            .execute(&mut **tx)
                            .await?;
                    }
                    Ok(())
                })
            }),
            None,
        )
        .await?;
        Ok(id)
    }

    /// Marks a job done without mail (its subject vanished meanwhile).
    pub async fn skip_job(&self, job: i64) -> Result<()> {
        let _turn = self.write_gate().await;
        sqlx::query("UPDATE mail_jobs SET done_at = $1 WHERE id = $2")
            .bind(self.now())
            .bind(job)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Deliveries due now, claimed for the caller: each is handed to one
    /// worker only, and is not due again until [`outbound_done`](Self::outbound_done)
    /// records how it ended or the claim lapses ([`OUTBOUND_LEASE`]:
    /// a worker that died). Several workers may call this at once, on several
    /// nodes: a delivery reading a spool file goes to the node holding it.
    pub async fn due_outbound(&self, limit: i64) -> Result<Vec<OutboundItem>> {
        let now = self.now();
        let turn = self.write_gate().await;
        let sql = format!(
            "UPDATE outbound SET claimed_until = $3, claimed_by = $4
             WHERE id IN (SELECT id FROM outbound WHERE state = $2 AND next_attempt_at <= $1 AND claimed_until <= $1
                            AND (blob = '' OR node = $4)
                          ORDER BY next_attempt_at LIMIT {})
               AND state = $2 AND claimed_until <= $1
             RETURNING id, blob, mail_from, rcpt_to, kek_id, wrapped_key, strip_markers, attempts, created_at, next_attempt_at, body,
                       direct_message_id, direct_user_id",
            crate::db::literal_limit(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(OutboundState::Queued.as_str())
            .bind(now + self.policy.delivery_lease)
            .bind(self.node.as_str())
            .fetch_all(&self.lazy_db)
            .await?;
        drop(turn);
        let mut items = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>("next_attempt_at")?, outbound_from_row(row)?)))
            .collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.created_at.cmp(&b.1.created_at)));
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    /// Deliveries in `state`, oldest first, due or not.
    pub async fn outbound_in_state(&self, state: OutboundState, limit: i64) -> Result<Vec<OutboundItem>> {
        let rows = sqlx::query(
            "SELECT id, blob, mail_from, rcpt_to, kek_id, wrapped_key, strip_markers, attempts, created_at, body FROM outbound
             WHERE state = $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(state.as_str())
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// The message to deliver, decrypted as it streams.
    pub async fn outbound_body(&self, item: &OutboundItem) -> Result<BoxStream<'static, Result<Bytes>>> {
        let key = self.keys.unwrap(&item.key)?;
        let sealed = match &item.body {
            Some(body) => futures::stream::once(std::future::ready(Ok(Bytes::from(body.clone())))).boxed(),
            None => queue_file(self.spool_entry_path(&item.blob)).await?,
        };
        Ok(open_sealed_stream(
            sealed,
            Opener::new(&key, crate::layout::BLOB_ORIGINAL),
        ))
    }

    /// Counts of queued, sent and failed deliveries (for tests and status).
    pub async fn outbound_counts(&self) -> Result<(i64, i64, i64)> {
        let count = |state: OutboundState| async move {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbound WHERE state = $1")
                .bind(state.as_str())
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
            Ok::<_, Error>(n)
        };
        Ok((
            count(OutboundState::Queued).await?,
            count(OutboundState::Sent).await?,
            count(OutboundState::Failed).await?,
        ))
    }
}

/// A queue file's sealed bytes: read whole in one blocking task when small (a
/// typical mail: one hand-off instead of one per open and read), streamed
/// otherwise.
async fn queue_file(path: std::path::PathBuf) -> Result<BoxStream<'static, Result<Bytes>>> {
    const WHOLE: u64 = 1 << 20;
    let not_found = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound
        } else {
            e.into()
        }
    };
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Result<Vec<u8>, std::fs::File>> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        if len > WHOLE {
            return Ok(Err(file));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
        file.read_to_end(&mut bytes)?;
        Ok(Ok(bytes))
    })
    .await
    .map_err(|_| std::io::Error::other("queue file task failed"))?
    .map_err(not_found)?;
    Ok(match read {
        Ok(bytes) => futures::stream::once(std::future::ready(Ok(Bytes::from(bytes)))).boxed(),
        Err(file) => crate::sealed_stream::file_chunks(tokio::fs::File::from_std(file)),
    })
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
