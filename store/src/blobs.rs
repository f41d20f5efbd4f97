//! The blob store: sealed message parts in object storage (local files by default,
//! or an S3-compatible store: `s3://bucket/prefix`). Only ciphertext is ever handed
//! to it. Local writes are fsynced, because a blob must be on disk before the spool
//! copy it replaces is removed; an S3 upload is durable once it completes. Large
//! blobs stream as multipart uploads with at most a few parts in memory.
//!
//! A sealed message is stored in one of two layouts (`layout.rs`): a small one
//! as one bundle (`bundle.rs`), a large one as a blob per piece. Readers ask
//! for a piece ([`Blobs::open_piece`], [`Blobs::read_piece`]) and get it from
//! whichever layout the message has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::crypto::{DataKey, Opener, Sealer};
use crate::ids::MessageId;
use crate::layout::MessageBlob;
use crate::sealed_stream::{file_chunks_sized, open_sealed_stream};
use crate::{Error, Result};

/// Where sealed blobs live.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    /// Bytes per part of a multipart upload (S3 wants at least 5 MiB but the last).
    part_size: usize,
}

/// Parts of a multipart upload to S3: 5 MiB, S3's minimum for all but the last.
const S3_PART_SIZE: usize = 5 << 20;
/// Parts of one upload sent at once while the next fills: one keeps a large
/// message's seal (two uploads side by side: the recipients' copy and the
/// attachment) within the 100 MB the 2 GB bench allows (`bench/scale-out`).
const PARTS_IN_FLIGHT: usize = 1;
/// Parts written to local files.
const LOCAL_PART_SIZE: usize = 4 << 20;

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({:?})", self.local_root)
    }
}

