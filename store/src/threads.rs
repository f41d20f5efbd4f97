//! Reply threading: the Message-IDs of sealed messages, kept only as SHA-256
//! hashes, and the lookup that finds the secure conversation a reply belongs to
//! from its `In-Reply-To` and `References` headers (RFC 5322 §3.6.4). A reply
//! in Outlook to a secure message then stays secure without the add-in's marker.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::accounts::User;
use crate::crypto::sha256;
use crate::ids::{MessageId, PracticeId, UserId};
use crate::ingest::headers::raw_header_values;
use crate::spool_file::Spooled;
use crate::{Mail, Result};

/// At most this many ids of one reply are looked up: every `In-Reply-To` id,
/// the first `References` id (the conversation's start) and the newest others.
pub const MAX_LOOKUP_IDS: usize = 50;
/// RFC 5322 §2.1.1: no line, hence no id, is longer.
const MAX_ID_LEN: usize = 998;

/// The msg-ids in one `In-Reply-To` or `References` value, normalised.
///
/// Ids are taken from between angle brackets; whitespace inside them (from
/// folding) is dropped, comments `( … )` and quoted phrases are skipped, and
/// an unterminated or empty `<…>` is ignored. A value with no brackets at all
/// (some old clients) yields its whitespace- or comma-separated words that
/// contain an `@`.
pub fn parse_msg_ids(value: &str) -> Vec<String> {
    if !value.contains('<') {
        return value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|word| word.contains('@'))
            .filter_map(normalize_msg_id)
            .collect();
    }
    let mut ids = Vec::new();
    let mut chars = value.chars();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' if depth > 0 => {
                chars.next();
            }
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '"' if depth == 0 => {
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '<' if depth == 0 => {
                let mut id = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    match d {
                        '>' => {
                            closed = true;
                            break;
                        }
                        // A new `<` before a `>`: drop the broken start.
                        '<' => id.clear(),
                        _ => id.push(d),
                    }
                }
                if closed && let Some(id) = normalize_msg_id(&id) {
                    ids.push(id);
                }
            }
            _ => {}
        }
    }
    ids
}

/// One id in the form we hash: no angle brackets, no whitespace, lower case.
/// Ids are compared case-insensitively: some systems change the case of the
/// domain part, and a false match needs the other message's id anyway.
pub fn normalize_msg_id(id: &str) -> Option<String> {
    let id: String = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let valid = !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(|c| c.is_control() || "<>".contains(c));
    valid.then_some(id)
}

/// The hash a Message-ID is stored under.
pub fn msg_id_hash(normalized: &str) -> Vec<u8> {
    sha256(normalized.as_bytes())
}

/// The ids a message replies to, from its raw header block: all of
/// `In-Reply-To`, then the first and the newest of `References`, without
/// repeats and at most [`MAX_LOOKUP_IDS`].
pub fn reply_references(header_block: &[u8]) -> Vec<String> {
    let in_reply_to: Vec<String> = raw_header_values(header_block, "In-Reply-To")
        .iter()
        .flat_map(|v| parse_msg_ids(v))
        .collect();
    let references: Vec<String> = raw_header_values(header_block, "References")
        .iter()
        .flat_map(|v| parse_msg_ids(v))
        .collect();
    let mut ids: Vec<String> = Vec::new();
    let candidates = in_reply_to
        .into_iter()
        .chain(references.first().cloned())
        .chain(references.into_iter().rev());
    for id in candidates {
        if ids.len() >= MAX_LOOKUP_IDS {
            break;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The secure conversation a reply belongs to.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The newest sealed message the reply names.
    pub message: MessageId,
    /// That message's practice.
    pub practice_id: PracticeId,
    /// Senders and notified recipients of every message the reply names, by
    /// lower-case address: the people who may reply. Recipients still waiting
    /// for a role are not in it.
    pub participants: HashMap<String, UserId>,
    /// Of those, the ones every recipient could see on those messages: the
    /// senders and the recipients named in To or Cc, never a Bcc. A free
    /// account's reply may go only to them.
    pub visible: HashSet<String>,
}

impl Thread {
    pub fn is_participant(&self, address: &str) -> bool {
        self.participants.contains_key(&address.trim().to_ascii_lowercase())
    }

    /// Was `address` visible on the messages the reply answers (sender, To, Cc)?
    pub fn is_visible(&self, address: &str) -> bool {
        self.visible.contains(&address.trim().to_ascii_lowercase())
    }

    /// The first of `recipients` that `sender` may not reply to in this
    /// conversation, if any: an account that may not send secure mail (a free
    /// account) replies only to the people shown on its messages (sender, To,
    /// Cc; never a Bcc). The one rule for the relay and the portal.
    pub fn refused_recipient<'a>(&self, sender: &User, recipients: &'a [String]) -> Option<&'a String> {
        if sender.may_send_secure().is_ok() {
            return None;
        }
        recipients.iter().find(|r| !self.is_visible(r))
    }
}

