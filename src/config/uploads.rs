//! `[uploads]`: what may be attached to a message — accepted file types, the size
//! per message — and how long a staged upload no message took is kept. The same
//! rules apply to portal uploads and to mail arriving over SMTP.

use serde::Deserialize;

use super::listeners::parse_size;

/// `[uploads]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Uploads {
    /// Accepted file types by extension, e.g. `[".pdf", ".jpg"]` (the dot is optional).
    pub accepted_types: Vec<String>,
    /// Attachments one message may carry in total, e.g. `300MB`, `2GB`.
    pub max_message_size: String,
    /// Hours after its last change a staged upload no message took is removed.
    pub abandon_after_hours: i64,
}

impl Default for Uploads {
    fn default() -> Self {
        let rules = store::uploads::UploadRules::default();
        Self {
            accepted_types: rules.accepted_types.iter().map(|t| format!(".{t}")).collect(),
            max_message_size: "300MB".into(),
            abandon_after_hours: rules.abandon_after / 3600,
        }
    }
}

impl Uploads {
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if let Err(e) = parse_size(&self.max_message_size) {
            problems.push(format!("uploads.max_message_size: {e}"));
        }
        if self.accepted_types.is_empty() {
            problems.push("uploads.accepted_types must name at least one type, e.g. [\".pdf\"]".into());
        }
        for t in &self.accepted_types {
            let bare = t.trim_start_matches('.');
            if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(format!(
                    "uploads.accepted_types: {t:?} is not a file type like \".pdf\""
                ));
            }
        }
        if !(1..=24 * 365).contains(&self.abandon_after_hours) {
            problems.push("uploads.abandon_after_hours must be between 1 and 8760".into());
        }
    }

    /// The rules the store applies (call after [`check`](Self::check)).
    pub fn rules(&self) -> store::uploads::UploadRules {
        store::uploads::UploadRules {
            accepted_types: self
                .accepted_types
                .iter()
                .map(|t| t.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            max_message_size: parse_size(&self.max_message_size).unwrap_or(300_000_000),
            abandon_after: self.abandon_after_hours * 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn upload_rules_come_from_the_section_and_are_checked() {
        let rules = load(&[]).unwrap().uploads.rules();
        assert_eq!(rules.max_message_size, 300_000_000);
        assert!(rules.accepted_types.iter().any(|t| t == "dcm"));
        let rules = load(&[
            ("SEALPOST_UPLOADS_ACCEPTED_TYPES", r#"[".PDF", "zip"]"#),
            ("SEALPOST_UPLOADS_MAX_MESSAGE_SIZE", "2GB"),
        ])
        .unwrap()
        .uploads
        .rules();
        assert_eq!(rules.accepted_types, ["pdf", "zip"]);
        assert_eq!(rules.max_message_size, 2_000_000_000);
        let problems = load(&[
            ("SEALPOST_UPLOADS_ACCEPTED_TYPES", r#"["", ".p/df"]"#),
            ("SEALPOST_UPLOADS_MAX_MESSAGE_SIZE", "lots"),
            ("SEALPOST_UPLOADS_ABANDON_AFTER_HOURS", "0"),
        ])
        .unwrap_err()
        .join("\n");
        for key in [
            "accepted_types: \"\"",
            "\".p/df\"",
            "max_message_size",
            "abandon_after_hours",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
    }
}