impl Blobs {
    /// Opens `file://PATH` (relative paths are relative to the working folder) or
    /// `s3://BUCKET[/PREFIX][?KEY=VALUE&…]`: an S3-compatible store configured by
    /// the usual `AWS_*` environment variables, then by the query's keys (any key
    /// object_store's S3 backend knows: `endpoint`, `region`, `allow_http`,
    /// `access_key_id`, `secret_access_key`, …).
    pub fn connect(url: &str) -> Result<Self> {
        if url.starts_with("s3://") {
            return Self::connect_s3(url);
        }
        let Some(path) = url.strip_prefix("file://") else {
            return Err(Error::invalid(
                "the blobs url is not supported: use file://PATH or s3://BUCKET/PREFIX",
            ));
        };
        let root = PathBuf::from(path);
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let inner = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(inner),
            local_root: Some(root),
            part_size: LOCAL_PART_SIZE,
        })
    }

    fn connect_s3(url: &str) -> Result<Self> {
        // Never echo the URL: its query may carry a secret key.
        let parsed = url::Url::parse(url).map_err(|_| Error::invalid("the blobs url is not a valid s3:// URL"))?;
        let bucket = parsed.host_str().unwrap_or_default();
        if bucket.len() < 3 {
            return Err(Error::invalid("the blobs url names no bucket (s3://BUCKET/PREFIX)"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // object_store gives a request 30 s. Completing a multipart upload of
        // gigabytes, or one 5 MiB part on a slow uplink, can take longer; a
        // request that times out is retried and the upload may be lost, so
        // the default here is 5 minutes (AWS_TIMEOUT or `?timeout=` set it).
        if std::env::var_os("AWS_TIMEOUT").is_none() {
            builder = builder.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "300s");
        }
        for (key, value) in parsed.query_pairs() {
            let key = key.to_ascii_lowercase();
            let config: AmazonS3ConfigKey = key
                .parse()
                .or_else(|_| format!("aws_{key}").parse())
                .map_err(|_| Error::invalid(format!("the blobs url has an unknown S3 setting {key:?}")))?;
            builder = builder.with_config(config, value.into_owned());
        }
        let s3 = builder
            .build()
            .map_err(|e| Error::invalid(format!("the S3 blob store cannot be set up: {e}")))?;
        let prefix = parsed.path().trim_matches('/');
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            inner,
            local_root: None,
            part_size: S3_PART_SIZE,
        })
    }

    /// Starts writing a sealed blob at `key`, sealing with `data_key` as blob `blob_no`.
    /// The upload starts with the first megabyte; a smaller blob on local
    /// files is written at `finish` in one go (see there).
    pub async fn create(&self, key: &str, data_key: &DataKey, blob_no: u32) -> Result<SealedBlobWriter> {
        Ok(SealedBlobWriter {
            writer: None,
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
            writer: WriteMultipart::new_with_chunk_size(upload, self.part_size),
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

    /// Streams a blob's bytes as stored (sealed), for a caller that opens them
    /// itself (a staged upload kept as several pieces of one sealed stream).
    pub(crate) async fn raw_stream(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let sealed = self.inner.get(&ObjectPath::from(key)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound,
            other => Error::Blob(other),
        })?;
        let size = sealed.meta.size;
        Ok(match sealed.payload {
            GetResultPayload::File(file, _) => file_chunks_sized(tokio::fs::File::from_std(file), size),
            GetResultPayload::Stream(stream) => stream.map_err(Error::from).boxed(),
        })
    }

    /// Streams the plaintext of one piece of message `id`, verifying every
    /// chunk, from its bundle if it has one, else from the piece's own blob.
    pub async fn open_piece(
        &self,
        id: &MessageId,
        data_key: &DataKey,
        piece: MessageBlob,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        if let Some(bundle) = self.read_bundle(id).await? {
            let sealed = crate::bundle::piece(&bundle, piece.number())?.ok_or(Error::NotFound)?;
            let chunks = futures::stream::iter([Ok(sealed)]).boxed();
            return Ok(open_sealed_stream(chunks, Opener::new(data_key, piece.number())));
        }
        self.open(&piece.key(id), data_key, piece.number()).await
    }

    /// Reads one small piece of message `id` whole (as [`open_piece`](Self::open_piece)).
    pub async fn read_piece(&self, id: &MessageId, data_key: &DataKey, piece: MessageBlob) -> Result<Vec<u8>> {
        if let Some(bundle) = self.read_bundle(id).await? {
            let sealed = crate::bundle::piece(&bundle, piece.number())?.ok_or(Error::NotFound)?;
            return crate::crypto::open_all(data_key, piece.number(), &sealed);
        }
        self.read_all(&piece.key(id), data_key, piece.number()).await
    }

    /// The bundle of message `id`, read whole (a bundle is small by design),
    /// or `None` when the message is stored as separate pieces.
    async fn read_bundle(&self, id: &MessageId) -> Result<Option<Bytes>> {
        let key = crate::layout::bundle_key(id);
        if let Some(root) = &self.local_root {
            // One hand-off to the blocking pool: open, read, close.
            let path = root.join(&key);
            let read = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|_| std::io::Error::other("blob reader task failed"))?;
            return match read {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        match self.inner.get(&ObjectPath::from(key)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Where blob `key` lives on local disk (`None` for a remote store), for a
    /// caller that writes it from a blocking thread with [`write_new_file`].
    pub(crate) fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| root.join(key))
    }

    /// Stores a whole small blob of sealed bytes durably: on local files
    /// written, fsynced and renamed into place (then its folder fsynced) in one
    /// blocking task; elsewhere (S3) one PUT, durable when it returns.
    pub(crate) async fn put_whole(&self, key: &str, sealed: Vec<u8>) -> Result<()> {
        if let Some(path) = self.local_path(key) {
            return write_small(path, sealed).await;
        }
        self.inner.put(&ObjectPath::from(key), PutPayload::from(sealed)).await?;
        Ok(())
    }

    /// Starts storing a piece whose bytes the caller has sealed. On local
    /// files it is not durable until [`sync_pieces`](Self::sync_pieces): a
    /// message's pieces are fsynced together, their folder once.
    pub(crate) fn create_piece(&self, key: &str) -> PieceWriter {
        PieceWriter {
            writer: None,
            out: Vec::new(),
            blobs: self.clone(),
            key: key.to_owned(),
        }
    }

    /// Makes pieces written with [`create_piece`](Self::create_piece) durable:
    /// each file fsynced, then each folder once, in one blocking task.
    pub(crate) async fn sync_pieces(&self, keys: Vec<String>) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut dirs = std::collections::BTreeSet::new();
            for key in keys {
                let path = root.join(key);
                std::fs::File::open(&path)?.sync_all()?;
                if let Some(dir) = path.parent() {
                    dirs.insert(dir.to_owned());
                }
            }
            for dir in dirs {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|_| std::io::Error::other("blob sync task failed"))??;
        Ok(())
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

    /// Deletes one blob (ignores one already gone).
    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
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

    /// The messages that have blobs, by id, each with when its newest blob was
    /// written (Unix seconds), for the orphan sweep (`spool_sweep.rs`).
    pub(crate) async fn message_ids(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let mut ids = std::collections::BTreeMap::new();
        let mut listing = self.inner.list(Some(&ObjectPath::from("messages")));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(id) = meta.location.parts().nth(1) else {
                continue;
            };
            let at = meta.last_modified.timestamp();
            let newest = ids.entry(id.as_ref().to_owned()).or_insert(at);
            *newest = (*newest).max(at);
        }
        Ok(ids)
    }

    /// Removes the staging files (`NAME#DIGITS`) of local writes a crash cut
    /// short, once they are `grace` old: listings skip them, so nothing else
    /// ever would. Nothing to do for other stores (an unfinished S3 upload is
    /// the bucket's lifecycle rule's to expire).
    pub(crate) fn clear_staging(&self, grace: std::time::Duration) -> Result<usize> {
        let Some(root) = &self.local_root else { return Ok(0) };
        let mut removed = 0;
        let mut dirs = vec![root.join("messages")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(path);
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| crate::clock::real_age(m) >= grace);
                if old && entry.file_name().to_string_lossy().contains('#') && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
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
            flush_part(&self.blobs, &self.key, &mut self.writer, &mut self.out).await?;
        }
        Ok(())
    }

    /// Seals the last chunk, completes the upload and makes it durable.
    pub async fn finish(mut self) -> Result<u64> {
        self.sealer.take().expect("not finished").finish(&mut self.out);
        let out = std::mem::take(&mut self.out);
        let Some(mut writer) = self.writer.take() else {
            if let Some(root) = &self.blobs.local_root {
                // Under a megabyte, on local files (a message's meta, its text
                // part, a small copy): written, fsynced and renamed into place in
                // one blocking task, instead of the object store's several
                // hand-offs and a staging file each (issue 14's profile).
                write_small(root.join(&self.key), out).await?;
                return Ok(self.plain_len);
            }
            // Elsewhere (S3): one PUT, durable when it returns.
            self.blobs
                .inner
                .put(&ObjectPath::from(self.key.as_str()), PutPayload::from(out))
                .await?;
            return Ok(self.plain_len);
        };
        writer.put(Bytes::from(out));
        writer.finish().await?;
        self.blobs.sync(&self.key)?;
        Ok(self.plain_len)
    }
}