/// The practice a reply is filed under: the sender's own when they may send
/// secure mail ([`User::may_send_secure`]), else the conversation's (a
/// patient has no practice).
pub(crate) fn sealing_practice(sender: &User, thread: Option<&Thread>) -> Option<PracticeId> {
    match thread {
        Some(thread) if sender.may_send_secure().is_err() => Some(thread.practice_id),
        _ => sender.practice_id,
    }
}

/// Records the Message-ID of a message being sealed, inside its transaction.
pub(crate) async fn record(
    tx: &mut crate::write_tx::WriteTx,
    message: &MessageId,
    msg_id: &str,
    now: i64,
) -> Result<()> {
    let Some(normalized) = normalize_msg_id(msg_id) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO thread_ids (hash, message_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (hash, message_id) DO NOTHING",
    )
    .bind(msg_id_hash(&normalized))
    .bind(message.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Mail<'_> {
    /// The secure conversation that any of `ids` (normalised msg-ids) names, if
    /// any. Expired and deleted messages count: a reply may quote them.
    pub async fn find_thread(&self, ids: &[String]) -> Result<Option<Thread>> {
        let mut found: Vec<(i64, String)> = Vec::new();
        for id in ids.iter().take(MAX_LOOKUP_IDS) {
            let rows = sqlx::query(
                "SELECT m.id, m.created_at FROM thread_ids t JOIN messages m ON m.id = t.message_id WHERE t.hash = $1",
            )
            .bind(msg_id_hash(id))
            .fetch_all(&self.db)
            .await?;
            for row in rows {
                let entry = (row.try_get("created_at")?, row.try_get("id")?);
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
        found.sort();
        let Some((_, newest)) = found.last() else {
            return Ok(None);
        };
        let newest = MessageId::parse(newest).ok_or(crate::Error::Corrupt("message id"))?;
        let mut thread = self.thread_of(&newest).await?;
        for (_, id) in &found {
            if let Some(id) = MessageId::parse(id) {
                let (participants, visible) = self.participants(&id).await?;
                thread.participants.extend(participants);
                thread.visible.extend(visible);
            }
        }
        Ok(Some(thread))
    }

    /// The conversation a spooled reply was accepted into, if any.
    pub(crate) async fn spooled_thread(&self, thread_message_id: Option<String>) -> Result<Option<Thread>> {
        match thread_message_id.as_deref().and_then(MessageId::parse) {
            Some(message) => Ok(Some(self.thread_of(&message).await?)),
            None => Ok(None),
        }
    }

    /// The conversation of one sealed message: its practice and participants.
    pub(crate) async fn thread_of(&self, message: &MessageId) -> Result<Thread> {
        let row = sqlx::query("SELECT practice_id FROM messages WHERE id = $1")
            .bind(message.as_str())
            .fetch_optional(&self.db)
            .await?
            .ok_or(crate::Error::NotFound)?;
        let (participants, visible) = self.participants(message).await?;
        Ok(Thread {
            message: message.clone(),
            practice_id: PracticeId(row.try_get("practice_id")?),
            participants,
            visible,
        })
    }

    /// Everyone who took part in one message, and who of them was visible on it.
    async fn participants(&self, message: &MessageId) -> Result<(HashMap<String, UserId>, HashSet<String>)> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, 0 AS bcc FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.id = $1
             UNION
             SELECT u.id, u.email, r.bcc FROM message_recipients r JOIN users u ON u.id = r.user_id
             WHERE r.message_id = $1 AND r.state <> 'awaiting_role'",
        )
        .bind(message.as_str())
        .fetch_all(&self.db)
        .await?;
        let mut participants = HashMap::new();
        let mut visible = HashSet::new();
        for row in &rows {
            let email: String = row.try_get("email")?;
            if row.try_get::<i64, _>("bcc")? == 0 {
                visible.insert(email.clone());
            }
            participants.insert(email, UserId(row.try_get("id")?));
        }
        Ok((participants, visible))
    }

    /// Records a spooled reply that is secure because it belongs to `thread`'s
    /// conversation; it is sealed like a marked message, filed under the
    /// conversation. When this returns the gateway may answer 250.
    pub async fn accept_thread_reply(
        &self,
        spooled: &Spooled,
        mail_from: &str,
        rcpt_to: &[String],
        sender: UserId,
        thread: &MessageId,
    ) -> Result<()> {
        self.queue()
            .record_spooled(spooled, mail_from, rcpt_to, sender, Some(thread))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_angle_brackets_normalised() {
        assert_eq!(parse_msg_ids("<Abc.123@Mail.Example>"), vec!["abc.123@mail.example"]);
        assert_eq!(
            parse_msg_ids(" <a@x>  <b@y>\t<c@z> "),
            vec!["a@x", "b@y", "c@z"],
            "several ids"
        );
        // Folded inside an id (seen in the wild) and between ids.
        assert_eq!(
            parse_msg_ids("<long.part\r\n .more@x>\r\n\t<d@x>"),
            vec!["long.part.more@x", "d@x"]
        );
        assert_eq!(normalize_msg_id("  <A@B> "), Some("a@b".to_owned()));
    }

    #[test]
    fn comments_phrases_and_garbage_are_skipped() {
        assert_eq!(
            parse_msg_ids("(comment <no@x>) <yes@x> (nested (<no2@x>))"),
            vec!["yes@x"]
        );
        assert_eq!(parse_msg_ids("\"Fred <no@x>\" <yes@x>"), vec!["yes@x"]);
        assert_eq!(parse_msg_ids("<> <unterminated@x"), Vec::<String>::new());
        assert_eq!(parse_msg_ids("<broken <ok@x>"), vec!["ok@x"]);
        assert!(parse_msg_ids("").is_empty());
        assert!(parse_msg_ids("just words, no ids").is_empty());
        assert!(parse_msg_ids(&format!("<{}@x>", "a".repeat(1200))).is_empty());
        assert!(parse_msg_ids("<a\u{0}b@x>").is_empty());
    }

    #[test]
    fn bare_ids_without_brackets_are_accepted() {
        assert_eq!(parse_msg_ids("a@x, b@y"), vec!["a@x", "b@y"]);
    }

    #[test]
    fn reply_references_reads_both_headers_bounded() {
        let block = b"From: p@x\r\nIn-Reply-To: <Parent@x>\r\nReferences: <root@x>\r\n <mid@x>\r\n\t<parent@x>\r\nSubject: Re: hi\r\n";
        assert_eq!(reply_references(block), vec!["parent@x", "root@x", "mid@x"]);
        let only_refs = b"References: <root@x> <parent@x>\r\n";
        assert_eq!(reply_references(only_refs), vec!["root@x", "parent@x"]);
        assert!(reply_references(b"Subject: no thread\r\n").is_empty());

        let many = (0..500).map(|i| format!(" <id{i}@x>")).collect::<Vec<_>>().concat();
        let block = format!("References:{many}\r\nIn-Reply-To: <p@x>\r\n");
        let ids = reply_references(block.as_bytes());
        assert_eq!(ids.len(), MAX_LOOKUP_IDS);
        assert_eq!(&ids[..3], ["p@x", "id0@x", "id499@x"]);
    }

    #[test]
    fn hashes_are_of_the_normalised_id() {
        let a = normalize_msg_id("<X@Y>").unwrap();
        let b = parse_msg_ids("< x@y >").pop().unwrap();
        assert_eq!(msg_id_hash(&a), msg_id_hash(&b));
        assert_eq!(msg_id_hash(&a).len(), 32);
    }
}
