//! The tamper-evident audit log: every row's hash covers the previous row's hash,
//! so editing or deleting a past row breaks the chain from there on. The hash is
//! an HMAC-SHA256 under the keyring's audit key, so someone who can write the
//! database but not read the keyring cannot recompute the chain after an edit;
//! an anchor (the newest entry's id and hash, which the server logs and
//! `sealpost audit anchor` prints) shows whether the newest entries were dropped.
//! Rows name people and objects by id, never by content.
//!
//! Rows written before the chain was keyed (`scheme` 1, plain SHA-256) still
//! verify: they may only come before every keyed row, and the first keyed row's
//! MAC covers the last plain hash, so rewriting them is caught there.

use std::fmt;

use futures::TryStreamExt;
use sqlx::Row;

use crate::{AuditLog, Result, Store};

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

/// Rows chained with plain SHA-256 (before migration 0014).
const SCHEME_PLAIN: i64 = 1;
/// Rows chained with HMAC-SHA256 under the audit key.
const SCHEME_KEYED: i64 = 2;
/// Rows per INSERT in [`Store::audit_all`] (8 parameters each; sqlx finds
/// each `$n` by a linear search, so binding costs grow with the square).
const ROWS_PER_INSERT: usize = 20;

/// The chain input: the previous hash, then each field with its length.
fn chain_input(prev: &[u8], at: i64, event: &AuditEvent<'_>) -> Vec<u8> {
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
    input
}

/// A point in the chain an admin keeps outside the database: an entry's id and
/// hash, written `<id>:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub id: i64,
    pub hash: Vec<u8>,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, hex::encode(&self.hash))
    }
}

impl std::str::FromStr for Anchor {
    type Err = crate::Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            crate::Error::invalid(
                "an audit anchor looks like 1234:<64 hex digits>, as `sealpost audit anchor` prints it",
            )
        };
        let (id, hash) = text.trim().split_once(':').ok_or_else(bad)?;
        let id = id.parse().map_err(|_| bad())?;
        let hash = hex::decode(hash).map_err(|_| bad())?;
        if hash.len() != 32 {
            return Err(bad());
        }
        Ok(Self { id, hash })
    }
}

/// Why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditBreak {
    /// This entry was changed, or one before it was removed or inserted.
    Changed { id: i64 },
    /// The anchor's entry is gone: entries up to or after it were removed.
    AnchorMissing { anchor: Anchor },
    /// The anchor's entry is there with another hash: it was rewritten.
    AnchorMismatch { anchor: Anchor },
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Changed { id } => write!(
                f,
                "audit log broken at entry {id}: it was changed, or an entry before it was removed"
            ),
            Self::AnchorMissing { anchor } => write!(
                f,
                "audit log does not reach the anchor: entry {} is missing, so entries were removed (the newest ones, if the chain is otherwise intact)",
                anchor.id
            ),
            Self::AnchorMismatch { anchor } => write!(
                f,
                "audit log does not match the anchor: entry {} has another hash, so it was rewritten",
                anchor.id
            ),
        }
    }
}

/// An intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditIntact {
    pub entries: u64,
    /// The newest entry, to keep as the next anchor (none when the log is empty).
    pub newest: Option<Anchor>,
}

// Store-wide: every room writes the audit log.
impl Store {
    /// Appends one event to the chain.
    pub async fn audit(&self, event: AuditEvent<'_>) -> Result<()> {
        self.audit_all(std::slice::from_ref(&event)).await
    }

