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
//! SKELETON: the signatures are the agreed contract; the bodies are filled in
//! by the uploads work (issue 11, item 4).

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::accounts::User;
use crate::{Error, Result, Uploads};

/// A staged upload's id: random and unguessable, safe in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// Parses an id from a URL or form field; `None` when it can't be one.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(text.to_owned()))
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

const NOT_YET: Error = Error::Forbidden("staged uploads are not built yet");

impl Uploads<'_> {
    /// Starts an upload of `length` bytes named `file_name` for `owner`.
    pub async fn create(&self, owner: &User, file_name: &str, length: u64) -> Result<UploadStatus> {
        let _ = (owner, file_name, length);
        Err(NOT_YET)
    }

    /// Where `owner`'s upload `id` stands (`NotFound` for anyone else's).
    pub async fn status(&self, owner: &User, id: &UploadId) -> Result<UploadStatus> {
        let _ = (owner, id);
        Err(NOT_YET)
    }

    /// Appends `body` at `offset` (which must equal the upload's offset);
    /// returns the new status. A body cut short keeps what was sealed.
    pub async fn append(
        &self,
        owner: &User,
        id: &UploadId,
        offset: u64,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<UploadStatus> {
        let _ = (owner, id, offset, body);
        Err(NOT_YET)
    }

    /// Stages a whole file of unknown length from a plain multipart form.
    pub async fn stage_stream(
        &self,
        owner: &User,
        file_name: &str,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<UploadStatus> {
        let _ = (owner, file_name, body);
        Err(NOT_YET)
    }

    /// A finished upload of `owner`'s, to put in a message.
    pub async fn open(&self, owner: &User, id: &UploadId) -> Result<OutgoingAttachment> {
        let _ = (owner, id);
        Err(NOT_YET)
    }

    /// Removes `owner`'s upload `id` (its sealed data too).
    pub async fn discard(&self, owner: &User, id: &UploadId) -> Result<()> {
        let _ = (owner, id);
        Err(NOT_YET)
    }

    /// Whether `sender` may send these files (name, size) to `recipients`:
    /// the accepted types, the size per message, and what free accounts may
    /// send outside the practice that invited them. `Err` says why, naming
    /// the file and the rule, in words for the sender.
    pub async fn check_outgoing(&self, sender: &User, recipients: &[String], files: &[(String, u64)]) -> Result<()> {
        let _ = (sender, recipients, files);
        Ok(())
    }
}
