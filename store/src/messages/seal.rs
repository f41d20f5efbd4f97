//! Sealing a spooled secure message into the store: its recipients' copy of
//! the original, attachments and metadata as sealed pieces (a small message's
//! in one bundle, a large one's each in a blob); the message, its recipients
//! (found or created, with their relationship to the practice), their mail jobs
//! and the audit entry in one transaction.
//!
//! Issue 14 measured what a seal costs: the AEAD is a fraction of a percent;
//! the rest was round trips to the database and the blocking pool, new files
//! and fsyncs. So a small message (at most [`SMALL_MESSAGE`] as received) is
//! read, split, sealed and written as one bundle, fsynced with its folder, in
//! one blocking task; the transaction reads the recipients in one statement
//! and writes them and their jobs with one statement each.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::stream::StreamExt;
use sqlx::Row;

use super::splitting::{Split, Splitting, meta_piece};
use crate::accounts::{Relationship, Role};
use crate::audit::AuditEvent;
use crate::blobs::PieceWriter;
use crate::crypto::{DataKey, WrappedKey};
use crate::ids::{MessageId, PracticeId, UserId};
use crate::ingest;
use crate::job_kind::JobKind;
use crate::layout::bundle_key;
use crate::states::{MessageState, RecipientState};
use crate::write_tx::WriteTx;
use crate::{Error, Mail, Result};

/// A message of at most this many bytes as received is sealed whole in
/// memory and stored as one bundle (`bundle.rs`); a larger one streams, each
/// piece into a blob of its own.
pub const SMALL_MESSAGE: u64 = 256 * 1024;

/// Recipient rows per `INSERT` statement.
const ROWS_PER_INSERT: usize = 200;

/// What a seal records in the database, gathered before its transaction.
struct SealRecord {
    id: MessageId,
    sender: UserId,
    practice: PracticeId,
    wrapped: WrappedKey,
    sealed_subject: Vec<u8>,
    /// The sender's note for notifications (`jobs.rs` reads it).
    sealed_notice: Vec<u8>,
    /// Plaintext size of the recipients' copy.
    size: i64,
    attachments: i64,
    /// The recipients, normalised, each once, in the envelope's order.
    addresses: Vec<String>,
    /// Those named in To or Cc (anyone else is a Bcc).
    named: HashSet<String>,
    facts: crate::ingest::headers::HeaderFacts,
    thread: Option<crate::threads::Thread>,
    now: i64,
}

/// One recipient as the database knows them before the seal: their account,
/// role and practice, and their relationship to the sealing practice.
struct Known {
    id: UserId,
    role: Role,
    practice: Option<i64>,
    relationship: Option<Relationship>,
}

/// Where a small spooled message's sealed bytes are.
enum SpooledAt {
    /// Its file in `spool/in`.
    File(PathBuf),
    /// Read with its row (the spool kept it there: `spool_file.rs`).
    Row(Vec<u8>),
}

