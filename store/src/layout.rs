//! Where the store keeps things, in one place: the blob number of each sealed
//! piece under a message's data key, the key of each piece in the blob store, and
//! the spool folders on local disk. A leaf: it names places, it reads nothing.

use std::path::PathBuf;

use crate::Store;
use crate::ids::MessageId;

/// Blob numbers under one message's data key (each must stay unique per key).
/// The spool file, sealed as it arrives, and the original in the blob store.
pub const BLOB_ORIGINAL: u32 = 0;
/// The `sealed_subject` column.
pub const BLOB_SUBJECT: u32 = 1;
/// The sealed metadata (headers, notice, text and HTML bodies, attachment list).
pub const BLOB_META: u32 = 2;
/// Attachment `n` is sealed as blob `BLOB_FIRST_PART + n`.
pub const BLOB_FIRST_PART: u32 = 3;
/// The recipients' copy of the original (`visible.rs`). The spool file (whose
/// chunks carry the unfiltered text) uses [`BLOB_ORIGINAL`]; a different number
/// keeps every nonce unique.
pub const BLOB_VISIBLE: u32 = u32::MAX;
/// The `sealed_notice` column: the sender's note, as JSON (`null` for none).
pub const BLOB_NOTICE: u32 = u32::MAX - 1;

/// One sealed piece of a message in the blob store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageBlob {
    /// The original as it arrived (messages sealed before the recipients' copy existed).
    Original,
    /// The recipients' copy of the original, without the fields they may not see.
    Visible,
    /// The sealed metadata.
    Meta,
    /// Attachment `n` (from 0).
    Part(usize),
}

impl MessageBlob {
    /// The blob number this piece is sealed under (unique per data key).
    pub fn number(self) -> u32 {
        match self {
            Self::Original => BLOB_ORIGINAL,
            Self::Visible => BLOB_VISIBLE,
            Self::Meta => BLOB_META,
            // At most `ingest::MAX_ATTACHMENTS` parts: far below u32's room.
            Self::Part(index) => BLOB_FIRST_PART.saturating_add(u32::try_from(index).unwrap_or(u32::MAX)),
        }
    }

    /// The key of this piece of message `id`: under [`message_prefix`].
    pub fn key(self, id: &MessageId) -> String {
        let prefix = message_prefix(id);
        match self {
            Self::Original => format!("{prefix}/original"),
            Self::Visible => format!("{prefix}/visible"),
            Self::Meta => format!("{prefix}/meta"),
            Self::Part(index) => format!("{prefix}/part-{index}"),
        }
    }
}

/// Every blob of message `id` lives under this prefix (shredding deletes it whole).
pub fn message_prefix(id: &MessageId) -> String {
    format!("messages/{id}")
}

/// The one blob of a small message (`bundle.rs`): its pieces, each sealed as
/// on its own, in one file. A message has either this or separate pieces.
pub fn bundle_key(id: &MessageId) -> String {
    format!("{}/sealed", message_prefix(id))
}

/// A spool folder under the data folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolDir {
    /// Messages as they arrive over SMTP.
    In,
    /// Mail composed here (notifications, bounces) waiting for delivery.
    Out,
}

impl SpoolDir {
    fn name(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }

    /// The name of spool file `id` relative to the spool root, as the outbound
    /// queue records it (`in/ID`, `out/ID`).
    pub fn entry(self, id: &MessageId) -> String {
        format!("{}/{id}", self.name())
    }
}

// Store-wide: every room finds its spool files here.
impl Store {
    /// The folder of `dir` (`DATA/spool/in`, `DATA/spool/out`).
    pub(crate) fn spool_dir(&self, dir: SpoolDir) -> PathBuf {
        self.data_dir.join("spool").join(dir.name())
    }

    /// The folder incoming messages are spooled in.
    pub(crate) fn spool_in(&self) -> PathBuf {
        self.spool_dir(SpoolDir::In)
    }

    /// The folder composed mail waits in.
    pub(crate) fn spool_out(&self) -> PathBuf {
        self.spool_dir(SpoolDir::Out)
    }

    /// The file of a spool entry named as [`SpoolDir::entry`] names it.
    pub(crate) fn spool_entry_path(&self, entry: &str) -> PathBuf {
        self.data_dir.join("spool").join(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_entries_keep_their_historic_shape() {
        // Blobs and queue rows already stored name these places: they must not move.
        let id = MessageId::parse("0123456789abcdef0123456789abcdef").expect("an id");
        let prefix = "messages/0123456789abcdef0123456789abcdef";
        assert_eq!(message_prefix(&id), prefix);
        assert_eq!(MessageBlob::Meta.key(&id), format!("{prefix}/meta"));
        assert_eq!(MessageBlob::Original.key(&id), format!("{prefix}/original"));
        assert_eq!(MessageBlob::Visible.key(&id), format!("{prefix}/visible"));
        assert_eq!(MessageBlob::Part(7).key(&id), format!("{prefix}/part-7"));
        assert_eq!(bundle_key(&id), format!("{prefix}/sealed"));
        assert_eq!(MessageBlob::Part(7).number(), 10);
        assert_eq!(MessageBlob::Meta.number(), 2);
        assert_eq!(MessageBlob::Visible.number(), u32::MAX);
        assert_eq!(SpoolDir::In.entry(&id), "in/0123456789abcdef0123456789abcdef");
        assert_eq!(SpoolDir::Out.entry(&id), "out/0123456789abcdef0123456789abcdef");
    }
}
