//! Sweeping what a crash left behind (issue 16). A process killed at the wrong
//! moment can leave a spool file whose row was never written (the file is
//! renamed into place before its row commits), a spool or queue file whose rows
//! are all done (files go after the commit), and the blobs of a message whose
//! sealing never committed. None of them is reachable; this finds and removes
//! them, at start-up and periodically.
//!
//! What counts as referenced: a file `in/ID` while a spool row `ID` exists or a
//! queued delivery reads it; `out/ID` while a queued delivery reads it; the blobs
//! under `messages/ID/` while the spool row `ID` exists (it is being sealed) or
//! the message `ID` still has its key. Sealing writes blobs only while the spool
//! row exists and swaps the spool row for the message row in one transaction,
//! so that rule never takes blobs a sealer is writing. A spool file is younger
//! than its row, so files younger than the grace given are left alone.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;

use crate::clock::Clock as _;
use crate::ids::MessageId;
use crate::layout::SpoolDir;
use crate::states::OutboundState;
use crate::{Queue, Result};

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Spool and queue files (half-written ones included).
    pub spool_files: usize,
    /// Messages whose blobs were removed (all of each message's blobs).
    pub blob_messages: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.spool_files + self.blob_messages
    }
}

/// A file in a spool folder and how long ago it last changed.
struct SpoolFile {
    path: std::path::PathBuf,
    dir: SpoolDir,
    name: String,
    age: Duration,
}

fn spool_files(dir: &std::path::Path, kind: SpoolDir) -> Vec<SpoolFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| {
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(crate::clock::real_age)
                .unwrap_or_default();
            SpoolFile {
                path: entry.path(),
                dir: kind,
                name: entry.file_name().to_string_lossy().into_owned(),
                age,
            }
        })
        .collect()
}

