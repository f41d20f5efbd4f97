//! SEARCH and UID SEARCH (RFC 3501 §6.4.4) over what the database knows: sets,
//! flags, dates and sizes. Keys that need the sealed content (FROM, SUBJECT,
//! BODY, TEXT, HEADER...) are refused with NO: searching PHI would mean
//! decrypting every message.

use imap_codec::imap_types::search::SearchKey;
use store::mailbox::{Flags, MailEntry};

use super::sequence::contains;
use super::session::{Session, State};

/// Unix day number of an IMAP date (00:00 UTC).
fn day(date: &imap_codec::imap_types::datetime::NaiveDate) -> i64 {
    let date = AsRef::as_ref(date);
    date.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
        .div_euclid(86_400)
}

/// Does the entry at sequence number `seq` match? None: a key we can't search.
fn matches(key: &SearchKey<'_>, entry: &MailEntry, seq: u32, entries: &[MailEntry]) -> Option<bool> {
    let largest_seq = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let largest_uid = entries.last().map_or(0, |e| e.uid);
    let has = |bit| entry.flags.has(bit);
    let day_of = entry.internal_date.div_euclid(86_400);
    Some(match key {
        SearchKey::All => true,
        SearchKey::And(keys) => {
            let mut all = true;
            for k in keys.as_ref() {
                all &= matches(k, entry, seq, entries)?;
            }
            all
        }
        SearchKey::Or(a, b) => matches(a, entry, seq, entries)? | matches(b, entry, seq, entries)?,
        SearchKey::Not(k) => !matches(k, entry, seq, entries)?,
        SearchKey::SequenceSet(set) => contains(set, seq, largest_seq),
        SearchKey::Uid(set) => contains(set, entry.uid, largest_uid),
        SearchKey::Seen => has(Flags::SEEN),
        SearchKey::Unseen => !has(Flags::SEEN),
        SearchKey::Deleted => has(Flags::DELETED),
        SearchKey::Undeleted => !has(Flags::DELETED),
        SearchKey::Answered => has(Flags::ANSWERED),
        SearchKey::Unanswered => !has(Flags::ANSWERED),
        SearchKey::Flagged => has(Flags::FLAGGED),
        SearchKey::Unflagged => !has(Flags::FLAGGED),
        SearchKey::Draft => has(Flags::DRAFT),
        SearchKey::Undraft => !has(Flags::DRAFT),
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Old => true,
        SearchKey::Since(d) => day_of >= day(d),
        SearchKey::Before(d) => day_of < day(d),
        SearchKey::On(d) => day_of == day(d),
        SearchKey::Larger(n) => entry.size > u64::from(*n),
        SearchKey::Smaller(n) => entry.size < u64::from(*n),
        SearchKey::Keyword(_) => false,
        SearchKey::Unkeyword(_) => true,
        _ => return None,
    })
}

impl Session {
    pub(crate) fn search(&mut self, tag: &str, criteria: &[SearchKey<'_>], uid: bool) {
        let State::Selected(_, selected) = &self.state else {
            return;
        };
        let mut found = Vec::new();
        for (i, entry) in selected.entries.iter().enumerate() {
            let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let mut all = true;
            for key in criteria {
                if let Some(hit) = matches(key, entry, seq, &selected.entries) {
                    all &= hit;
                } else {
                    self.tagged(
                        tag,
                        "NO",
                        "[CANNOT] Only flag, date, size and set searches are offered (content is sealed)",
                    );
                    return;
                }
            }
            if all {
                found.push(if uid { entry.uid } else { seq });
            }
        }
        let mut list = String::from("* SEARCH");
        for n in found {
            list.push(' ');
            list.push_str(&n.to_string());
        }
        self.line(&list);
        let verb = if uid { "UID SEARCH" } else { "SEARCH" };
        self.tagged(tag, "OK", &format!("{verb} completed"));
    }
}
