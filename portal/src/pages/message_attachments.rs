//! A message's attachments as its page lists them: name, size and, where the
//! type allows, what can be shown in the page instead of downloaded (a
//! viewer, `viewer.rs`) and a small picture (images).

use store::ingest::AttachmentMeta;

use super::viewer_kind::kind_of;
use crate::sanitize::human_size;

pub(super) struct AttachmentRow {
    pub index: usize,
    pub name: String,
    pub size: String,
    /// The viewer's word for it ("image", "3D model", "DICOM image"), if any.
    pub view: Option<&'static str>,
    /// Whether `/m/{id}/a/{index}/thumb` can show a small picture of it.
    pub thumb: bool,
}

/// The rows for a message's attachments, in their order in the message.
pub(super) fn rows(attachments: Vec<AttachmentMeta>) -> Vec<AttachmentRow> {
    attachments
        .into_iter()
        .enumerate()
        .map(|(index, a)| {
            let kind = kind_of(&a.name, &a.content_type);
            AttachmentRow {
                index,
                view: kind.map(super::viewer_kind::Kind::label),
                thumb: kind.is_some_and(super::viewer_kind::Kind::has_thumbnail),
                name: if a.name.trim().is_empty() {
                    format!("Attachment {}", index + 1)
                } else {
                    a.name
                },
                size: human_size(a.size),
            }
        })
        .collect()
}
