//! What may be sent as an attachment: the accepted file types (by extension;
//! the practice documents' list by default), the total size per message, and
//! the types free accounts may send only inside their network (ZIP, STL and
//! DICOM). The portal's uploads and compose form and the SMTP gateway apply
//! the same rules; refusals name the file and the rule, in words for the sender.

use crate::accounts::{User, normalize_email};
use crate::{Error, Result, Uploads};

/// The accepted types from the practice documents (issue 11).
pub const DEFAULT_ACCEPTED: &[&str] = &[
    "ai", "aif", "aifc", "aiff", "avi", "bmp", "cpt", "dcm", "dex", "doc", "docx", "ds2", "eml", "eps", "gif", "hqx",
    "jpe", "jpeg", "jpg", "log", "mid", "midi", "mif", "mov", "movie", "mp2", "mp3", "mp4", "mpe", "mpeg", "mpga",
    "obj", "oda", "pdf", "png", "ppt", "pptx", "ps", "qt", "ra", "ram", "rm", "rpm", "rtf", "rtx", "rv", "smi", "smil",
    "stl", "text", "tif", "tiff", "txt", "vcard", "vcf", "wav", "wbxml", "wmlc", "wmv", "word", "xl", "xls", "xml",
    "xsl", "xlsx", "zip",
];

/// Types a free account may send only to the practice that invited it.
pub const NETWORK_ONLY: &[&str] = &["zip", "stl", "dcm"];

/// The attachment rules (config section `[uploads]`).
#[derive(Debug, Clone)]
pub struct UploadRules {
    /// Accepted extensions, lower case, without the dot.
    pub accepted_types: Vec<String>,
    /// The most bytes of attachments one message may carry.
    pub max_message_size: u64,
    /// Seconds after its last change an upload no message took is removed.
    pub abandon_after: i64,
}

impl Default for UploadRules {
    fn default() -> Self {
        Self {
            accepted_types: DEFAULT_ACCEPTED.iter().map(|t| (*t).to_owned()).collect(),
            max_message_size: 300_000_000,
            abandon_after: 24 * 3600,
        }
    }
}

/// A file name's extension, lower case, without the dot.
pub fn extension(file_name: &str) -> Option<String> {
    let last = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let (stem, ext) = last.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// The content type a file is sent with, from its extension.
pub fn content_type(file_name: &str) -> &'static str {
    match extension(file_name).as_deref() {
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg" | "jpe") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        Some("txt" | "text" | "log") => "text/plain",
        Some("xml" | "xsl") => "application/xml",
        Some("rtf") => "application/rtf",
        Some("doc" | "word") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls" | "xl") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("ppt") => "application/vnd.ms-powerpoint",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some("zip") => "application/zip",
        Some("dcm") => "application/dicom",
        Some("stl") => "model/stl",
        Some("eml") => "message/rfc822",
        Some("vcf" | "vcard") => "text/vcard",
        Some("mp3" | "mpga" | "mp2") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("mov" | "qt") => "video/quicktime",
        Some("avi") => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

/// Bytes in words: `300 MB`, `2.5 GB`.
pub fn human_size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a size for people to read
    let value = bytes as f64;
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", value / 1e9).replace(".0 ", " ")
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", value / 1e6).replace(".0 ", " ")
    } else {
        format!("{bytes} bytes")
    }
}

