//! Group commit for the hot path's small writes: SMTP sessions that finish a
//! message at the same moment record their spool rows in one transaction —
//! one commit, one fsync — instead of queueing on the database's write lock
//! one commit each. Whoever finds the writer free commits every write
//! waiting, its own included; the others wait for that commit. A caller
//! returns only once its own write is committed (the gateway answers 250
//! after that), and if the batch fails, each caller commits its own alone, so
//! one bad row cannot fail the others.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::{Result, Store};

/// One write, run inside the group's transaction. It may run twice (a second
/// time alone, after a batch that failed and was rolled back).
pub(crate) type Write =
    Arc<dyn for<'c> Fn(&'c mut sqlx::Transaction<'static, sqlx::Any>) -> BoxFuture<'c, Result<()>> + Send + Sync>;

/// Writes waiting for the next commit, and the one writer.
#[derive(Default)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<(Write, oneshot::Sender<bool>)>>,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl Store {
    /// Runs `write` in a transaction shared with the writes waiting beside it;
    /// returns once it is committed.
    pub(crate) async fn group_commit(&self, write: Write) -> Result<()> {
        let (done, mut committed) = oneshot::channel();
        self.group
            .waiting
            .lock()
            .expect("group commit lock")
            .push((Arc::clone(&write), done));
        let writer = self.group.writer.lock().await;
        if let Ok(ok) = committed.try_recv() {
            drop(writer);
            return if ok { Ok(()) } else { self.commit_alone(&write).await };
        }
        let batch = std::mem::take(&mut *self.group.waiting.lock().expect("group commit lock"));
        let result = self.commit_all(batch.iter().map(|(w, _)| w)).await;
        // Everyone hears before the writer is free, so a caller that takes it
        // next finds its own answer waiting.
        let ok = result.is_ok();
        for (_, done) in batch {
            let _ = done.send(ok);
        }
        drop(writer);
        match result {
            Ok(()) => Ok(()),
            Err(_) => self.commit_alone(&write).await,
        }
    }

    async fn commit_alone(&self, write: &Write) -> Result<()> {
        let _writer = self.group.writer.lock().await;
        self.commit_all(std::iter::once(write)).await
    }

    async fn commit_all(&self, writes: impl Iterator<Item = &Write>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for write in writes {
            write(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