impl Mail<'_> {
    /// Seals one spooled secure message into the store: recipients' copy,
    /// attachments and metadata as sealed pieces; message, recipients, mail jobs
    /// and audit entry in one transaction; then the spool entry goes. Safe to
    /// repeat after a crash.
    pub async fn seal_spooled(&self, id: &MessageId) -> Result<()> {
        // The spool row and its sender in one read.
        let row = sqlx::query(
            "SELECT s.rcpt_to, s.kek_id AS spool_kek_id, s.wrapped_key AS spool_wrapped_key, s.thread_message_id,
                    s.size AS spooled_size, s.data AS spooled_data, u.*
             FROM spool s JOIN users u ON u.id = s.sender_id WHERE s.id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let rcpt_to: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("rcpt_to")?)
            .map_err(|_| Error::Corrupt("spooled message recipients"))?;
        let sender = crate::accounts::user_from_row(&row)?;
        // A reply made secure by its conversation: filed under it, and its
        // participants need no role question.
        let thread = self.spooled_thread(row.try_get("thread_message_id")?).await?;
        // A sender who left their practice (or lost the right to send secure
        // mail) since the message was accepted: it can never be sealed.
        let practice_id = crate::threads::sealing_practice(&sender, thread.as_ref())
            .ok_or(Error::Forbidden("the sender has no practice to seal the message under"))?;
        let wrapped = WrappedKey {
            kek_id: row.try_get("spool_kek_id")?,
            wrapped: row.try_get("spool_wrapped_key")?,
        };
        let key = self.keys.unwrap(&wrapped)?;
        let path = self.spool_in().join(id.as_str());
        let spooled_size = u64::try_from(row.try_get::<i64, _>("spooled_size")?).unwrap_or(u64::MAX);
        // A small message kept in its row has no file.
        let inline: Option<Vec<u8>> = row.try_get("spooled_data")?;
        let in_file = inline.is_none();

        let (split, key) = if let Some(sealed) = inline {
            self.seal_small(id, key, SpooledAt::Row(sealed)).await?
        } else if spooled_size <= SMALL_MESSAGE {
            self.seal_small(id, key, SpooledAt::File(path.clone())).await?
        } else {
            let split = self.seal_large(id, &key, &path).await?;
            (split, key)
        };
        let Split { meta, facts, size } = split;

        // Each address once, in order; named in To or Cc: seen by the other
        // recipients. Anyone else is a Bcc.
        let mut seen = HashSet::new();
        let addresses: Vec<String> = rcpt_to
            .iter()
            .filter_map(|address| crate::accounts::normalize_email(address).ok())
            .filter(|address| seen.insert(address.clone()))
            .collect();
        let record = Arc::new(SealRecord {
            id: id.clone(),
            sender: sender.id,
            practice: practice_id,
            sealed_subject: ingest::seal_subject(&key, &facts.subject),
            sealed_notice: crate::crypto::seal_all(
                &key,
                crate::layout::BLOB_NOTICE,
                &serde_json::to_vec(&facts.notice).expect("a string serializes"),
            ),
            wrapped,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            attachments: i64::try_from(meta.attachments.len()).unwrap_or(0),
            named: facts.to.iter().chain(&facts.cc).cloned().collect(),
            addresses,
            facts,
            thread,
            now: self.now(),
        });
        // The seal, its recipients, their jobs and its audit entry are one
        // write, committed with the seals and spool rows written meanwhile:
        // one transaction and one fsync for the batch (`group_commit.rs`).
        self.group_commit_audited(Arc::new(move |store, tx| {
            let record = Arc::clone(&record);
            Box::pin(async move { store.mail().record_seal(tx, &record).await })
        }))
        .await?;
        self.signal_jobs();
        self.signal_mail();
        if in_file {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(())
    }

    /// The database side of a seal, inside a group commit's transaction (it
    /// may run twice: again alone if the batch it was in failed). The message
    /// row (its expiry from the practice's own retention, else the default,
    /// with no read), its thread and conversation, its recipients (found or
    /// created) and their jobs, the spool row's removal and the audit entry.
    async fn record_seal(&self, tx: &mut WriteTx, record: &SealRecord) -> Result<()> {
        let SealRecord {
            id,
            sender,
            practice,
            now,
            facts,
            thread,
            ..
        } = record;
        let (practice, now) = (*practice, *now);
        sqlx::query(
            "INSERT INTO messages (id, sender_id, practice_id, kek_id, wrapped_key, sealed_subject, size, attachment_count, state, created_at, expires_at, sealed_notice)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     $10 + COALESCE((SELECT retention_days FROM practices WHERE id = $3), $11) * 86400, $12)",
        )
        .bind(id.as_str())
        .bind(sender.0)
        .bind(practice.0)
        .bind(&record.wrapped.kek_id)
        .bind(&record.wrapped.wrapped)
        .bind(&record.sealed_subject)
        .bind(record.size)
        .bind(record.attachments)
        .bind(MessageState::Sealed.as_str())
        .bind(now)
        .bind(self.policy.retention_days)
        .bind(&record.sealed_notice)
        .execute(&mut **tx)
        .await?;
        if let Some(msg_id) = &facts.message_id {
            crate::threads::record(tx, id, msg_id, now).await?;
        }
        super::conversation::link(tx, id, thread.as_ref().map(|t| &t.message), &facts.replies_to).await?;

        let outside_thread: Vec<&str> = record
            .addresses
            .iter()
            .filter(|a| !thread.as_ref().is_some_and(|t| t.participants.contains_key(*a)))
            .map(String::as_str)
            .collect();
        let mut known = known_recipients(tx, &outside_thread, practice).await?;
        let mut rows = Vec::with_capacity(record.addresses.len());
        let mut jobs = Vec::new();
        for address in &record.addresses {
            let header_role = facts.roles.iter().find(|(a, _)| a == address).map(|(_, r)| *r);
            let (user, is_known) = match thread.as_ref().and_then(|t| t.participants.get(address)) {
                Some(user) => (*user, true),
                None => {
                    let (user, relationship) = self
                        .resolve_recipient(tx, address, known.remove(address), practice, header_role)
                        .await?;
                    (user, relationship.is_some())
                }
            };
            let state = if is_known {
                RecipientState::Notify
            } else {
                RecipientState::AwaitingRole
            };
            rows.push((user, state, !record.named.contains(address)));
            if is_known {
                jobs.push((JobKind::Notify, user));
            }
        }
        add_recipients(tx, id, &rows).await?;
        if rows.iter().any(|(_, state, _)| *state == RecipientState::AwaitingRole) {
            jobs.push((JobKind::ChooseRoles, *sender));
        }
        crate::job_kind::add_jobs(tx, &jobs, Some(id), now).await?;
        sqlx::query("DELETE FROM spool WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        self.audit_in(
            tx,
            AuditEvent {
                actor: &format!("user:{sender}"),
                action: "message.seal",
                object: &format!("message:{id}"),
                client: "smtp",
            },
        )
        .await
    }

    /// A small message: read, split, sealed and written as one bundle —
    /// written in place, fsynced, its folder fsynced — in one blocking task
    /// (on S3, the bundle is one PUT after it). Gives the key back.
    async fn seal_small(&self, id: &MessageId, key: DataKey, spool: SpooledAt) -> Result<(Split, DataKey)> {
        let tag = self.policy.subject_tag.clone();
        let local = self.blobs.local_path(&bundle_key(id));
        let (split, key, bundle) = tokio::task::spawn_blocking(move || -> Result<(Split, DataKey, Option<Vec<u8>>)> {
            let sealed = match spool {
                SpooledAt::Row(sealed) => sealed,
                SpooledAt::File(path) => std::fs::read(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound,
                    _ => e.into(),
                })?,
            };
            let mut splitting = Splitting::new(&key, &tag);
            splitting.push(&sealed)?;
            let split = splitting.finish()?;
            let meta = meta_piece(&key, &split.meta);
            let pieces: Vec<(u32, &[u8])> = splitting
                .pieces_mut()
                .map(|p| (p.blob.number(), p.out.as_slice()))
                .chain(std::iter::once((meta.blob.number(), meta.out.as_slice())))
                .collect();
            let bundle = crate::bundle::build(&pieces);
            drop(pieces);
            drop(splitting);
            match local {
                Some(path) => {
                    crate::blobs::write_new_file(&path, &bundle)?;
                    Ok((split, key, None))
                }
                None => Ok((split, key, Some(bundle))),
            }
        })
        .await
        .map_err(|_| std::io::Error::other("sealer task failed"))??;
        if let Some(bundle) = bundle {
            self.blobs.put_whole(&bundle_key(id), bundle).await?;
        }
        Ok((split, key))
    }

    /// A large message: one pass over the spool file, each piece streamed to a
    /// blob of its own as it is sealed; all fsynced at the end, their folder
    /// once. The recipients' copy is completed only once the whole file has
    /// authenticated.
    async fn seal_large(&self, id: &MessageId, key: &DataKey, spool: &std::path::Path) -> Result<Split> {
        let mut sealed = crate::sealed_stream::file_stream(spool).await?;
        let mut splitting = Splitting::new(key, &self.policy.subject_tag);
        let mut writers = Writers::default();
        while let Some(chunk) = sealed.next().await {
            splitting.push(&chunk?)?;
            writers.drain(self, id, &mut splitting).await?;
        }
        let split = splitting.finish()?;
        writers.drain(self, id, &mut splitting).await?;
        let mut meta = meta_piece(key, &split.meta);
        let mut writer = self.blobs.create_piece(&meta.blob.key(id));
        writer.write(&std::mem::take(&mut meta.out)).await?;
        writers.done.push(writer.finish().await?);
        // A bundle from an earlier attempt would be read first: no longer.
        self.blobs.delete(&bundle_key(id)).await?;
        self.blobs.sync_pieces(writers.done).await?;
        Ok(split)
    }

    /// Finds or creates the recipient's account and their relationship to the
    /// practice: a colleague, a known contact, or the add-in's role header.
    /// `known`: what [`known_recipients`] found for the address.
    async fn resolve_recipient(
        &self,
        tx: &mut WriteTx,
        address: &str,
        known: Option<Known>,
        practice: PracticeId,
        header_role: Option<Relationship>,
    ) -> Result<(UserId, Option<Relationship>)> {
        let user = match known {
            Some(known) => {
                // A colleague in the same practice needs no role question.
                if known.practice == Some(practice.0) {
                    let colleague = match known.role {
                        Role::Doctor => Some(Relationship::DoctorInPractice),
                        Role::Staff => Some(Relationship::StaffInPractice),
                        _ => None,
                    };
                    if colleague.is_some() {
                        return Ok((known.id, colleague));
                    }
                }
                if known.relationship.is_some() {
                    return Ok((known.id, known.relationship));
                }
                known.id
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
        if let Some(relationship) = header_role {
            self.add_contact(tx, practice, user, relationship).await?;
        }
        Ok((user, header_role))
    }

    pub(super) async fn add_contact(
        &self,
        tx: &mut WriteTx,
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

/// The accounts among `addresses` (normalised) and each one's relationship
/// to `practice`, in one statement per 200 addresses.
async fn known_recipients(
    tx: &mut WriteTx,
    addresses: &[&str],
    practice: PracticeId,
) -> Result<HashMap<String, Known>> {
    let mut known = HashMap::new();
    for chunk in addresses.chunks(ROWS_PER_INSERT) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT u.id, u.email, u.role, u.practice_id, c.relationship FROM users u
             LEFT JOIN contacts c ON c.user_id = u.id AND c.practice_id = $1
             WHERE u.email IN ({})",
            list.join(", ")
        );
        // Only numbered placeholders are formatted in; the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(practice.0);
        for address in chunk {
            query = query.bind(*address);
        }
        for row in query.fetch_all(&mut **tx).await? {
            known.insert(
                row.try_get::<String, _>("email")?,
                Known {
                    id: UserId(row.try_get("id")?),
                    role: Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Unknown),
                    practice: row.try_get("practice_id")?,
                    relationship: row
                        .try_get::<Option<String>, _>("relationship")?
                        .as_deref()
                        .and_then(Relationship::parse),
                },
            );
        }
    }
    Ok(known)
}