    /// Appends events to the chain in order, all in one transaction (a
    /// multi-row insert per [`ROWS_PER_INSERT`] events).
    pub async fn audit_all(&self, events: &[AuditEvent<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _guard = self.audit_lock.lock().await;
        let mut tx = self.write_tx().await?;
        self.lock_chain(&mut tx).await?;
        let mut prev: Vec<u8> = sqlx::query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("hash"))
            .transpose()?
            .unwrap_or_else(|| vec![0u8; 32]);
        let at = self.now();
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = i * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7,
                        n + 8
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO audit (at, actor, action, object, client, prev_hash, hash, scheme) VALUES {}",
                rows.join(", ")
            );
            // Only numbered placeholders are formatted in; the values are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for event in chunk {
                let hash = self.keys.audit_mac(&chain_input(&prev, at, event));
                query = query
                    .bind(at)
                    .bind(event.actor)
                    .bind(event.action)
                    .bind(event.object)
                    .bind(event.client)
                    .bind(std::mem::replace(&mut prev, hash.clone()))
                    .bind(hash)
                    .bind(SCHEME_KEYED);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        for event in events {
            telemetry::metrics().audit_event(event.action);
        }
        Ok(())
    }

    /// Holds the chain's end while a caller's transaction appends to it with
    /// [`Store::audit_in`]: take it before the transaction begins, keep it
    /// until it commits.
    pub(crate) async fn audit_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.audit_lock.lock().await
    }

    /// Appends one event to the chain inside the caller's transaction, so the
    /// event commits with what it records (one commit, one fsync, instead of
    /// two). The caller holds [`Store::audit_guard`]. The first entry of a
    /// transaction locks the chain's end and reads it; the next ones (seals
    /// committed together) follow the hash the transaction keeps.
    pub(crate) async fn audit_in(&self, tx: &mut crate::write_tx::WriteTx, event: AuditEvent<'_>) -> Result<()> {
        let prev: Vec<u8> = match tx.audit_head.take() {
            Some(head) => head,
            None => {
                self.lock_chain(tx).await?;
                sqlx::query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|row| row.try_get("hash"))
                    .transpose()?
                    .unwrap_or_else(|| vec![0u8; 32])
            }
        };
        let at = self.now();
        let hash = self.keys.audit_mac(&chain_input(&prev, at, &event));
        sqlx::query("INSERT INTO audit (at, actor, action, object, client, prev_hash, hash, scheme) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(at)
            .bind(event.actor)
            .bind(event.action)
            .bind(event.object)
            .bind(event.client)
            .bind(prev)
            .bind(&hash)
            .bind(SCHEME_KEYED)
            .execute(&mut **tx)
            .await?;
        tx.audit_head = Some(hash);
        // Counted when written: a transaction rolled back after this is rare
        // (and is an error logged on its own).
        telemetry::metrics().audit_event(event.action);
        Ok(())
    }
}

