//! Body sections of a FETCH (RFC 3501 §6.4.5 `BODY[section]`): the label the
//! response repeats, whether the message's MIME outline is needed, and where a
//! part's octets are in the original.

use imap_codec::imap_types::fetch::{MessageDataItemName, Section};

use super::outline::{Outline, Piece};

/// `HEADER.FIELDS (A B)`-style label of a section, as the response repeats it.
pub(super) fn section_label(section: Option<&Section<'_>>) -> String {
    let part = |p: &imap_codec::imap_types::fetch::Part| {
        p.0.as_ref()
            .iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    let prefix =
        |p: &Option<imap_codec::imap_types::fetch::Part>| p.as_ref().map_or(String::new(), |p| format!("{}.", part(p)));
    let names = |list: &imap_codec::imap_types::core::Vec1<imap_codec::imap_types::core::AString<'_>>| {
        list.as_ref()
            .iter()
            .map(|n| String::from_utf8_lossy(n.as_ref()).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match section {
        None => String::new(),
        Some(Section::Part(p)) => part(p),
        Some(Section::Header(p)) => format!("{}HEADER", prefix(p)),
        Some(Section::HeaderFields(p, list)) => format!("{}HEADER.FIELDS ({})", prefix(p), names(list)),
        Some(Section::HeaderFieldsNot(p, list)) => format!("{}HEADER.FIELDS.NOT ({})", prefix(p), names(list)),
        Some(Section::Text(p)) => format!("{}TEXT", prefix(p)),
        Some(Section::Mime(p)) => format!("{}.MIME", part(p)),
    }
}

/// Content of one body item: in memory, or a range of the original to stream.
pub(super) enum Content {
    Bytes(Vec<u8>),
    Stream {
        skip: u64,
        len: u64,
    },
    /// Some header fields of the header block at this range of the original.
    Fields {
        skip: u64,
        len: u64,
        names: Vec<Vec<u8>>,
        not: bool,
    },
    Missing,
}

/// Does any item need the message's MIME outline?
pub(super) fn wants_parts(items: &[MessageDataItemName<'_>]) -> bool {
    items.iter().any(|i| match i {
        MessageDataItemName::Body | MessageDataItemName::BodyStructure => true,
        MessageDataItemName::BodyExt { section, .. } => matches!(
            section,
            Some(
                Section::Part(_)
                    | Section::Mime(_)
                    | Section::Header(Some(_))
                    | Section::Text(Some(_))
                    | Section::HeaderFields(Some(_), _)
                    | Section::HeaderFieldsNot(Some(_), _)
            )
        ),
        _ => false,
    })
}

/// Where a part section's octets are: a range of the original to stream,
/// empty if there is no such part, NIL if the message has no outline.
pub(super) fn part_content(outline: Option<&Outline>, section: &Section<'_>) -> Content {
    let Some(outline) = outline else {
        return Content::Missing;
    };
    let (path, piece) = match section {
        Section::Part(p) => (p, Piece::Body),
        Section::Mime(p) => (p, Piece::Mime),
        Section::Header(Some(p)) | Section::HeaderFields(Some(p), _) | Section::HeaderFieldsNot(Some(p), _) => {
            (p, Piece::Header)
        }
        Section::Text(Some(p)) => (p, Piece::Text),
        _ => return Content::Missing,
    };
    let path: Vec<u32> = path.0.as_ref().iter().map(|n| n.get()).collect();
    let (skip, end) = match outline.section(&path, piece) {
        None => return Content::Bytes(Vec::new()),
        Some(None) => return Content::Missing,
        Some(Some(range)) => range,
    };
    let len = end.saturating_sub(skip);
    match section {
        Section::HeaderFields(_, names) | Section::HeaderFieldsNot(_, names) => Content::Fields {
            skip,
            len,
            names: names.as_ref().iter().map(|n| n.as_ref().to_vec()).collect(),
            not: matches!(section, Section::HeaderFieldsNot(..)),
        },
        _ => Content::Stream { skip, len },
    }
}
