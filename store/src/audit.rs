//! The tamper-evident audit log: every row's hash covers the previous row's hash,
//! so editing or deleting a past row breaks the chain from there on.
//! Rows name people and objects by id, never by content.

use sqlx::Row;

use crate::{Result, Store};

/// Actions recorded right after a message's wrapped key was destroyed; after them
/// the database's freed pages are wiped (see `db.rs`).
const SHREDDING_ACTIONS: [&str; 2] = ["message.delete", "message.expire"];

/// One thing that happened, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// Who did it: `user:<id>`, an email address for a failed sign-in, or `system`.
    pub actor: &'a str,
    /// What happened, e.g. `message.view`, `signin.failure`.
    pub action: &'a str,
    /// What it was done to, e.g. `message:<id>`.
    pub object: &'a str,
    /// The client's address, when there is one.
    pub client: &'a str,
}

fn chain_hash(prev: &[u8], at: i64, event: &AuditEvent<'_>) -> Vec<u8> {
    let mut input = prev.to_vec();
    for field in [
        &at.to_string() as &str,
        event.actor,
        event.action,
        event.object,
        event.client,
    ] {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field.as_bytes());
    }
    crate::crypto::sha256(&input)
}

impl Store {
    /// Appends one event to the chain.
    pub async fn audit(&self, event: AuditEvent<'_>) -> Result<()> {
        {
            let _guard = self.audit_lock.lock().await;
            let mut tx = self.write_tx().await?;
            let prev: Vec<u8> = sqlx::query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("hash"))
                .transpose()?
                .unwrap_or_else(|| vec![0u8; 32]);
            let at = self.now();
            let hash = chain_hash(&prev, at, &event);
            sqlx::query("INSERT INTO audit (at, actor, action, object, client, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(at)
                .bind(event.actor)
                .bind(event.action)
                .bind(event.object)
                .bind(event.client)
                .bind(prev)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        if SHREDDING_ACTIONS.contains(&event.action) {
            self.wipe_freed_pages().await;
        }
        Ok(())
    }

    /// Walks the whole chain. Returns the number of rows, or the id of the first
    /// row whose hash does not follow from its predecessor.
    pub async fn verify_audit(&self) -> Result<Result<u64, i64>> {
        let rows = sqlx::query("SELECT id, at, actor, action, object, client, prev_hash, hash FROM audit ORDER BY id")
            .fetch_all(&self.db)
            .await?;
        let mut prev = vec![0u8; 32];
        let mut count = 0;
        for row in rows {
            let (actor, action, object, client): (String, String, String, String) = (
                row.try_get("actor")?,
                row.try_get("action")?,
                row.try_get("object")?,
                row.try_get("client")?,
            );
            let event = AuditEvent {
                actor: &actor,
                action: &action,
                object: &object,
                client: &client,
            };
            let stored_prev: Vec<u8> = row.try_get("prev_hash")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            if stored_prev != prev || chain_hash(&prev, row.try_get("at")?, &event) != hash {
                return Ok(Err(row.try_get("id")?));
            }
            prev = hash;
            count += 1;
        }
        Ok(Ok(count))
    }

    /// The most recent events, newest first (for tests and the admin CLI).
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT actor, action, object FROM audit ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("actor")?, row.try_get("action")?, row.try_get("object")?)))
            .collect()
    }
}