impl Store {
    /// Holds the chain's end for the rest of `tx` across processes: several
    /// nodes on one PostgreSQL database append to one chain, and two appending
    /// after the same entry would fork it. A transaction-scoped advisory lock
    /// (released at commit); `SQLite` serializes writers already.
    async fn lock_chain(&self, tx: &mut crate::write_tx::WriteTx) -> Result<()> {
        if self.dialect == crate::db::Dialect::Postgres {
            // The key is arbitrary but fixed: "SealpostAudit" in a bigint.
            sqlx::query("SELECT pg_advisory_xact_lock(5265616117)")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

impl AuditLog<'_> {
    /// Walks the whole chain. Returns the number of rows, or the id of the first
    /// row whose hash does not follow from its predecessor.
    pub async fn verify_audit(&self) -> Result<std::result::Result<u64, i64>> {
        Ok(match self.verify_audit_against(None).await? {
            Ok(intact) => Ok(intact.entries),
            Err(AuditBreak::Changed { id }) => Err(id),
            Err(AuditBreak::AnchorMissing { anchor } | AuditBreak::AnchorMismatch { anchor }) => Err(anchor.id),
        })
    }

    /// Walks the whole chain (streaming, in bounded memory) and, given an anchor,
    /// checks that its entry is still there with the same hash.
    pub async fn verify_audit_against(
        &self,
        anchor: Option<&Anchor>,
    ) -> Result<std::result::Result<AuditIntact, AuditBreak>> {
        let mut rows =
            sqlx::query("SELECT id, at, actor, action, object, client, prev_hash, hash, scheme FROM audit ORDER BY id")
                .fetch(&self.db);
        let mut prev = vec![0u8; 32];
        let mut entries = 0;
        let mut keyed_seen = false;
        let mut anchor_seen = false;
        let mut newest = None;
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.try_get("id")?;
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
            let input = chain_input(&prev, row.try_get("at")?, &event);
            let expected = match row.try_get::<i64, _>("scheme")? {
                SCHEME_KEYED => {
                    keyed_seen = true;
                    Some(self.keys.audit_mac(&input))
                }
                // A plain row after a keyed one is a forgery: plain rows can only be
                // the old prefix of the chain.
                SCHEME_PLAIN if !keyed_seen => Some(crate::crypto::sha256(&input)),
                _ => None,
            };
            if stored_prev != prev || expected.as_ref() != Some(&hash) {
                return Ok(Err(AuditBreak::Changed { id }));
            }
            if let Some(anchor) = anchor.filter(|a| a.id == id) {
                if anchor.hash != hash {
                    return Ok(Err(AuditBreak::AnchorMismatch { anchor: anchor.clone() }));
                }
                anchor_seen = true;
            }
            newest = Some(Anchor { id, hash: hash.clone() });
            prev = hash;
            entries += 1;
        }
        match anchor {
            Some(anchor) if !anchor_seen => Ok(Err(AuditBreak::AnchorMissing { anchor: anchor.clone() })),
            _ => Ok(Ok(AuditIntact { entries, newest })),
        }
    }

    /// The newest entry as an anchor, without walking the chain (for the
    /// server's periodic log line).
    pub async fn audit_anchor(&self) -> Result<Option<Anchor>> {
        let row = sqlx::query("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.db)
            .await?;
        row.map(|row| {
            Ok(Anchor {
                id: row.try_get("id")?,
                hash: row.try_get("hash")?,
            })
        })
        .transpose()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_print_and_parse() {
        let anchor = Anchor {
            id: 42,
            hash: vec![0xab; 32],
        };
        let text = anchor.to_string();
        assert_eq!(text, format!("42:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<Anchor>().unwrap(), anchor);
        for bad in [
            "",
            "42",
            "x:ab",
            "42:abc",
            "42:abab",
            &format!("42:{}", "zz".repeat(32)),
        ] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad:?}");
        }
    }

    /// Several entries appended in one transaction (seals committed together)
    /// follow one another, and the chain goes on from them in the next one:
    /// the whole chain verifies, and each entry names its predecessor's hash.
    #[tokio::test]
    async fn entries_appended_in_one_transaction_chain_on_from_one_another() {
        let (_dir, store, _) = crate::testing::store().await;
        let already = store.audit_log().verify_audit().await.unwrap().unwrap();
        store.audit(event("before")).await.unwrap();
        for batch in 0..2 {
            let _guard = store.audit_guard().await;
            let mut tx = store.write_tx().await.unwrap();
            for n in 0..3 {
                store
                    .audit_in(&mut tx, event(&format!("batch {batch} entry {n}")))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        store.audit(event("after")).await.unwrap();
        assert_eq!(store.audit_log().verify_audit().await.unwrap(), Ok(already + 8));
        let rows = sqlx::query("SELECT prev_hash, hash FROM audit ORDER BY id")
            .fetch_all(&store.db)
            .await
            .unwrap();
        for pair in rows.windows(2) {
            let (prev, hash): (Vec<u8>, Vec<u8>) = (pair[1].get("prev_hash"), pair[0].get("hash"));
            assert_eq!(prev, hash, "each entry names the one before it");
        }
    }

    fn event(object: &str) -> AuditEvent<'_> {
        AuditEvent {
            actor: "test",
            action: "test.append",
            object,
            client: "",
        }
    }
}
