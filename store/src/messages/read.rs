//! Reading: the inbox and sent lists, opening a message (marks it read for a
//! recipient), downloading an attachment; each view and download audited.

use bytes::Bytes;
use futures::stream::BoxStream;
use sqlx::Row;

use super::visibility::{recipient_sees, sender_sees};
use super::{MessageSummary, MessageView, RecipientStatus};
use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::crypto::WrappedKey;
use crate::ids::{MessageId, UserId};
use crate::ingest::{self, AttachmentMeta, SealedMeta};
use crate::states::RecipientState;
use crate::{Error, Mail, Result, Sealed};

impl Mail<'_> {
    async fn summaries(&self, sql: &'static str, user: &User, limit: i64, offset: i64) -> Result<Vec<MessageSummary>> {
        let rows = sqlx::query(sql)
            .bind(user.id.0)
            .bind(self.now())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let wrapped = WrappedKey {
                kek_id: row.try_get("kek_id")?,
                wrapped: row.try_get("wrapped_key")?,
            };
            let subject = match (
                self.keys.unwrap(&wrapped),
                row.try_get::<Option<Vec<u8>>, _>("sealed_subject")?,
            ) {
                (Ok(key), Some(sealed)) => crate::crypto::open_all(&key, ingest::BLOB_SUBJECT, &sealed)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            out.push(MessageSummary {
                id: MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::Corrupt("message id"))?,
                counterpart: row.try_get("counterpart")?,
                subject: Sealed::new(subject),
                created_at: row.try_get("created_at")?,
                unread: row.try_get::<i64, _>("unread")? != 0,
                attachments: row.try_get("attachment_count")?,
                expires_at: row.try_get("expires_at")?,
                read_by: row.try_get("read_by")?,
                recipients: row.try_get("recipient_count")?,
            });
        }
        Ok(out)
    }

    /// Messages `user` received, newest first.
    pub async fn inbox(&self, user: &User, limit: i64) -> Result<Vec<MessageSummary>> {
        self.inbox_page(user, limit, 0).await
    }

    /// Messages `user` received, newest first, skipping the `offset` newest.
    pub async fn inbox_page(&self, user: &User, limit: i64, offset: i64) -> Result<Vec<MessageSummary>> {
        self.summaries(
            concat!(
                "SELECT m.id, m.kek_id, m.wrapped_key, m.sealed_subject, m.created_at, m.attachment_count, m.expires_at,
                    CASE WHEN u.full_name = '' THEN u.email ELSE u.full_name END AS counterpart,
                    CASE WHEN r.read_at IS NULL THEN 1 ELSE 0 END AS unread, 0 AS read_by, 0 AS recipient_count
                 FROM message_recipients r JOIN messages m ON m.id = r.message_id JOIN users u ON u.id = m.sender_id
                 WHERE ",
                recipient_sees!(),
                " ORDER BY m.created_at DESC, m.id LIMIT $3 OFFSET $4"
            ),
            user,
            limit,
            offset,
        )
        .await
    }

    /// Messages `user` sent, newest first.
    pub async fn sent(&self, user: &User, limit: i64) -> Result<Vec<MessageSummary>> {
        self.sent_page(user, limit, 0).await
    }

    /// Messages `user` sent, newest first, skipping the `offset` newest.
    pub async fn sent_page(&self, user: &User, limit: i64, offset: i64) -> Result<Vec<MessageSummary>> {
        self.summaries(
            concat!(
                "SELECT m.id, m.kek_id, m.wrapped_key, m.sealed_subject, m.created_at, m.attachment_count, m.expires_at,
                    COALESCE((SELECT MIN(u.email) FROM message_recipients r JOIN users u ON u.id = r.user_id WHERE r.message_id = m.id), '') AS counterpart,
                    0 AS unread,
                    (SELECT COUNT(*) FROM message_recipients r WHERE r.message_id = m.id AND r.read_at IS NOT NULL) AS read_by,
                    (SELECT COUNT(*) FROM message_recipients r WHERE r.message_id = m.id AND r.state <> 'awaiting_role') AS recipient_count
                 FROM messages m WHERE ",
                sender_sees!(),
                " ORDER BY m.created_at DESC, m.id LIMIT $3 OFFSET $4"
            ),
            user,
            limit,
            offset,
        )
        .await
    }

    /// Opens a message for reading: decrypts its metadata, marks it read for a
    /// recipient, and audits the view.
    pub async fn open_message(&self, user: &User, id: &MessageId, client: &str) -> Result<MessageView> {
        let (row, is_sender) = self.authorized(user, id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_piece(id, &key, crate::layout::MessageBlob::Meta)
            .await?;
        let meta: SealedMeta = serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)?;
        if !is_sender {
            sqlx::query(
                "UPDATE message_recipients SET read_at = $1 WHERE message_id = $2 AND user_id = $3 AND read_at IS NULL",
            )
            .bind(self.now())
            .bind(id.as_str())
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
            self.signal_mail();
        }
        let recipients = sqlx::query(
            "SELECT r.user_id, u.email, r.state, r.read_at FROM message_recipients r JOIN users u ON u.id = r.user_id
             WHERE r.message_id = $1 ORDER BY u.email",
        )
        .bind(id.as_str())
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|r| {
            Ok(RecipientStatus {
                user_id: UserId(r.try_get("user_id")?),
                email: r.try_get("email")?,
                awaiting_role: RecipientState::parse(&r.try_get::<String, _>("state")?)?
                    == RecipientState::AwaitingRole,
                read: r.try_get::<Option<i64>, _>("read_at")?.is_some(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "message.view",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        Ok(MessageView {
            id: id.clone(),
            sender: self.accounts().user(row.sender_id).await?,
            practice: self.accounts().practice(row.practice_id).await?,
            meta,
            created_at: row.created_at,
            expires_at: row.expires_at,
            is_sender,
            recipients: if is_sender { recipients } else { Vec::new() },
        })
    }

    /// Streams attachment `index` of a message, decrypted; audits the download.
    pub async fn open_attachment(
        &self,
        user: &User,
        id: &MessageId,
        index: usize,
        client: &str,
    ) -> Result<(AttachmentMeta, BoxStream<'static, Result<Bytes>>)> {
        self.open_attachment_for(user, id, index, client, super::archive::AttachmentUse::Download)
            .await
    }
    pub(crate) async fn message_meta_unchecked(&self, id: &MessageId) -> Result<SealedMeta> {
        let row = self.message_row(id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_piece(id, &key, crate::layout::MessageBlob::Meta)
            .await?;
        serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)
    }
}
