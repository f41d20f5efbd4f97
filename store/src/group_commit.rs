//! Group commit for the hot path's small writes: SMTP sessions that finish a
//! message at the same moment record their spool rows in one transaction —
//! one commit, one fsync — instead of queueing on the database's write lock
//! one commit each. Whoever finds the writer free commits every write
//! waiting, its own included; the others wait for that commit. A caller
//! returns only once its own write is committed (the gateway answers 250
//! after that), and if the batch fails, each caller commits its own alone, so
//! one bad row cannot fail the others.
//!
//! A write may name a spool folder a file was just renamed into: the one who
//! commits fsyncs each folder named in the batch once, before the commit, so
//! a message's file keeps its name after a power cut before its row commits
//! (one folder fsync per batch instead of one per message).
//!
//! Seals join too ([`Store::group_commit_audited`]): a seal appends to the
//! audit chain, so a batch holding one takes the chain's lock before its
//! transaction, as every writer of the chain does (`audit.rs`). So do the
//! mails the notifier queues (`jobs.rs`) and delivery outcomes
//! (`outcomes.rs`): under load the write lock is the secure path's narrowest
//! point, and each commit of its own held it for a `BEGIN`, a `COMMIT` and an
//! fsync.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::{Result, Store};

/// One write, run inside the group's transaction, given the store. It may run
/// twice (a second time alone, after a batch that failed and was rolled back).
pub(crate) type Write =
    Arc<dyn for<'c> Fn(&'c Store, &'c mut crate::write_tx::WriteTx) -> BoxFuture<'c, Result<()>> + Send + Sync>;

/// A write waiting for the next commit: the folder to fsync first, whether
/// it appends to the audit chain, and who to tell.
struct Waiting {
    write: Write,
    folder: Option<PathBuf>,
    audits: bool,
    done: oneshot::Sender<bool>,
}

/// Writes waiting for the next commit, and the one writer.
#[derive(Default)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<Waiting>>,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl Store {
    /// Runs `write` in a transaction shared with the writes waiting beside it,
    /// after fsyncing `folder` (and the batch's other folders); returns once it
    /// is committed.
    pub(crate) async fn group_commit(&self, write: Write, folder: Option<PathBuf>) -> Result<()> {
        self.join_group(write, folder, false).await
    }

    /// [`Store::group_commit`] for a write that appends to the audit chain
    /// ([`Store::audit_in`]): its batch holds the chain's lock.
    pub(crate) async fn group_commit_audited(&self, write: Write) -> Result<()> {
        self.join_group(write, None, true).await
    }

    async fn join_group(&self, write: Write, folder: Option<PathBuf>, audits: bool) -> Result<()> {
        let (done, mut committed) = oneshot::channel();
        self.group.waiting.lock().expect("group commit lock").push(Waiting {
            write: Arc::clone(&write),
            folder: folder.clone(),
            audits,
            done,
        });
        let writer = self.group.writer.lock().await;
        if let Ok(ok) = committed.try_recv() {
            drop(writer);
            return if ok {
                Ok(())
            } else {
                self.commit_alone(&write, folder, audits).await
            };
        }
        let batch = std::mem::take(&mut *self.group.waiting.lock().expect("group commit lock"));
        let mut folders: Vec<PathBuf> = batch.iter().filter_map(|w| w.folder.clone()).collect();
        folders.sort_unstable();
        folders.dedup();
        let batch_audits = batch.iter().any(|w| w.audits);
        let result = self
            .commit_all(batch.iter().map(|w| &w.write), folders, batch_audits)
            .await;
        // Everyone hears before the writer is free, so a caller that takes it
        // next finds its own answer waiting.
        let ok = result.is_ok();
        for waiting in batch {
            let _ = waiting.done.send(ok);
        }
        drop(writer);
        match result {
            Ok(()) => Ok(()),
            Err(_) => self.commit_alone(&write, folder, audits).await,
        }
    }

    async fn commit_alone(&self, write: &Write, folder: Option<PathBuf>, audits: bool) -> Result<()> {
        let _writer = self.group.writer.lock().await;
        self.commit_all(std::iter::once(write), folder.into_iter().collect(), audits)
            .await
    }

    async fn commit_all(
        &self,
        writes: impl Iterator<Item = &Write>,
        folders: Vec<PathBuf>,
        audits: bool,
    ) -> Result<()> {
        crate::spool_file::sync_folders(folders).await?;
        // The chain's lock before the transaction, as every writer takes it.
        let _chain = if audits { Some(self.audit_guard().await) } else { None };
        let mut tx = self.write_tx().await?;
        for write in writes {
            write(self, &mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
