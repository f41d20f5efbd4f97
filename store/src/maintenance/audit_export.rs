//! The audit log, exported for a SIEM: one record per entry since a time, with
//! stable field names (docs/operations.md). Entries name people and objects by
//! id (`user:12`, `message:…`), never by content; an older entry that named
//! someone otherwise (an address typed at a failed sign-in, before ids were
//! used) is exported as `[redacted]`, as is anything that is not a plain id,
//! word or IP address. The chain's hash comes along, so a SIEM holds anchors.

use futures::TryStreamExt;
use sqlx::Row;

use crate::{Maintenance, Result};

/// What a redacted field reads.
pub const REDACTED: &str = "[redacted]";

/// One audit entry as exported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// The entry's number in the chain (increasing).
    pub id: i64,
    /// When, in Unix seconds (the CLI adds RFC 3339).
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    /// The client's IP address, a channel (`cli`, `smtp`), or empty.
    pub client: String,
    /// The entry's chain hash, hex (an anchor is `id:hash`).
    pub hash: String,
}

impl Maintenance<'_> {
    /// Streams the entries at or after `since` (Unix seconds), oldest first, to
    /// `each`; returns how many.
    pub async fn export_audit(&self, since: i64, mut each: impl FnMut(AuditRecord) -> Result<()>) -> Result<u64> {
        let mut rows =
            sqlx::query("SELECT id, at, actor, action, object, client, hash FROM audit WHERE at >= $1 ORDER BY id")
                .bind(since)
                .fetch(&self.db);
        let mut count = 0;
        while let Some(row) = rows.try_next().await? {
            each(AuditRecord {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: reference(&row.try_get::<String, _>("actor")?),
                action: reference(&row.try_get::<String, _>("action")?),
                object: reference(&row.try_get::<String, _>("object")?),
                client: client(&row.try_get::<String, _>("client")?),
                hash: hex::encode(row.try_get::<Vec<u8>, _>("hash")?),
            })?;
            count += 1;
        }
        Ok(count)
    }
}

/// A word (`system`, `signin.failure`) or ids (`message:abc/attachment:0`) pass;
/// anything else (an address, a name) is redacted.
fn reference(text: &str) -> String {
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 40
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
    };
    let id = |part: &str| {
        part.split_once(':').is_some_and(|(kind, id)| {
            word(kind)
                && !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        })
    };
    if text.is_empty() || word(text) || text.split('/').all(id) {
        text.to_owned()
    } else {
        REDACTED.to_owned()
    }
}

/// An IP address (with or without a port) or a channel word (`cli`, `smtp`).
fn client(text: &str) -> String {
    let word = text.len() <= 16 && text.bytes().all(|b| b.is_ascii_lowercase());
    if word || text.parse::<std::net::IpAddr>().is_ok() || text.parse::<std::net::SocketAddr>().is_ok() {
        text.to_owned()
    } else {
        REDACTED.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_words_pass_and_anything_else_is_redacted() {
        for kept in [
            "",
            "system",
            "admin",
            "user:12",
            "signin.failure",
            "message:01JABCDEF/attachment:0",
            "kek:9f3a0b1c",
            "totp",
        ] {
            assert_eq!(reference(kept), kept);
        }
        for gone in [
            "jane.doe@example.com",
            "Jane Doe",
            "user:12 Jane",
            "message:../../x",
            "subject:Biopsy results",
            "user:",
        ] {
            assert_eq!(reference(gone), REDACTED, "{gone}");
        }
        assert_eq!(client("203.0.113.9"), "203.0.113.9");
        assert_eq!(client("2001:db8::1"), "2001:db8::1");
        assert_eq!(client("cli"), "cli");
        assert_eq!(client("jane@example.com"), REDACTED);
        assert_eq!(client("Jane Doe"), REDACTED);
    }
}
