//! Staged uploads: files a signed-in person sends from the portal before the
//! message they belong to exists (the compose form, Secure Drop). An upload is
//! created with its length, filled in pieces at known offsets (so a cut
//! connection resumes where it stopped), sealed as it arrives, and owned by the
//! person who made it: to anyone else it does not exist.
//!
//! The contract between the portal's compose form and the upload engine:
//! `create` / `append` / `status` serve the resumable protocol, `stage_stream`
//! takes a whole file from a plain multipart form, `open` gives a finished
//! upload back as an [`OutgoingAttachment`] to put in a message, and `discard`
//! removes it once the message is accepted (or the person gives up).
//!
//! How it is kept: each upload has its own data key (wrapped in the `uploads`
//! row, like a message's) and its name is sealed under it. The content is one
//! sealed stream (`crypto.rs`) cut into pieces at chunk boundaries: every
//! `append` seals the whole 64 KiB chunks it receives into a new piece in the
//! blob store and records it (`upload_pieces`) with the offset it starts at, so
//! a connection cut at 60% keeps every whole chunk that arrived and the next
//! `append` continues the same stream from the last sealed byte. Nothing is
//! ever written in clear, and no more than a few MiB are held in memory.

mod pieces;
pub mod rules;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::Row;

use crate::accounts::User;
use crate::crypto::{DataKey, Opener, WrappedKey, open_all, random_hex, seal_all};
use crate::sealed_stream::open_sealed_stream;
use crate::{Error, Result, Uploads};

pub use rules::UploadRules;

/// Blob numbers under an upload's data key: its content, and its name.
const BLOB_CONTENT: u32 = 0;
const BLOB_NAME: u32 = 1;
/// The most unfinished uploads one person may have at once.
pub const MAX_PENDING: i64 = 200;
/// The longest file name kept (longer names are cut, keeping the extension).
const MAX_NAME: usize = 200;

/// A staged upload's id: random and unguessable, safe in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// Parses an id from a URL or form field; `None` when it can't be one.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(text.to_owned()))
    }

    fn generate() -> Self {
        Self(random_hex(16))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a staged upload stands.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub id: UploadId,
    /// The file's name as given (shown to its owner; sanitised when sent).
    pub file_name: String,
    /// The length announced at creation.
    pub length: u64,
    /// Bytes received and sealed so far; equal to `length` when complete.
    pub offset: u64,
}

impl UploadStatus {
    pub fn is_complete(&self) -> bool {
        self.offset == self.length
    }
}

/// A file to put in an outgoing message: a finished upload, or an attachment
/// of a message being forwarded. The body is decrypted as it is read.
pub struct OutgoingAttachment {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for OutgoingAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingAttachment")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// An upload's row, with its data key unwrapped.
struct Staged {
    status: UploadStatus,
    key: DataKey,
}

/// A file name as kept: the last path segment (browsers may send
/// `C:\fakepath\x.pdf`), without control characters, at most [`MAX_NAME`] long.
pub fn clean_file_name(name: &str) -> Result<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = last.chars().filter(|c| !c.is_control()).collect();
    clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        return Err(Error::invalid("The file has no name."));
    }
    if clean.chars().count() > MAX_NAME {
        let ext = rules::extension(&clean).map(|e| format!(".{e}")).unwrap_or_default();
        clean = clean.chars().take(MAX_NAME - ext.chars().count()).collect::<String>() + &ext;
    }
    Ok(clean)
}