impl Queue<'_> {
    /// Removes unreferenced spool and queue files, and the blobs of messages
    /// that were never sealed or whose key is gone, leaving anything younger
    /// than `grace` (a file about to get its row). Only the server calls this:
    /// with a zero grace as it starts, before it listens (nothing writes its
    /// spool then), and with a grace of minutes while it runs. Returns what went.
    pub async fn sweep_orphans(&self, grace: Duration) -> Result<Swept> {
        Ok(Swept {
            spool_files: self.sweep_spool(grace).await?,
            blob_messages: self.sweep_message_blobs(grace).await?,
        })
    }

    /// The spool half of [`Queue::sweep_orphans`] (local files: quick, so the
    /// server runs it before it listens).
    pub async fn sweep_spool(&self, grace: Duration) -> Result<usize> {
        let mut removed = 0;
        // Files first, then the rows: a row committed in between is seen.
        let mut files = spool_files(&self.spool_in(), SpoolDir::In);
        files.extend(spool_files(&self.spool_out(), SpoolDir::Out));
        let files: Vec<SpoolFile> = files.into_iter().filter(|f| f.age >= grace).collect();
        if !files.is_empty() {
            let spooled: HashSet<String> = sqlx::query("SELECT id FROM spool")
                .fetch_all(&self.db)
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<std::result::Result<_, _>>()?;
            let queued: HashSet<String> =
                sqlx::query("SELECT DISTINCT blob FROM outbound WHERE state = $1 AND blob <> ''")
                    .bind(OutboundState::Queued.as_str())
                    .fetch_all(&self.db)
                    .await?
                    .iter()
                    .map(|row| row.try_get("blob"))
                    .collect::<std::result::Result<_, _>>()?;
            for file in files {
                let referenced = MessageId::parse(&file.name).is_some_and(|id| {
                    queued.contains(&file.dir.entry(&id)) || (file.dir == SpoolDir::In && spooled.contains(id.as_str()))
                });
                // Anything else (a half-written `.tmp`, a stray name) is no message's.
                if !referenced && std::fs::remove_file(&file.path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Takes the spool rows (and deliveries) whose files are on this node's disk
    /// but that name another node or none: rows written before rows named their
    /// node, a data folder restored from a backup or moved to a new machine (ids
    /// are random: a file here is this node's to seal or send). The server calls
    /// this as it starts, before it sweeps. Returns how many.
    pub async fn adopt_spool(&self) -> Result<u64> {
        let mut adopted = 0;
        for file in spool_files(&self.spool_in(), SpoolDir::In)
            .into_iter()
            .chain(spool_files(&self.spool_out(), SpoolDir::Out))
        {
            let Some(id) = MessageId::parse(&file.name) else {
                continue;
            };
            if file.dir == SpoolDir::In {
                adopted += sqlx::query("UPDATE spool SET node = $1 WHERE id = $2 AND node <> $1")
                    .bind(self.node.as_str())
                    .bind(id.as_str())
                    .execute(&self.db)
                    .await?
                    .rows_affected();
            }
            adopted += sqlx::query("UPDATE outbound SET node = $1 WHERE blob = $2 AND node <> $1")
                .bind(self.node.as_str())
                .bind(file.dir.entry(&id))
                .execute(&self.db)
                .await?
                .rows_affected();
        }
        Ok(adopted)
    }

    /// The blob half of [`Queue::sweep_orphans`] (lists every message's blobs:
    /// the server runs it in the background). No grace is needed for
    /// correctness (see the module's note); one keeps a periodic pass cheap.
    pub async fn sweep_message_blobs(&self, grace: Duration) -> Result<usize> {
        // Blob times are real time (the object store's), not the Store's clock (tests move theirs).
        let now = crate::clock::SystemClock.now();
        let oldest = now.saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
        let mut removed = 0;
        for (id, changed_at) in self.blobs.message_ids().await? {
            if changed_at > oldest {
                continue;
            }
            let Some(id) = MessageId::parse(&id) else {
                continue;
            };
            let kept: i64 = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM spool WHERE id = $1)
                      + (SELECT COUNT(*) FROM messages WHERE id = $1 AND wrapped_key IS NOT NULL) AS n",
            )
            .bind(id.as_str())
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
            if kept == 0 {
                self.blobs.delete_prefix(&crate::layout::message_prefix(&id)).await?;
                removed += 1;
            }
        }
        self.blobs.clear_staging(grace)?;
        Ok(removed)
    }
}

impl Queue<'_> {
    /// The cheap, incremental blob pass: the blobs of messages whose key went
    /// at or after `since` (store clock; a shred's blob delete cut short by a
    /// crash or an object-store error), found from the database instead of by
    /// listing the whole store, each message's prefix listed alone. Returns how
    /// many messages still had blobs, and the `since` of the next pass (a
    /// minute before now, so a shred committing meanwhile is seen again).
    /// The full listing ([`Queue::sweep_message_blobs`]) then only needs to run
    /// rarely: it is what finds the blobs of a seal that never committed.
    pub async fn sweep_shredded_blobs(&self, since: i64) -> Result<(usize, i64)> {
        let next = self.now() - 60;
        let rows = sqlx::query("SELECT id FROM messages WHERE wrapped_key IS NULL AND ended_at >= $1")
            .bind(since)
            .fetch_all(&self.db)
            .await?;
        let mut removed = 0;
        for row in &rows {
            let Some(id) = MessageId::parse(&row.try_get::<String, _>("id")?) else {
                continue;
            };
            let prefix = object_store::path::Path::from(crate::layout::message_prefix(&id));
            let mut listing = self.blobs.objects().list(Some(&prefix));
            let mut found = false;
            while let Some(meta) = futures::StreamExt::next(&mut listing).await {
                self.blobs.delete(meta?.location.as_ref()).await?;
                found = true;
            }
            removed += usize::from(found);
        }
        Ok((removed, next))
    }
}

#[cfg(test)]
#[path = "spool_sweep_tests.rs"]
mod tests;
