//! Writing an upload's content: each `append` seals what it receives into one
//! new piece in the blob store, continuing the upload's sealed stream from the
//! chunk it stopped at, and records the piece only once it is durable and the
//! upload still stands where the piece began (two appends racing on one upload:
//! the first to finish wins, the other's piece is thrown away).

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::{BLOB_CONTENT, Staged, UploadId, UploadStatus, to_i64};
use crate::blobs::RawBlobWriter;
use crate::crypto::{CHUNK, DataKey, Sealer, random_hex};
use crate::{Error, Result, Uploads};

/// Sealed bytes gathered before they are handed to the blob store.
const FLUSH_AT: usize = 1 << 20;

/// Every piece of upload `id` lives under this prefix.
pub(super) fn prefix(id: &UploadId) -> String {
    format!("uploads/{id}")
}

/// The one piece of a file staged whole from a form.
pub(super) fn whole_key(id: &UploadId) -> String {
    format!("{}/whole", prefix(id))
}

/// How a body ended.
enum Ended {
    /// Every announced byte arrived.
    Complete,
    /// The body ended early: what arrived in whole chunks is kept.
    Short,
    /// The connection broke: what arrived in whole chunks is kept.
    Broken,
    /// More bytes than announced, or than a message may carry.
    TooLong,
}

/// Seals a body into `writer`, at most `room` bytes; returns how it ended and
/// the plaintext bytes fed.
async fn seal_into(
    writer: &mut RawBlobWriter,
    sealer: &mut Sealer,
    mut body: BoxStream<'static, std::io::Result<Bytes>>,
    room: u64,
) -> Result<(Ended, u64)> {
    let mut out = Vec::with_capacity(FLUSH_AT + CHUNK);
    let mut fed = 0u64;
    let ended = loop {
        match body.next().await {
            Some(Ok(piece)) => {
                // What fits is kept; what goes past the room is refused.
                let fits = usize::try_from(room - fed).unwrap_or(usize::MAX).min(piece.len());
                fed += fits as u64;
                sealer.update(&piece[..fits], &mut out);
                if out.len() >= FLUSH_AT {
                    writer
                        .put(Bytes::from(std::mem::replace(
                            &mut out,
                            Vec::with_capacity(FLUSH_AT + CHUNK),
                        )))
                        .await?;
                }
                if fits < piece.len() {
                    break Ended::TooLong;
                }
            }
            // A broken connection is not an error of ours: keep what arrived.
            Some(Err(_)) => break Ended::Broken,
            None if fed == room => break Ended::Complete,
            None => break Ended::Short,
        }
    };
    if !out.is_empty() {
        writer.put(Bytes::from(out)).await?;
    }
    Ok((ended, fed))
}

impl Uploads<'_> {
    /// Seals `body` as the piece that continues `staged` from its offset.
    pub(super) async fn append_piece(
        &self,
        staged: Staged,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<UploadStatus> {
        let Staged { mut status, key } = staged;
        let start = status.offset;
        let room = status.length - start;
        if start % CHUNK as u64 != 0 && room > 0 {
            return Err(Error::Corrupt("upload offset between chunks"));
        }
        let blob_key = format!("{}/{start:016x}-{}", prefix(&status.id), random_hex(4));
        let mut writer = self.blobs.create_raw(&blob_key).await?;
        let mut sealer = if start == 0 {
            Sealer::new(&key, BLOB_CONTENT)
        } else {
            Sealer::resume(&key, BLOB_CONTENT, start / CHUNK as u64)
        };
        let sealed_from = sealer.chunks_sealed();
        let (ended, fed) = match seal_into(&mut writer, &mut sealer, body, room).await {
            Ok(done) => done,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        let end = match ended {
            Ended::Complete => {
                let mut last = Vec::with_capacity(CHUNK + 32);
                sealer.finish(&mut last);
                writer.put(Bytes::from(last)).await?;
                start + fed
            }
            Ended::Short | Ended::Broken | Ended::TooLong => {
                start + (sealer.chunks_sealed() - sealed_from) * CHUNK as u64
            }
        };
        // Only a complete upload may be empty; a piece that sealed nothing is
        // not kept (the next append starts the same chunk again).
        if end == start && !matches!(ended, Ended::Complete) {
            writer.abort().await?;
        } else {
            writer.finish().await?;
            if !self.record_piece(&status.id, start, end, &blob_key).await? {
                self.blobs.delete(&blob_key).await?;
                return Err(Error::Conflict(
                    "Another transfer to this upload moved it on first.".into(),
                ));
            }
            status.offset = end;
        }
        if matches!(ended, Ended::TooLong) {
            return Err(Error::invalid(format!(
                "More bytes were sent than the {} announced for this upload.",
                status.length
            )));
        }
        Ok(status)
    }

    /// Records a durable piece if the upload still stands at `start`.
    async fn record_piece(&self, id: &UploadId, start: u64, end: u64, blob_key: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query("UPDATE uploads SET received = $1, updated_at = $2 WHERE id = $3 AND received = $4")
            .bind(to_i64(end)?)
            .bind(self.now())
            .bind(id.as_str())
            .bind(to_i64(start)?)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO upload_pieces (upload_id, start, blob_key) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(to_i64(start)?)
            .bind(blob_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Seals a whole body of unknown length as one piece (a plain form's
    /// file); refuses one larger than a message may carry. Returns its length.
    pub(super) async fn seal_whole(
        &self,
        id: &UploadId,
        key: &DataKey,
        file_name: &str,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<u64> {
        let max = self.policy().uploads.max_message_size;
        let mut writer = self.blobs.create_raw(&whole_key(id)).await?;
        let mut sealer = Sealer::new(key, BLOB_CONTENT);
        // One byte of room past the limit tells "exactly the limit" from "over".
        let outcome = seal_into(&mut writer, &mut sealer, body, max.saturating_add(1)).await;
        let refused = match outcome {
            // Ended before the room ran out: at most `max` bytes.
            Ok((Ended::Short, fed)) => Ok(fed),
            Ok((Ended::Complete | Ended::TooLong, _)) => Err(self.policy().uploads.too_large(file_name)),
            Ok((Ended::Broken, _)) => Err(Error::invalid("The file did not arrive whole; please send it again.")),
            Err(error) => Err(error),
        };
        let fed = match refused {
            Ok(fed) => fed,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        let mut last = Vec::with_capacity(CHUNK + 32);
        sealer.finish(&mut last);
        writer.put(Bytes::from(last)).await?;
        writer.finish().await?;
        Ok(fed)
    }
}
