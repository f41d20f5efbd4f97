//! The blob store: sealed message parts in object storage (local files by default).
//! Only ciphertext is ever handed to it. Local writes are fsynced, because a blob
//! must be on disk before the spool copy it replaces is removed.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::crypto::{DataKey, Opener, Sealer};
use crate::sealed_stream::{file_chunks_sized, open_sealed_stream};
use crate::{Error, Result};

/// Where sealed blobs live.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({:?})", self.local_root)
    }
}

impl Blobs {
    /// Opens `file://PATH` (relative paths are relative to the working folder).
    pub fn connect(url: &str) -> Result<Self> {
        let Some(path) = url.strip_prefix("file://") else {
            return Err(Error::invalid(format!(
                "blobs url {url:?} is not supported by this build: use file://PATH"
            )));
        };
        let root = PathBuf::from(path);
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let inner = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(inner),
            local_root: Some(root),
        })
    }

    /// Starts writing a sealed blob at `key`, sealing with `data_key` as blob `blob_no`.
    pub async fn create(&self, key: &str, data_key: &DataKey, blob_no: u32) -> Result<SealedBlobWriter> {
        let upload = self.inner.put_multipart(&ObjectPath::from(key)).await?;
        Ok(SealedBlobWriter {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, 4 << 20)),
            sealer: Some(Sealer::new(data_key, blob_no)),
            out: Vec::new(),
            blobs: self.clone(),
            key: key.to_owned(),
            plain_len: 0,
        })
    }

    /// Starts storing bytes that are already sealed (a spool file moving into the
    /// store); nothing is visible until [`RawBlobWriter::finish`].
    pub async fn create_raw(&self, key: &str) -> Result<RawBlobWriter> {
        let upload = self.inner.put_multipart(&ObjectPath::from(key)).await?;
        Ok(RawBlobWriter {
            writer: WriteMultipart::new_with_chunk_size(upload, 4 << 20),
            blobs: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Streams the plaintext of a sealed blob, verifying every chunk.
    pub async fn open(&self, key: &str, data_key: &DataKey, blob_no: u32) -> Result<BoxStream<'static, Result<Bytes>>> {
        let sealed = self.inner.get(&ObjectPath::from(key)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound,
            other => Error::Blob(other),
        })?;
        // object_store reads local files in 8 KiB pieces, each on the blocking
        // pool; reading them ourselves in 256 KiB pieces is several times faster.
        let size = sealed.meta.size;
        let chunks = match sealed.payload {
            GetResultPayload::File(file, _) => file_chunks_sized(tokio::fs::File::from_std(file), size),
            GetResultPayload::Stream(stream) => stream.map_err(Error::from).boxed(),
        };
        Ok(open_sealed_stream(chunks, Opener::new(data_key, blob_no)))
    }

    /// Reads a small sealed blob whole.
    pub async fn read_all(&self, key: &str, data_key: &DataKey, blob_no: u32) -> Result<Vec<u8>> {
        let mut stream = self.open(key, data_key, blob_no).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Deletes every blob under `prefix` (ignores those already gone).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let prefix = ObjectPath::from(prefix);
        let mut listing = self.inner.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            match self.inner.delete(&meta?.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The object store underneath (for backups, which copy sealed bytes as they are).
    pub(crate) fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    fn sync(&self, key: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

/// Writes plaintext into a sealed blob; nothing is visible until [`finish`](Self::finish).
pub struct SealedBlobWriter {
    writer: Option<WriteMultipart>,
    sealer: Option<Sealer>,
    out: Vec<u8>,
    blobs: Blobs,
    key: String,
    plain_len: u64,
}

impl SealedBlobWriter {
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.plain_len += data.len() as u64;
        self.sealer.as_mut().expect("not finished").update(data, &mut self.out);
        if self.out.len() >= 1 << 20 {
            let writer = self.writer.as_mut().expect("not finished");
            writer.wait_for_capacity(2).await?;
            writer.put(Bytes::from(std::mem::take(&mut self.out)));
        }
        Ok(())
    }

    /// Seals the last chunk, completes the upload and makes it durable.
    pub async fn finish(mut self) -> Result<u64> {
        self.sealer.take().expect("not finished").finish(&mut self.out);
        let mut writer = self.writer.take().expect("not finished");
        writer.put(Bytes::from(std::mem::take(&mut self.out)));
        writer.finish().await?;
        self.blobs.sync(&self.key)?;
        Ok(self.plain_len)
    }
}

/// Writes already-sealed bytes into a blob as they come.
pub struct RawBlobWriter {
    writer: WriteMultipart,
    blobs: Blobs,
    key: String,
}

impl RawBlobWriter {
    pub async fn put(&mut self, chunk: Bytes) -> Result<()> {
        self.writer.wait_for_capacity(2).await?;
        self.writer.put(chunk);
        Ok(())
    }

    /// Completes the upload and makes it durable.
    pub async fn finish(self) -> Result<()> {
        self.writer.finish().await?;
        self.blobs.sync(&self.key)
    }
}
