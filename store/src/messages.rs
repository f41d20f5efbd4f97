//! Sealed messages: sealing a spooled message into the store, recipients and their
//! relationships, the inbox and sent lists, reading, downloading, and the
//! lifecycle (expiry and deletion destroy the data key: crypto-shredding).

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use sqlx::Row;

use crate::accounts::{Practice, Relationship, Role, User};
use crate::audit::AuditEvent;
use crate::crypto::{DataKey, WrappedKey};
use crate::ids::{MessageId, PracticeId, UserId};
use crate::ingest::{self, AttachmentMeta, PartSealer, SealedMeta, mime::Splitter};
use crate::visible::{BLOB_VISIBLE, HeaderFilter, visible_key};
use crate::{Error, Result, Sealed, Store};

/// One line of an inbox or sent list.
#[derive(Debug, Clone)]
pub struct MessageSummary {
    pub id: MessageId,
    /// The sender (inbox) or the recipients (sent list).
    pub counterpart: String,
    pub subject: Sealed<String>,
    pub created_at: i64,
    pub unread: bool,
    pub attachments: i64,
}

/// A recipient as the sender sees it.
#[derive(Debug, Clone)]
pub struct RecipientStatus {
    pub user_id: UserId,
    pub email: String,
    pub awaiting_role: bool,
    pub read: bool,
}

/// A message opened for reading.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: MessageId,
    pub sender: User,
    pub practice: Practice,
    pub meta: SealedMeta,
    pub created_at: i64,
    pub expires_at: i64,
    /// The viewer sent it.
    pub is_sender: bool,
    pub recipients: Vec<RecipientStatus>,
}

pub(crate) struct MessageRow {
    sender_id: UserId,
    practice_id: PracticeId,
    pub(crate) key: WrappedKey,
    created_at: i64,
    expires_at: i64,
}

