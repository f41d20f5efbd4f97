//! Sequence sets (RFC 3501 §9 `sequence-set`): which messages a FETCH, STORE,
//! SEARCH or UID EXPUNGE names, by number or by UID, `*` being the largest.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use store::mailbox::MailEntry;

/// Is `value` in the set, with `*` meaning `largest`?
pub(super) fn contains(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let resolve = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|sequence| match sequence {
        Sequence::Single(s) => resolve(s) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (resolve(a), resolve(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

/// Indexes (0-based) of the selected messages a set names.
pub(super) fn chosen(entries: &[MailEntry], set: &SequenceSet, uid: bool) -> Vec<usize> {
    let largest = if uid {
        entries.last().map_or(0, |e| e.uid)
    } else {
        u32::try_from(entries.len()).unwrap_or(u32::MAX)
    };
    (0..entries.len())
        .filter(|&i| {
            let value = if uid {
                entries[i].uid
            } else {
                u32::try_from(i + 1).unwrap_or(u32::MAX)
            };
            contains(set, value, largest)
        })
        .collect()
}