/// Records the recipients of a message being sealed, `(user, state, bcc)`,
/// with one statement per 200: notified at once when their relationship to
/// the practice is known, else waiting for the sender's choice (and unable to
/// see it until then).
async fn add_recipients(tx: &mut WriteTx, id: &MessageId, rows: &[(UserId, RecipientState, bool)]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${}, ${})", i * 3 + 2, i * 3 + 3, i * 3 + 4))
            .collect();
        let sql = format!(
            "INSERT INTO message_recipients (message_id, user_id, state, bcc) VALUES {}",
            values.join(", ")
        );
        // Only numbered placeholders are formatted in; the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_str());
        for (user, state, bcc) in chunk {
            query = query.bind(user.0).bind(state.as_str()).bind(i64::from(*bcc));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The blobs of a large message's pieces while they stream: `open[n]` is the
/// writer of the `n`th piece ([`Splitting::pieces_mut`]), `done` the keys of
/// those complete (to fsync together).
#[derive(Default)]
struct Writers {
    open: Vec<Option<PieceWriter>>,
    done: Vec<String>,
}

impl Writers {
    /// Takes every piece's sealed bytes so far to its blob, completing the
    /// blobs of finished pieces.
    async fn drain(&mut self, mail: &Mail<'_>, id: &MessageId, splitting: &mut Splitting<'_>) -> Result<()> {
        for (n, piece) in splitting.pieces_mut().enumerate() {
            if self.open.len() <= n {
                self.open.push(Some(mail.blobs.create_piece(&piece.blob.key(id))));
            }
            let Some(slot) = self.open.get_mut(n) else { continue };
            let Some(writer) = slot.as_mut() else { continue };
            if !piece.out.is_empty() {
                writer.write(&std::mem::take(&mut piece.out)).await?;
            }
            if piece.is_finished()
                && let Some(writer) = slot.take()
            {
                self.done.push(writer.finish().await?);
            }
        }
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

#[cfg(test)]
#[path = "seal_tests.rs"]
mod layout_tests;
