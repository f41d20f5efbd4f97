//! A spool file: a message sealed under its own data key into a local file as it
//! is written, and fsynced with its folder before anyone is told it is safe. The
//! inbound spool (`spool.rs`) and the outbound queue (`jobs.rs`) both write them;
//! files half-written when the process stopped are swept at start-up
//! (`spool_sweep.rs`).
//!
//! The sealed bytes gather in memory up to 128 KiB before the file is created. A
//! message that ends before that (most mail) gets no file at all: its sealed
//! bytes go into its database row ([`Spooled::inline`]), committed with it, so
//! it costs no file to create, fsync, rename, read back and remove, and no
//! folder fsync; the commit that records it makes it durable. A larger message
//! costs one hand-off to the blocking pool (create, write, fsync, rename) at the
//! end. The folder's fsync, which makes a file's name durable, is left to
//! whoever records the message: the group commit (`group_commit.rs`) fsyncs the
//! folder once for every message in its batch, before the database commit, so
//! the 250 still comes after both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::io::Write as _;

use crate::Result;
use crate::crypto::{DataKey, Sealer};
use crate::ids::MessageId;
use crate::layout::BLOB_ORIGINAL;

/// A spool file being written. Dropped without [`finish`](Self::finish), it is
/// left as a `.tmp` file that start-up clears away (if it was created yet).
pub struct SpoolWriter {
    /// Created once the sealed bytes first pass [`FIRST`] (or at the end).
    file: Option<std::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    id: MessageId,
    key: DataKey,
    sealer: Sealer,
    out: Vec<u8>,
    size: u64,
}

/// Sealed bytes kept in memory before the file is created: a typical message
/// fits, so it is written in one go at the end.
const FIRST: usize = 128 * 1024;
/// Sealed bytes kept in memory between writes once the file exists.
const BUFFER: usize = 1 << 20;

/// A message spooled, not yet recorded in the database: on disk (the file
/// fsynced, its folder not yet: see [`Spooled::folder`]) or, when small, still
/// in memory for its row ([`Spooled::inline`]).
pub struct Spooled {
    pub id: MessageId,
    pub size: u64,
    key: DataKey,
    place: Place,
}

/// Where a spooled message's sealed bytes are.
enum Place {
    File(PathBuf),
    Row(Arc<[u8]>),
}

impl SpoolWriter {
    pub(crate) async fn create(dir: &Path) -> Result<Self> {
        let id = MessageId::generate();
        let dest = dir.join(id.as_str());
        let tmp = dir.join(format!("{id}.tmp"));
        // The folder exists from the first message on (one `stat` each, no
        // hand-off): admins and the sweeper look into it.
        if !dir.is_dir() {
            let folder = dir.to_owned();
            blocking(move || std::fs::create_dir_all(folder)).await?;
        }
        let key = DataKey::generate();
        let sealer = Sealer::new(&key, BLOB_ORIGINAL);
        Ok(Self {
            file: None,
            tmp,
            dest,
            id,
            key,
            sealer,
            out: Vec::with_capacity(64 * 1024),
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
        if self.out.len() >= if self.file.is_none() { FIRST } else { BUFFER } {
            let (file, tmp, out) = (self.file.take(), self.tmp.clone(), std::mem::take(&mut self.out));
            let (file, mut out) = blocking(move || {
                let mut file = match file {
                    Some(file) => file,
                    None => create(&tmp)?,
                };
                file.write_all(&out)?;
                Ok((file, out))
            })
            .await?;
            out.clear();
            self.file = Some(file);
            self.out = out;
        }
        Ok(())
    }

    /// Seals the end. A message that never needed its file stays in memory for
    /// its row. Otherwise writes what is left and fsyncs the file, then renames
    /// it to its final name: one blocking task for all of it. The folder is not
    /// fsynced here: whoever records the message does it ([`Spooled::folder`]).
    pub async fn finish(mut self) -> Result<Spooled> {
        self.sealer.finish(&mut self.out);
        if self.file.is_none() && self.out.len() <= FIRST {
            return Ok(Spooled {
                id: self.id,
                size: self.size,
                key: self.key,
                place: Place::Row(Arc::from(std::mem::take(&mut self.out))),
            });
        }
        let (file, tmp, dest, out) = (
            self.file.take(),
            self.tmp.clone(),
            self.dest.clone(),
            std::mem::take(&mut self.out),
        );
        blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => create(&tmp)?,
            };
            file.write_all(&out)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &dest)
        })
        .await?;
        Ok(Spooled {
            id: self.id,
            size: self.size,
            key: self.key,
            place: Place::File(self.dest),
        })
    }

    /// Throws the partial file away.
    pub async fn discard(self) {
        if let Some(file) = self.file {
            drop(file);
            let _ = tokio::fs::remove_file(&self.tmp).await;
        }
    }
}

/// Creates a file, and its folder when that is missing (the first message).
fn create(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::File::create(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().expect("spool files live in a folder"))?;
            std::fs::File::create(path)
        }
        other => other,
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| std::io::Error::other("spool writer task failed"))??)
}

/// Fsyncs folders, so the files renamed into them keep their names after a
/// power cut (one blocking task for all of them).
pub(crate) async fn sync_folders(folders: Vec<PathBuf>) -> Result<()> {
    if folders.is_empty() {
        return Ok(());
    }
    blocking(move || {
        for folder in folders {
            std::fs::File::open(&folder)?.sync_all()?;
        }
        Ok(())
    })
    .await
}

impl Spooled {
    pub async fn discard(self) {
        if let Place::File(path) = &self.place {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    pub(crate) fn key(&self) -> &DataKey {
        &self.key
    }

    /// The folder to fsync before the message is recorded (the group commit
    /// does it, once per batch); none for a message kept in its row.
    pub(crate) fn folder(&self) -> Option<PathBuf> {
        match &self.place {
            Place::File(path) => Some(path.parent().expect("spool files live in a folder").to_owned()),
            Place::Row(_) => None,
        }
    }

    /// The sealed bytes of a message small enough to be kept in its database
    /// row instead of a file (`None`: it is in its file).
    pub(crate) fn inline(&self) -> Option<Arc<[u8]>> {
        match &self.place {
            Place::File(_) => None,
            Place::Row(sealed) => Some(Arc::clone(sealed)),
        }
    }
}