impl Store {
    /// Seals one spooled secure message into the store: original, attachments and
    /// metadata as sealed blobs; message, recipients and mail jobs in one
    /// transaction; then the spool entry goes. Safe to repeat after a crash.
    pub async fn seal_spooled(&self, id: &MessageId) -> Result<()> {
        let row =
            sqlx::query("SELECT rcpt_to, sender_id, kek_id, wrapped_key, thread_message_id FROM spool WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or(Error::NotFound)?;
        let rcpt_to: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("rcpt_to")?).unwrap_or_default();
        let sender = self.user(UserId(row.try_get("sender_id")?)).await?;
        // A reply made secure by its conversation: filed under it, and its
        // participants need no role question.
        let thread = self.spooled_thread(row.try_get("thread_message_id")?).await?;
        let practice_id = crate::threads::sealing_practice(&sender, thread.as_ref()).ok_or(Error::NotFound)?;
        let wrapped = WrappedKey {
            kek_id: row.try_get("kek_id")?,
            wrapped: row.try_get("wrapped_key")?,
        };
        let key = self.keys.unwrap(&wrapped)?;
        let path = self.spool_in().join(id.as_str());

        let prefix = format!("messages/{id}");
        let (meta, facts, size) = self.split_and_seal(id, &key, &path).await?;
        let mut meta_writer = self
            .blobs
            .create(&format!("{prefix}/meta"), &key, ingest::BLOB_META)
            .await?;
        meta_writer
            .write(&serde_json::to_vec(&meta).expect("meta serializes"))
            .await?;
        meta_writer.finish().await?;

        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, sealed_subject, size, attachment_count, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'sealed', $9, $10)",
        )
        .bind(id.as_str())
        .bind(sender.id.0)
        .bind(practice_id.0)
        .bind(&wrapped.kek_id)
        .bind(&wrapped.wrapped)
        .bind(ingest::seal_subject(&key, &facts.subject))
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(i64::try_from(meta.attachments.len()).unwrap_or(0))
        .bind(now)
        .bind(now + self.policy.retention_days * 86_400)
        .execute(&mut *tx)
        .await?;
        if let Some(msg_id) = &facts.message_id {
            crate::threads::record(&mut tx, id, msg_id, now).await?;
        }
        let mut awaiting = false;
        let mut seen = std::collections::HashSet::new();
        // Named in To or Cc: seen by the other recipients. Anyone else is a Bcc.
        let named: std::collections::HashSet<&str> = facts.to.iter().chain(&facts.cc).map(String::as_str).collect();
        for address in rcpt_to {
            let Ok(address) = crate::accounts::normalize_email(&address) else {
                continue;
            };
            if !seen.insert(address.clone()) {
                continue;
            }
            let header_role = facts.roles.iter().find(|(a, _)| *a == address).map(|(_, r)| *r);
            let (user, known) = match thread.as_ref().and_then(|t| t.participants.get(&address)) {
                Some(user) => (*user, true),
                None => self
                    .resolve_recipient(&mut tx, &address, practice_id, header_role)
                    .await
                    .map(|(user, relationship)| (user, relationship.is_some()))?,
            };
            let state = if known { "notify" } else { "awaiting_role" };
            sqlx::query("INSERT INTO message_recipients (message_id, user_id, state, bcc) VALUES ($1, $2, $3, $4)")
                .bind(id.as_str())
                .bind(user.0)
                .bind(state)
                .bind(i64::from(!named.contains(address.as_str())))
                .execute(&mut *tx)
                .await?;
            if known {
                crate::jobs::add_job(&mut tx, crate::jobs::JobKind::Notify, user, Some(id), now).await?;
            } else {
                awaiting = true;
            }
        }
        if awaiting {
            crate::jobs::add_job(&mut tx, crate::jobs::JobKind::ChooseRoles, sender.id, Some(id), now).await?;
        }
        sqlx::query("DELETE FROM spool WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.signal_jobs();
        self.signal_mail();
        let _ = tokio::fs::remove_file(&path).await;
        self.audit(AuditEvent {
            actor: &format!("user:{}", sender.id),
            action: "message.seal",
            object: &format!("message:{id}"),
            client: "smtp",
        })
        .await?;
        Ok(())
    }

    async fn split_and_seal(
        &self,
        id: &MessageId,
        key: &DataKey,
        path: &std::path::Path,
    ) -> Result<(SealedMeta, ingest::headers::HeaderFacts, u64)> {
        // One pass over the spool file: each chunk, decrypted, is fed to the MIME
        // splitter and, without the fields no recipient may see (`visible.rs`),
        // sealed into the recipients' copy of the original. That copy is
        // committed only once the whole file has authenticated; its size is
        // the one IMAP announces.
        let mut sealed = crate::spool::file_stream(path).await?;
        let mut original = self.blobs.create(&visible_key(id), key, BLOB_VISIBLE).await?;
        let mut opener = crate::crypto::Opener::new(key, ingest::BLOB_ORIGINAL);
        let mut splitter = Splitter::new();
        let mut filter = HeaderFilter::new();
        let mut sealer = PartSealer::new(self, id, key);
        let mut events = Vec::new();
        let mut plain = Vec::new();
        let mut shown = Vec::new();
        while let Some(chunk) = sealed.next().await {
            plain.clear();
            opener.update(&chunk?, &mut plain)?;
            shown.clear();
            filter.push(&plain, &mut shown);
            original.write(&shown).await?;
            splitter.push(&plain, &mut events);
            for event in events.drain(..) {
                sealer.on_event(event).await?;
            }
        }
        plain.clear();
        opener.finish(&mut plain)?;
        shown.clear();
        filter.push(&plain, &mut shown);
        filter.finish(&mut shown);
        original.write(&shown).await?;
        splitter.push(&plain, &mut events);
        splitter.finish(&mut events);
        for event in events.drain(..) {
            sealer.on_event(event).await?;
        }
        let size = original.finish().await?;
        let facts = sealer.headers.take().unwrap_or_default();
        let mut meta = std::mem::take(&mut sealer.meta);
        meta.subject.clone_from(facts.subject.expose());
        meta.from = match (&facts.from_name, &facts.from) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (None, Some(address)) => address.clone(),
            _ => String::new(),
        };
        meta.to.clone_from(&facts.to);
        meta.cc.clone_from(&facts.cc);
        meta.date = facts.date;
        meta.message_id.clone_from(&facts.message_id);
        meta.notice.clone_from(&facts.notice);
        Ok((meta, facts, size))
    }

    /// Finds or creates the recipient's account and their relationship to the
    /// practice: a known contact, a colleague, or the add-in's role header.
    async fn resolve_recipient(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        address: &str,
        practice: PracticeId,
        header_role: Option<Relationship>,
    ) -> Result<(UserId, Option<Relationship>)> {
        let existing = sqlx::query("SELECT id, role, practice_id, status FROM users WHERE email = $1")
            .bind(address)
            .fetch_optional(&mut **tx)
            .await?;
        let user = match existing {
            Some(row) => {
                let id = UserId(row.try_get("id")?);
                let role = Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Unknown);
                // A colleague in the same practice needs no role question.
                if row.try_get::<Option<i64>, _>("practice_id")? == Some(practice.0) {
                    let colleague = match role {
                        Role::Doctor => Some(Relationship::DoctorInPractice),
                        Role::Staff => Some(Relationship::StaffInPractice),
                        _ => None,
                    };
                    if colleague.is_some() {
                        return Ok((id, colleague));
                    }
                }
                id
            }
            None => UserId(
                sqlx::query("INSERT INTO users (email, role, status, created_at) VALUES ($1, 'unknown', 'invited', $2) RETURNING id")
                    .bind(address)
                    .bind(self.now())
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("id")?,
            ),
        };
        let known = sqlx::query("SELECT relationship FROM contacts WHERE practice_id = $1 AND user_id = $2")
            .bind(practice.0)
            .bind(user.0)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get::<String, _>("relationship"))
            .transpose()?
            .as_deref()
            .and_then(Relationship::parse);
        if known.is_some() {
            return Ok((user, known));
        }
        if let Some(relationship) = header_role {
            self.add_contact(tx, practice, user, relationship).await?;
        }
        Ok((user, header_role))
    }

    async fn add_contact(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        practice: PracticeId,
        user: UserId,
        relationship: Relationship,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts (practice_id, user_id, relationship, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (practice_id, user_id) DO NOTHING",
        )
        .bind(practice.0)
        .bind(user.0)
        .bind(relationship.as_str())
        .bind(self.now())
        .execute(&mut **tx)
        .await?;
        // A role describes a new contact only (DESIGN.md, "The contract"): it
        // gives a role, and in-practice the practice, only to a person nobody has
        // described yet: invited, with no role, in no practice, and unknown to
        // every other practice (no contact, no message). Anyone else keeps their
        // practice, role and email, so one practice's header or role choice never
        // hands it another practice's recipient.
        sqlx::query(
            "UPDATE users SET role = $1, practice_id = CASE WHEN $2 = 1 THEN $3 ELSE NULL END
             WHERE id = $4 AND status = 'invited' AND role = 'unknown' AND practice_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.user_id = $4 AND c.practice_id <> $3)
               AND NOT EXISTS (SELECT 1 FROM message_recipients r JOIN messages m ON m.id = r.message_id
                               WHERE r.user_id = $4 AND m.practice_id <> $3)",
        )
        .bind(relationship.role().as_str())
        .bind(i64::from(relationship.in_practice()))
        .bind(practice.0)
        .bind(user.0)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn message_row(&self, id: &MessageId) -> Result<MessageRow> {
        let row = sqlx::query("SELECT sender_id, practice_id, kek_id, wrapped_key, created_at, expires_at FROM messages WHERE id = $1 AND state = 'sealed'")
            .bind(id.as_str())
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(MessageRow {
            sender_id: UserId(row.try_get("sender_id")?),
            practice_id: PracticeId(row.try_get("practice_id")?),
            key: WrappedKey {
                kek_id: row.try_get("kek_id")?,
                wrapped: row
                    .try_get::<Option<Vec<u8>>, _>("wrapped_key")?
                    .ok_or(Error::NotFound)?,
            },
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    }

    /// The message row, if `user` sent it or is one of its notified recipients
    /// who has not hidden it, and it has not expired; anyone else gets
    /// [`Error::NotFound`], as if it did not exist. Expiry and hiding take effect
    /// at once, not at the next purge.
    pub(crate) async fn authorized(&self, user: &User, id: &MessageId) -> Result<(MessageRow, bool)> {
        let row = self.message_row(id).await?;
        if row.expires_at <= self.now() {
            return Err(Error::NotFound);
        }
        if row.sender_id == user.id {
            return Ok((row, true));
        }
        let recipient = sqlx::query(
            "SELECT 1 AS ok FROM message_recipients
             WHERE message_id = $1 AND user_id = $2 AND state <> 'awaiting_role' AND hidden_at IS NULL",
        )
        .bind(id.as_str())
        .bind(user.id.0)
        .fetch_optional(&self.db)
        .await?;
        if recipient.is_some() {
            Ok((row, false))
        } else {
            Err(Error::NotFound)
        }
    }

    pub(crate) async fn message_meta_unchecked(&self, id: &MessageId) -> Result<SealedMeta> {
        let row = self.message_row(id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_all(&format!("messages/{id}/meta"), &key, ingest::BLOB_META)
            .await?;
        serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)
    }

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
                id: MessageId::parse(&row.try_get::<String, _>("id")?).ok_or(Error::NotFound)?,
                counterpart: row.try_get("counterpart")?,
                subject: Sealed::new(subject),
                created_at: row.try_get("created_at")?,
                unread: row.try_get::<i64, _>("unread")? != 0,
                attachments: row.try_get("attachment_count")?,
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
            "SELECT m.id, m.kek_id, m.wrapped_key, m.sealed_subject, m.created_at, m.attachment_count,
                    CASE WHEN u.full_name = '' THEN u.email ELSE u.full_name END AS counterpart,
                    CASE WHEN r.read_at IS NULL THEN 1 ELSE 0 END AS unread
             FROM message_recipients r JOIN messages m ON m.id = r.message_id JOIN users u ON u.id = m.sender_id
             WHERE r.user_id = $1 AND r.state <> 'awaiting_role' AND r.hidden_at IS NULL AND m.state = 'sealed' AND m.expires_at > $2
             ORDER BY m.created_at DESC, m.id LIMIT $3 OFFSET $4",
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
            "SELECT m.id, m.kek_id, m.wrapped_key, m.sealed_subject, m.created_at, m.attachment_count,
                    COALESCE((SELECT MIN(u.email) FROM message_recipients r JOIN users u ON u.id = r.user_id WHERE r.message_id = m.id), '') AS counterpart,
                    0 AS unread
             FROM messages m WHERE m.sender_id = $1 AND m.state = 'sealed' AND m.expires_at > $2
             ORDER BY m.created_at DESC, m.id LIMIT $3 OFFSET $4",
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
            .read_all(&format!("messages/{id}/meta"), &key, ingest::BLOB_META)
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
                awaiting_role: r.try_get::<String, _>("state")? == "awaiting_role",
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
            sender: self.user(row.sender_id).await?,
            practice: self.practice(row.practice_id).await?,
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
        let (row, _) = self.authorized(user, id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_all(&format!("messages/{id}/meta"), &key, ingest::BLOB_META)
            .await?;
        let meta: SealedMeta = serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)?;
        let attachment = meta.attachments.get(index).cloned().ok_or(Error::NotFound)?;
        let blob_no = ingest::BLOB_FIRST_PART + u32::try_from(index).map_err(|_| Error::NotFound)?;
        let stream = self.blobs.open(&ingest::part_key(id, index), &key, blob_no).await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "attachment.download",
            object: &format!("message:{id}/attachment:{index}"),
            client,
        })
        .await?;
        Ok((attachment, stream))
    }

    /// Recipients of `id` still waiting for the sender to choose their role.
    pub async fn pending_roles(&self, user: &User, id: &MessageId) -> Result<Vec<RecipientStatus>> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::NotFound);
        }
        let rows = sqlx::query(
            "SELECT r.user_id, u.email FROM message_recipients r JOIN users u ON u.id = r.user_id
             WHERE r.message_id = $1 AND r.state = 'awaiting_role' ORDER BY u.email",
        )
        .bind(id.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecipientStatus {
                    user_id: UserId(r.try_get("user_id")?),
                    email: r.try_get("email")?,
                    awaiting_role: true,
                    read: false,
                })
            })
            .collect()
    }

    /// The sender chooses relationships for waiting recipients; each then gets
    /// their notification (an invitation if they have no account).
    pub async fn choose_roles(
        &self,
        user: &User,
        id: &MessageId,
        choices: &[(UserId, Relationship)],
        client: &str,
    ) -> Result<usize> {
        let pending = self.pending_roles(user, id).await?;
        let row = self.message_row(id).await?;
        let mut tx = self.write_tx().await?;
        let mut done = 0;
        for (recipient, relationship) in choices {
            if !pending.iter().any(|p| p.user_id == *recipient) {
                continue;
            }
            self.add_contact(&mut tx, row.practice_id, *recipient, *relationship)
                .await?;
            sqlx::query("UPDATE message_recipients SET state = 'notify' WHERE message_id = $1 AND user_id = $2")
                .bind(id.as_str())
                .bind(recipient.0)
                .execute(&mut *tx)
                .await?;
            crate::jobs::add_job(&mut tx, crate::jobs::JobKind::Notify, *recipient, Some(id), self.now()).await?;
            done += 1;
        }
        tx.commit().await?;
        self.signal_jobs();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "message.roles",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        Ok(done)
    }

    /// Destroys a message for everyone: its wrapped key first (after that nothing
    /// can decrypt it), then its blobs.
    async fn shred(&self, id: &MessageId, state: &str) -> Result<()> {
        sqlx::query("UPDATE messages SET wrapped_key = NULL, sealed_subject = NULL, state = $1 WHERE id = $2")
            .bind(state)
            .bind(id.as_str())
            .execute(&self.db)
            .await?;
        self.signal_mail();
        self.blobs.delete_prefix(&format!("messages/{id}")).await
    }

    /// The sender deletes a message for everyone.
    pub async fn delete_message(&self, user: &User, id: &MessageId, client: &str) -> Result<()> {
        let (_, is_sender) = self.authorized(user, id).await?;
        if !is_sender {
            return Err(Error::NotFound);
        }
        self.shred(id, "deleted").await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "message.delete",
            object: &format!("message:{id}"),
            client,
        })
        .await?;
        // The wrapped key's old bytes may still be in the write-ahead log (db.rs).
        self.wipe_freed_pages().await;
        Ok(())
    }

    /// Shreds every message past its expiry; returns how many.
    pub async fn purge_expired(&self) -> Result<usize> {
        let rows = sqlx::query("SELECT id FROM messages WHERE state = 'sealed' AND expires_at <= $1")
            .bind(self.now())
            .fetch_all(&self.db)
            .await?;
        let mut count = 0;
        for row in rows {
            let Some(id) = MessageId::parse(&row.try_get::<String, _>("id")?) else {
                continue;
            };
            self.shred(&id, "expired").await?;
            self.audit(AuditEvent {
                actor: "system",
                action: "message.expire",
                object: &format!("message:{id}"),
                client: "",
            })
            .await?;
            count += 1;
        }
        if count > 0 {
            // Once for the whole batch: the old keys may still be in the write-ahead log (db.rs).
            self.wipe_freed_pages().await;
        }
        Ok(count)
    }
}