impl UploadRules {
    /// The accepted types as people read them: `.ai, .aif, …`.
    pub fn accepted_list(&self) -> String {
        self.accepted_types
            .iter()
            .map(|t| format!(".{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Refuses a file whose type is not accepted, naming the type and the list.
    pub fn check_type(&self, file_name: &str) -> Result<()> {
        match extension(file_name) {
            Some(ext) if self.accepted_types.iter().any(|t| *t == ext) => Ok(()),
            Some(ext) => Err(Error::invalid(format!(
                "\"{file_name}\" can't be sent: files of type .{ext} are not accepted. Accepted types: {}.",
                self.accepted_list()
            ))),
            None => Err(Error::invalid(format!(
                "\"{file_name}\" can't be sent: it has no file type. Accepted types: {}.",
                self.accepted_list()
            ))),
        }
    }

    /// Refuses one file larger than a message may carry.
    pub fn check_size(&self, file_name: &str, size: u64) -> Result<()> {
        if size > self.max_message_size {
            return Err(self.too_large(file_name));
        }
        Ok(())
    }

    pub(crate) fn too_large(&self, file_name: &str) -> Error {
        Error::invalid(format!(
            "\"{file_name}\" can't be sent: a message may carry at most {} of attachments.",
            human_size(self.max_message_size)
        ))
    }

    /// Types and total size of one message's files (name, size).
    pub fn check_files(&self, files: &[(String, u64)]) -> Result<()> {
        let mut total = 0u64;
        for (name, size) in files {
            self.check_type(name)?;
            total = total.saturating_add(*size);
            if total > self.max_message_size {
                return Err(Error::invalid(format!(
                    "\"{name}\" can't be sent: together the attachments would pass the {} a message may carry.",
                    human_size(self.max_message_size)
                )));
            }
        }
        Ok(())
    }
}

impl Uploads<'_> {
    /// Whether `sender` may send these files (name, size) to `recipients`:
    /// the accepted types, the size per message, and what free accounts may
    /// send outside the practice that invited them. `Err` says why, naming
    /// the file and the rule, in words for the sender.
    pub async fn check_outgoing(&self, sender: &User, recipients: &[String], files: &[(String, u64)]) -> Result<()> {
        self.policy().uploads.check_files(files)?;
        if sender.paid {
            return Ok(());
        }
        let Some((name, _)) = files
            .iter()
            .find(|(name, _)| extension(name).is_some_and(|e| NETWORK_ONLY.contains(&e.as_str())))
        else {
            return Ok(());
        };
        for recipient in recipients {
            if !self.in_network(sender, recipient).await? {
                return Err(Error::invalid(format!(
                    "\"{name}\" can't be sent to {recipient}: with a free account, ZIP, STL and DICOM files go only to the practice that invited you."
                )));
            }
        }
        Ok(())
    }

    /// Whether `address` belongs to someone in `sender`'s practice, or in a
    /// practice that invited the sender (has them as a contact).
    async fn in_network(&self, sender: &User, address: &str) -> Result<bool> {
        let Ok(address) = normalize_email(address) else {
            return Ok(false);
        };
        let row = sqlx::query(
            "SELECT 1 AS inside FROM users r
             WHERE r.email = $1 AND r.practice_id IS NOT NULL
               AND (r.practice_id = $2
                    OR r.practice_id IN (SELECT practice_id FROM contacts WHERE user_id = $3))",
        )
        .bind(&address)
        .bind(sender.practice_id.map_or(-1, |p| p.0))
        .bind(sender.id.0)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension_with_the_list_in_the_refusal() {
        let rules = UploadRules::default();
        assert!(rules.check_type("scan.PDF").is_ok());
        assert!(rules.check_type("model.stl").is_ok());
        let refused = rules.check_type("setup.exe").unwrap_err().to_string();
        assert!(refused.contains("setup.exe") && refused.contains(".exe"), "{refused}");
        assert!(refused.contains(".pdf, .png") && refused.contains(".zip"), "{refused}");
        assert!(
            rules
                .check_type("README")
                .unwrap_err()
                .to_string()
                .contains("no file type")
        );
        assert!(rules.check_type(".pdf").is_err(), "a dot file has no type");
        assert_eq!(extension("../../etc/passwd"), None, "the type is the last segment's");
        assert_eq!(extension("C:\\scans.d\\x-ray.PDF").as_deref(), Some("pdf"));
    }

    #[test]
    fn size_at_the_boundary_and_one_byte_over() {
        let rules = UploadRules {
            max_message_size: 1000,
            ..UploadRules::default()
        };
        assert!(rules.check_size("a.pdf", 1000).is_ok());
        assert!(
            rules
                .check_size("a.pdf", 1001)
                .unwrap_err()
                .to_string()
                .contains("a.pdf")
        );
        assert!(
            rules
                .check_files(&[("a.pdf".into(), 600), ("b.pdf".into(), 400)])
                .is_ok()
        );
        let over = rules
            .check_files(&[("a.pdf".into(), 600), ("b.pdf".into(), 401)])
            .unwrap_err()
            .to_string();
        assert!(over.contains("b.pdf") && over.contains("1000 bytes"), "{over}");
        assert_eq!(human_size(300_000_000), "300 MB");
        assert_eq!(human_size(2_500_000_000), "2.5 GB");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("x.pdf"), "application/pdf");
        assert_eq!(content_type("x.DCM"), "application/dicom");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }
}
