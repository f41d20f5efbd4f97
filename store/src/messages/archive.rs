//! What the portal's "Download all" and in-page viewers read: the list of a
//! message's attachments without opening the message (no read mark), and one
//! attachment opened under an audit action of the caller's choosing (a viewer
//! or a thumbnail is not a download).

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::accounts::User;
use crate::audit::AuditEvent;
use crate::ids::MessageId;
use crate::ingest::{AttachmentMeta, SealedMeta};
use crate::{Error, Mail, Result};

/// Why an attachment is read, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentUse {
    /// Saved by the reader, alone or in "Download all" (`attachment.download`).
    Download,
    /// Shown in the page by a viewer (`attachment.view`).
    View,
    /// A small picture in the attachment list (`attachment.thumbnail`).
    Thumbnail,
}

impl AttachmentUse {
    fn action(self) -> &'static str {
        match self {
            Self::Download => "attachment.download",
            Self::View => "attachment.view",
            Self::Thumbnail => "attachment.thumbnail",
        }
    }
}

impl Mail<'_> {
    /// The attachments of a message `user` may see, in their order; not found
    /// for anyone else. Nothing is marked read and nothing is audited: the
    /// bytes are read (and audited) by [`Mail::open_attachment`] and
    /// [`Mail::open_attachment_for`].
    pub async fn attachment_list(&self, user: &User, id: &MessageId) -> Result<Vec<AttachmentMeta>> {
        let (row, _) = self.authorized(user, id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_piece(id, &key, crate::layout::MessageBlob::Meta)
            .await?;
        let meta: SealedMeta = serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)?;
        Ok(meta.attachments)
    }

    /// One attachment's bytes for a viewer or a thumbnail, audited as `why`.
    pub async fn open_attachment_for(
        &self,
        user: &User,
        id: &MessageId,
        index: usize,
        client: &str,
        why: AttachmentUse,
    ) -> Result<(AttachmentMeta, BoxStream<'static, Result<Bytes>>)> {
        let (row, _) = self.authorized(user, id).await?;
        let key = self.keys.unwrap(&row.key)?;
        let bytes = self
            .blobs
            .read_piece(id, &key, crate::layout::MessageBlob::Meta)
            .await?;
        let meta: SealedMeta = serde_json::from_slice(&bytes).map_err(|_| Error::Crypto)?;
        let attachment = meta.attachments.get(index).cloned().ok_or(Error::NotFound)?;
        let stream = self
            .blobs
            .open_piece(id, &key, crate::layout::MessageBlob::Part(index))
            .await?;
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: why.action(),
            object: &format!("message:{id}/attachment:{index}"),
            client,
        })
        .await?;
        Ok((attachment, stream))
    }
}
