//! A spool file: a message sealed under its own data key into a local file as it
//! is written, and fsynced with its folder before anyone is told it is safe. The
//! inbound spool (`spool.rs`) and the outbound queue (`jobs.rs`) both write them;
//! files half-written when the process stopped are swept at start-up
//! (`spool_sweep.rs`).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::Result;
use crate::crypto::{DataKey, Sealer};
use crate::ids::MessageId;
use crate::layout::BLOB_ORIGINAL;

/// A spool file being written. Dropped without [`finish`](Self::finish), it is
/// left as a `.tmp` file that start-up clears away.
pub struct SpoolWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    id: MessageId,
    key: DataKey,
    sealer: Sealer,
    out: Vec<u8>,
    size: u64,
}

/// A message safely on disk, not yet recorded in the database.
pub struct Spooled {
    pub id: MessageId,
    pub size: u64,
    key: DataKey,
    path: PathBuf,
}

impl SpoolWriter {
    pub(crate) async fn create(dir: &Path) -> Result<Self> {
        let id = MessageId::generate();
        let dest = dir.join(id.as_str());
        let tmp = dir.join(format!("{id}.tmp"));
        // One hand-off to the blocking pool for both.
        let (folder, path) = (dir.to_owned(), tmp.clone());
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder)?;
            std::fs::File::create(&path)
        })
        .await
        .map_err(|_| std::io::Error::other("spool writer task failed"))??;
        let file = tokio::fs::File::from_std(file);
        let key = DataKey::generate();
        let sealer = Sealer::new(&key, BLOB_ORIGINAL);
        Ok(Self {
            file,
            tmp,
            dest,
            id,
            key,
            sealer,
            out: Vec::with_capacity(1 << 20),
            size: 0,
        })
    }

    /// The id the message will have.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.size += data.len() as u64;
        self.sealer.update(data, &mut self.out);
        if self.out.len() >= 1 << 20 {
            self.file.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Seals the end, fsyncs the file and its folder. The last write, the
    /// fsyncs and the rename run as one blocking task: one hand-off to the
    /// blocking pool instead of five (each costs thread wake-ups).
    pub async fn finish(mut self) -> Result<Spooled> {
        self.sealer.finish(&mut self.out);
        self.file.flush().await?;
        let mut file = self.file.into_std().await;
        let (tmp, dest, out) = (self.tmp.clone(), self.dest.clone(), std::mem::take(&mut self.out));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            file.write_all(&out)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(dest.parent().expect("spool files live in a folder"))?.sync_all()
        })
        .await
        .map_err(|_| std::io::Error::other("spool writer task failed"))??;
        Ok(Spooled {
            id: self.id,
            size: self.size,
            key: self.key,
            path: self.dest,
        })
    }

    /// Throws the partial file away.
    pub async fn discard(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

impl Spooled {
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }

    pub(crate) fn key(&self) -> &DataKey {
        &self.key
    }
}