/// Writes a whole small blob at `path` in one blocking task (see [`write_file`]).
async fn write_small(path: PathBuf, bytes: Vec<u8>) -> Result<()> {
    write_blocking(path, bytes, true).await
}

async fn write_blocking(path: PathBuf, bytes: Vec<u8>, durable: bool) -> Result<()> {
    tokio::task::spawn_blocking(move || write_file(&path, &bytes, durable))
        .await
        .map_err(|_| std::io::Error::other("blob writer task failed"))??;
    Ok(())
}

/// Writes a whole blob at `path` (from a blocking thread): a staging file
/// beside it (named as the object store names its own, `NAME#DIGITS`, which
/// listings skip) renamed into place; `durable`: the file fsynced before the
/// rename and the folder after it.
pub(crate) fn write_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().expect("a blob lives in a folder");
    std::fs::create_dir_all(dir)?;
    let mut staging = path.to_owned().into_os_string();
    staging.push(format!("#{}", u64::from_le_bytes(crate::crypto::random_bytes())));
    let mut file = std::fs::File::create(&staging)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&staging, path)?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a new blob at `path` durably (from a blocking thread), in place:
/// for a blob nothing names until a later commit (a sealed message's bundle:
/// readers find it through the message's row), so no reader can see it half
/// written and no staging name is needed. Without the rename after the file's
/// fsync, the folder's fsync finds nothing more to write: one trip to the disk
/// per blob, not two. A file left at `path` by an attempt that did not commit
/// (a crash, a lapsed claim) is unlinked first, so each attempt writes a file
/// of its own.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().expect("a blob lives in a folder");
    std::fs::create_dir_all(dir)?;
    let create = || std::fs::File::create_new(path);
    let mut file = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            create()?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::File::open(dir)?.sync_all()
}

/// Writes bytes the caller sealed into a blob; nothing is visible until
/// [`finish`](Self::finish), and on local files nothing is durable until
/// [`Blobs::sync_pieces`].
pub(crate) struct PieceWriter {
    writer: Option<WriteMultipart>,
    out: Vec<u8>,
    blobs: Blobs,
    key: String,
}

impl PieceWriter {
    pub async fn write(&mut self, sealed: &[u8]) -> Result<()> {
        self.out.extend_from_slice(sealed);
        if self.out.len() >= 1 << 20 {
            flush_part(&self.blobs, &self.key, &mut self.writer, &mut self.out).await?;
        }
        Ok(())
    }

    /// Completes the blob; returns its key (for [`Blobs::sync_pieces`]).
    pub async fn finish(mut self) -> Result<String> {
        let out = std::mem::take(&mut self.out);
        match self.writer.take() {
            Some(mut writer) => {
                writer.put(Bytes::from(out));
                writer.finish().await?;
            }
            None => match self.blobs.local_path(&self.key) {
                Some(path) => write_blocking(path, out, false).await?,
                None => {
                    self.blobs
                        .inner
                        .put(&ObjectPath::from(self.key.as_str()), PutPayload::from(out))
                        .await?;
                }
            },
        }
        Ok(self.key)
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
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.writer.put(chunk);
        Ok(())
    }

    /// Completes the upload and makes it durable.
    pub async fn finish(self) -> Result<()> {
        self.writer.finish().await?;
        self.blobs.sync(&self.key)
    }

    /// Gives the upload up: nothing of it stays in the store.
    pub async fn abort(self) -> Result<()> {
        self.writer.abort().await?;
        Ok(())
    }
}

/// Sends `out` on to a streaming upload (started on the first call), once
/// fewer than [`PARTS_IN_FLIGHT`] parts are on their way.
async fn flush_part(blobs: &Blobs, key: &str, writer: &mut Option<WriteMultipart>, out: &mut Vec<u8>) -> Result<()> {
    if writer.is_none() {
        let upload = blobs.inner.put_multipart(&ObjectPath::from(key)).await?;
        *writer = Some(WriteMultipart::new_with_chunk_size(upload, blobs.part_size));
    }
    let writer = writer.as_mut().expect("started above");
    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
    writer.put(Bytes::from(std::mem::take(out)));
    Ok(())
}

#[cfg(test)]
#[path = "blobs_tests.rs"]
mod tests;
