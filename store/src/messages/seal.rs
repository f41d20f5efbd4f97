//! Sealing a spooled secure message into the store: its original (as
//! recipients may see it), attachments and metadata as sealed blobs; the
//! message, its recipients (found or created, with their relationship to the
//! practice) and their mail jobs in one transaction.

use futures::stream::StreamExt;
use sqlx::Row;

use crate::accounts::{Relationship, Role};
use crate::audit::AuditEvent;
use crate::crypto::{DataKey, WrappedKey};
use crate::ids::{MessageId, PracticeId, UserId};
use crate::ingest::{self, PartSealer, SealedMeta, mime::Splitter};
use crate::states::{MessageState, RecipientState};
use crate::visible::{BLOB_VISIBLE, HeaderFilter};
use crate::{Error, Mail, Result};

/// Records one recipient of a message being sealed: notified at once when
/// their relationship to the practice is known, else waiting for the sender's
/// choice (and unable to see it until then).
async fn add_recipient(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &MessageId,
    user: UserId,
    known: bool,
    bcc: bool,
    now: i64,
) -> Result<()> {
    let state = if known {
        RecipientState::Notify
    } else {
        RecipientState::AwaitingRole
    };
    sqlx::query("INSERT INTO message_recipients (message_id, user_id, state, bcc) VALUES ($1, $2, $3, $4)")
        .bind(id.as_str())
        .bind(user.0)
        .bind(state.as_str())
        .bind(i64::from(bcc))
        .execute(&mut **tx)
        .await?;
    if known {
        crate::job_kind::add_job(tx, crate::job_kind::JobKind::Notify, user, Some(id), now).await?;
    }
    Ok(())
}

impl Mail<'_> {
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
        let rcpt_to: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("rcpt_to")?)
            .map_err(|_| Error::Corrupt("spooled message recipients"))?;
        let sender = self.accounts().user(UserId(row.try_get("sender_id")?)).await?;
        // A reply made secure by its conversation: filed under it, and its
        // participants need no role question.
        let thread = self.spooled_thread(row.try_get("thread_message_id")?).await?;
        // A sender who left their practice (or lost the right to send secure
        // mail) since the message was accepted: it can never be sealed.
        let practice_id = crate::threads::sealing_practice(&sender, thread.as_ref())
            .ok_or(Error::Forbidden("the sender has no practice to seal the message under"))?;
        let wrapped = WrappedKey {
            kek_id: row.try_get("kek_id")?,
            wrapped: row.try_get("wrapped_key")?,
        };
        let key = self.keys.unwrap(&wrapped)?;
        let path = self.spool_in().join(id.as_str());

        let prefix = crate::layout::message_prefix(id);
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
        let retention_days = self.practice_retention_days(practice_id).await?;
        // The seal and its audit entry commit together (one fsync).
        let audit_guard = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, sealed_subject, size, attachment_count, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.as_str())
        .bind(sender.id.0)
        .bind(practice_id.0)
        .bind(&wrapped.kek_id)
        .bind(&wrapped.wrapped)
        .bind(ingest::seal_subject(&key, &facts.subject))
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(i64::try_from(meta.attachments.len()).unwrap_or(0))
        .bind(MessageState::Sealed.as_str())
        .bind(now)
        .bind(now + retention_days * 86_400)
        .execute(&mut *tx)
        .await?;
        if let Some(msg_id) = &facts.message_id {
            crate::threads::record(&mut tx, id, msg_id, now).await?;
        }
        super::conversation::link(&mut tx, id, thread.as_ref().map(|t| &t.message), &facts.replies_to).await?;
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
            let bcc = !named.contains(address.as_str());
            add_recipient(&mut tx, id, user, known, bcc, now).await?;
            awaiting |= !known;
        }
        if awaiting {
            crate::job_kind::add_job(&mut tx, crate::job_kind::JobKind::ChooseRoles, sender.id, Some(id), now).await?;
        }
        sqlx::query("DELETE FROM spool WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        self.audit_in(
            &mut tx,
            AuditEvent {
                actor: &format!("user:{}", sender.id),
                action: "message.seal",
                object: &format!("message:{id}"),
                client: "smtp",
            },
        )
        .await?;
        tx.commit().await?;
        drop(audit_guard);
        self.signal_jobs();
        self.signal_mail();
        let _ = tokio::fs::remove_file(&path).await;
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
        let mut sealed = crate::sealed_stream::file_stream(path).await?;
        let mut original = self
            .blobs
            .create(&crate::layout::MessageBlob::Visible.key(id), key, BLOB_VISIBLE)
            .await?;
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

    pub(super) async fn add_contact(
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
}

#[cfg(test)]
mod tests {
    use crate::Error;
    use crate::ids::UserId;
    use crate::testing::store;

    /// A sender who may not send secure mail (here: no practice) can never be
    /// sealed, and recipients that do not parse are corrupt: both permanent,
    /// so the sealer sets the message aside at once.
    #[tokio::test]
    async fn a_sender_without_a_practice_and_damaged_recipients_are_permanent_failures() {
        let (_dir, store, _) = store().await;
        let patient: i64 = sqlx::Row::get(
            &sqlx::query(
                "INSERT INTO users (email, role, status, created_at) VALUES ('pat@example.org', 'patient', 'active', 0) RETURNING id",
            )
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        );
        let mut writer = store.queue().spool_writer().await.unwrap();
        writer
            .write(b"From: pat@example.org\r\nTo: doc@smiles.example\r\nSubject: [secure] hi\r\n\r\nbody\r\n")
            .await
            .unwrap();
        let spooled = writer.finish().await.unwrap();
        store
            .queue()
            .accept_secure(
                &spooled,
                "pat@example.org",
                &["doc@smiles.example".to_owned()],
                UserId(patient),
            )
            .await
            .unwrap();
        let error = store.mail().seal_spooled(&spooled.id).await.unwrap_err();
        assert!(matches!(error, Error::Forbidden(_)) && error.is_permanent(), "{error}");
        assert!(
            store.queue().spool_entry(&spooled.id).await.unwrap().is_some(),
            "still spooled"
        );

        sqlx::query("UPDATE spool SET rcpt_to = 'not json' WHERE id = $1")
            .bind(spooled.id.as_str())
            .execute(&store.db)
            .await
            .unwrap();
        let error = store.mail().seal_spooled(&spooled.id).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)) && error.is_permanent(), "{error}");
        assert!(matches!(
            store.mail().seal_spooled(&crate::ids::MessageId::generate()).await,
            Err(Error::NotFound)
        ));
    }
}
