//! A message's attachments as its page lists them: name, size and, where the
//! type allows, what can be shown in the page instead of downloaded.

use store::ingest::AttachmentMeta;

use crate::sanitize::human_size;

pub(super) struct AttachmentRow {
    pub index: usize,
    pub name: String,
    pub size: String,
}

/// The rows for a message's attachments, in their order in the message.
pub(super) fn rows(attachments: Vec<AttachmentMeta>) -> Vec<AttachmentRow> {
    attachments
        .into_iter()
        .enumerate()
        .map(|(index, a)| AttachmentRow {
            index,
            name: if a.name.trim().is_empty() {
                format!("Attachment {}", index + 1)
            } else {
                a.name
            },
            size: human_size(a.size),
        })
        .collect()
}
