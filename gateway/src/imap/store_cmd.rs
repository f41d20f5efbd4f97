//! STORE and UID STORE (RFC 3501 §6.4.6): system flags only. In INBOX `\Seen`
//! is the read state the portal shows; keywords are refused.

use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use store::mailbox::Flags;

use super::format::flag_list;
use super::sequence::chosen;
use super::session::{Session, State};

impl Session {
    pub(crate) async fn store_flags(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) {
        let mut bits = 0;
        for flag in flags {
            bits |= match flag {
                Flag::Seen => Flags::SEEN,
                Flag::Answered => Flags::ANSWERED,
                Flag::Flagged => Flags::FLAGGED,
                Flag::Deleted => Flags::DELETED,
                Flag::Draft => Flags::DRAFT,
                _ => {
                    self.tagged(tag, "NO", "[CANNOT] Only system flags can be stored here");
                    return;
                }
            };
        }
        let State::Selected(user, selected) = &mut self.state else {
            return;
        };
        if selected.read_only {
            self.tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
            return;
        }
        let mut lines = Vec::new();
        for index in chosen(&selected.entries, set, uid) {
            let entry = &mut selected.entries[index];
            let new = Flags(match kind {
                StoreType::Replace => bits,
                StoreType::Add => entry.flags.0 | bits,
                StoreType::Remove => entry.flags.0 & !bits,
            });
            if new != entry.flags {
                if let Err(error) = self
                    .server
                    .store
                    .mail()
                    .mailbox_set_flags(user, selected.mailbox, &entry.id, new)
                    .await
                {
                    tracing::warn!(%error, "imap STORE failed in the store");
                    lines.clear();
                    lines.push(format!("{tag} NO [SERVERBUG] Internal error; try again later"));
                    break;
                }
                entry.flags = new;
            }
            if response == StoreResponse::Answer {
                let uid_item = if uid {
                    format!("UID {} ", entry.uid)
                } else {
                    String::new()
                };
                lines.push(format!(
                    "* {} FETCH ({uid_item}FLAGS {})",
                    index + 1,
                    flag_list(entry.flags)
                ));
            }
        }
        let failed = lines.last().is_some_and(|l| l.starts_with(tag) && l.contains(" NO "));
        for line in lines {
            self.line(&line);
        }
        if !failed {
            let verb = if uid { "UID STORE" } else { "STORE" };
            self.tagged(tag, "OK", &format!("{verb} completed"));
        }
    }
}
