//! The inbound spool: a message is sealed into a local file as it arrives over SMTP
//! and fsynced, and only then recorded in the database; the gateway answers 250
//! after both. Secure messages are later sealed into the store
//! ([`Store::seal_spooled`](crate::Store::seal_spooled)); ordinary mail goes
//! straight to the outbound queue.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crypto::{DataKey, Sealer};
use crate::ids::{MessageId, UserId};
use crate::{Result, Store};

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
        tokio::fs::create_dir_all(dir).await?;
        let id = MessageId::generate();
        let dest = dir.join(id.as_str());
        let tmp = dir.join(format!("{id}.tmp"));
        let file = tokio::fs::File::create(&tmp).await?;
        let key = DataKey::generate();
        let sealer = Sealer::new(&key, crate::ingest::BLOB_ORIGINAL);
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

    /// Seals the end, fsyncs the file and its folder.
    pub async fn finish(mut self) -> Result<Spooled> {
        self.sealer.finish(&mut self.out);
        self.file.write_all(&self.out).await?;
        self.file.sync_all().await?;
        drop(self.file);
        tokio::fs::rename(&self.tmp, &self.dest).await?;
        sync_dir(self.dest.parent().expect("spool files live in a folder")).await?;
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

pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await?;
    Ok(())
}

/// Streams a file's bytes in 256 KiB pieces.
pub(crate) async fn file_stream(path: &Path) -> Result<BoxStream<'static, Result<Bytes>>> {
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            crate::Error::NotFound
        } else {
            e.into()
        }
    })?;
    Ok(file_chunks(file))
}

/// Streams an open file's bytes in 256 KiB pieces.
pub(crate) fn file_chunks(file: tokio::fs::File) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    })
    .boxed()
}

impl Store {
    /// Starts spooling an incoming message.
    pub async fn spool_writer(&self) -> Result<SpoolWriter> {
        SpoolWriter::create(&self.spool_in()).await
    }

    pub(crate) fn spool_in(&self) -> PathBuf {
        self.data_dir.join("spool").join("in")
    }

    pub(crate) fn spool_out(&self) -> PathBuf {
        self.data_dir.join("spool").join("out")
    }

    /// Records a spooled secure message from `sender`. When this returns, the
    /// message is durable: the gateway may answer 250.
    pub async fn accept_secure(
        &self,
        spooled: &Spooled,
        mail_from: &str,
        rcpt_to: &[String],
        sender: UserId,
    ) -> Result<()> {
        let wrapped = self.keys.wrap(spooled.key());
        sqlx::query(
            "INSERT INTO spool (id, mail_from, rcpt_to, sender_id, kek_id, wrapped_key, size, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(spooled.id.as_str())
        .bind(mail_from)
        .bind(serde_json::to_string(rcpt_to).expect("strings serialize"))
        .bind(sender.0)
        .bind(&wrapped.kek_id)
        .bind(&wrapped.wrapped)
        .bind(i64::try_from(spooled.size).unwrap_or(i64::MAX))
        .bind(self.now())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Records a spooled ordinary message for delivery, unchanged but for the
    /// `X-Sealpost-*` headers. When this returns, the gateway may answer 250.
    pub async fn accept_plain(&self, spooled: &Spooled, mail_from: &str, rcpt_to: &[String]) -> Result<()> {
        let wrapped = self.keys.wrap(spooled.key());
        let blob = format!("in/{}", spooled.id);
        let mut tx = self.write_tx().await?;
        for rcpt in rcpt_to {
            crate::jobs::insert_outbound(&mut tx, &blob, mail_from, rcpt, &wrapped, true, self.now()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Secure messages spooled but not yet sealed into the store.
    pub async fn pending_spool(&self) -> Result<Vec<MessageId>> {
        let rows = sqlx::query("SELECT id FROM spool ORDER BY received_at")
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| sqlx::Row::try_get::<String, _>(row, "id").ok())
            .filter_map(|id| MessageId::parse(&id))
            .collect())
    }
}