impl Uploads<'_> {
    /// Starts an upload of `length` bytes named `file_name` for `owner`.
    /// A type not accepted or a file larger than a message may carry is
    /// refused here, before any byte is sent.
    pub async fn create(&self, owner: &User, file_name: &str, length: u64) -> Result<UploadStatus> {
        let file_name = clean_file_name(file_name)?;
        let rules = &self.policy().uploads;
        rules.check_type(&file_name)?;
        rules.check_size(&file_name, length)?;
        let pending: i64 = sqlx::query("SELECT COUNT(*) AS n FROM uploads WHERE owner_id = $1 AND received < length")
            .bind(owner.id.0)
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
        if pending >= MAX_PENDING {
            return Err(Error::invalid(format!(
                "You have {MAX_PENDING} unfinished uploads: finish or remove some first."
            )));
        }
        let id = UploadId::generate();
        let key = DataKey::generate();
        self.insert(owner, &id, &key, &file_name, length, 0).await?;
        Ok(UploadStatus {
            id,
            file_name,
            length,
            offset: 0,
        })
    }

    async fn insert(
        &self,
        owner: &User,
        id: &UploadId,
        key: &DataKey,
        name: &str,
        length: u64,
        received: u64,
    ) -> Result<()> {
        let wrapped = self.keys.wrap(key);
        let now = self.now();
        sqlx::query(
            "INSERT INTO uploads (id, owner_id, kek_id, wrapped_key, sealed_name, length, received, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(id.as_str())
        .bind(owner.id.0)
        .bind(&wrapped.kek_id)
        .bind(wrapped.wrapped)
        .bind(seal_all(key, BLOB_NAME, name.as_bytes()))
        .bind(to_i64(length)?)
        .bind(to_i64(received)?)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Where `owner`'s upload `id` stands (`NotFound` for anyone else's).
    pub async fn status(&self, owner: &User, id: &UploadId) -> Result<UploadStatus> {
        Ok(self.load(owner, id).await?.status)
    }

    async fn load(&self, owner: &User, id: &UploadId) -> Result<Staged> {
        let row = sqlx::query(
            "SELECT kek_id, wrapped_key, sealed_name, length, received FROM uploads WHERE id = $1 AND owner_id = $2",
        )
        .bind(id.as_str())
        .bind(owner.id.0)
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NotFound)?;
        let key = self.keys.unwrap(&WrappedKey {
            kek_id: row.try_get("kek_id")?,
            wrapped: row.try_get("wrapped_key")?,
        })?;
        let name = open_all(&key, BLOB_NAME, &row.try_get::<Vec<u8>, _>("sealed_name")?)?;
        let count = |column| -> Result<u64> {
            u64::try_from(row.try_get::<i64, _>(column)?).map_err(|_| Error::Corrupt("upload length"))
        };
        Ok(Staged {
            status: UploadStatus {
                id: id.clone(),
                file_name: String::from_utf8(name).map_err(|_| Error::Corrupt("upload name"))?,
                length: count("length")?,
                offset: count("received")?,
            },
            key,
        })
    }

    /// Appends `body` at `offset` (which must equal the upload's offset);
    /// returns the new status. A body cut short keeps what was sealed: every
    /// whole chunk that arrived, so the offset may end a little before the last
    /// byte received (the resumable protocol asks again where it stands).
    pub async fn append(
        &self,
        owner: &User,
        id: &UploadId,
        offset: u64,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<UploadStatus> {
        let staged = self.load(owner, id).await?;
        if offset != staged.status.offset {
            return Err(Error::Conflict(format!(
                "The upload stands at byte {}, not {offset}.",
                staged.status.offset
            )));
        }
        self.append_piece(staged, body).await
    }

    /// Stages a whole file of unknown length from a plain multipart form. The
    /// type is checked first, the size as it arrives.
    pub async fn stage_stream(
        &self,
        owner: &User,
        file_name: &str,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<UploadStatus> {
        let file_name = clean_file_name(file_name)?;
        self.policy().uploads.check_type(&file_name)?;
        let id = UploadId::generate();
        let key = DataKey::generate();
        let length = self.seal_whole(&id, &key, &file_name, body).await?;
        self.insert(owner, &id, &key, &file_name, length, length).await?;
        sqlx::query("INSERT INTO upload_pieces (upload_id, start, blob_key) VALUES ($1, 0, $2)")
            .bind(id.as_str())
            .bind(pieces::whole_key(&id))
            .execute(&self.db)
            .await?;
        Ok(UploadStatus {
            id,
            file_name,
            length,
            offset: length,
        })
    }

    /// A finished upload of `owner`'s, to put in a message.
    pub async fn open(&self, owner: &User, id: &UploadId) -> Result<OutgoingAttachment> {
        let staged = self.load(owner, id).await?;
        if !staged.status.is_complete() {
            return Err(Error::invalid("This upload is not finished yet."));
        }
        let keys: Vec<String> = sqlx::query("SELECT blob_key FROM upload_pieces WHERE upload_id = $1 ORDER BY start")
            .bind(id.as_str())
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(|row| row.try_get("blob_key"))
            .collect::<std::result::Result<_, _>>()?;
        let blobs = self.blobs.clone();
        let sealed = stream::iter(keys)
            .then(move |key| {
                let blobs = blobs.clone();
                async move { blobs.raw_stream(&key).await }
            })
            .try_flatten()
            .boxed();
        Ok(OutgoingAttachment {
            content_type: rules::content_type(&staged.status.file_name).to_owned(),
            file_name: staged.status.file_name,
            size: staged.status.length,
            body: open_sealed_stream(sealed, Opener::new(&staged.key, BLOB_CONTENT)),
        })
    }

    /// Removes `owner`'s upload `id` (its sealed data too).
    pub async fn discard(&self, owner: &User, id: &UploadId) -> Result<()> {
        if !self.delete_row(id, Some(owner), None).await? {
            return Err(Error::NotFound);
        }
        self.blobs.delete_prefix(&pieces::prefix(id)).await
    }

    /// Deletes an upload's rows (its owner's, or one idle since `idle_since`);
    /// whether there was one.
    async fn delete_row(&self, id: &UploadId, owner: Option<&User>, idle_since: Option<i64>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query("SELECT owner_id, updated_at FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(found) = found else { return Ok(false) };
        let owned = owner.is_none_or(|o| found.try_get::<i64, _>("owner_id").is_ok_and(|id| id == o.id.0));
        let idle = idle_since.is_none_or(|t| found.try_get::<i64, _>("updated_at").is_ok_and(|u| u < t));
        if !(owned && idle) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM upload_pieces WHERE upload_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes uploads nobody has touched for the configured time
    /// (`[uploads] abandon_after`): unfinished ones the person gave up on,
    /// and finished ones no message took. Returns how many went.
    pub async fn sweep_abandoned(&self) -> Result<usize> {
        let before = self.now() - self.policy().uploads.abandon_after;
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(before)
            .fetch_all(&self.db)
            .await?;
        let mut swept = 0;
        for row in rows {
            let id = UploadId(row.try_get("id")?);
            if self.delete_row(&id, None, Some(before)).await? {
                self.blobs.delete_prefix(&pieces::prefix(&id)).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }
}

fn to_i64(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::invalid("The file is too large."))
}
