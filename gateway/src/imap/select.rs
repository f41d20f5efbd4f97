//! Mailbox commands: LIST/LSUB, STATUS, SELECT/EXAMINE, CLOSE/UNSELECT,
//! EXPUNGE and UID EXPUNGE (RFC 4315), and the refresh that tells a client
//! about new, changed and vanished messages (EXISTS, FETCH FLAGS, EXPUNGE).

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;
use store::mailbox::{Flags, MailboxName};

use super::format::flag_list;
use super::sequence::contains;
use super::session::{Selected, Session, State};

/// The mailbox a command names, if it is one of ours.
pub(crate) fn mailbox_name(mailbox: &Mailbox<'_>) -> Option<MailboxName> {
    match mailbox {
        Mailbox::Inbox => Some(MailboxName::Inbox),
        Mailbox::Other(other) => MailboxName::parse(other.inner().as_ref()),
    }
}

/// Longest LIST pattern (reference and mailbox together) we match; our two
/// mailbox names are short, so anything longer is a client bug or an attack.
pub(crate) const MAX_PATTERN: usize = 1024;

/// Does `name` match a LIST pattern (`*` any, `%` any but the hierarchy
/// delimiter; case-insensitive)? Iterative two-pointer wildcard matching:
/// O(pattern × name) at worst, no recursion, no backtracking explosion.
/// Our names have no hierarchy (`/` never appears), so `%` acts as `*`.
pub(crate) fn matches_pattern(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last wildcard was, and how much of `name` it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*' | b'%') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last wildcard take one more octet and retry after it.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*' || c == b'%')
}

impl Session {
    pub(crate) fn list(&mut self, tag: &str, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>, verb: &str) {
        let pattern: &[u8] = match pattern {
            ListMailbox::Token(token) => token.as_ref(),
            ListMailbox::String(string) => string.as_ref(),
        };
        let reference: &[u8] = match reference {
            Mailbox::Inbox => b"INBOX",
            Mailbox::Other(other) => other.inner().as_ref(),
        };
        if reference.len() + pattern.len() > MAX_PATTERN {
            self.tagged(
                tag,
                "BAD",
                &format!("[LIMIT] {verb} pattern too long (at most {MAX_PATTERN} octets)"),
            );
            return;
        }
        if pattern.is_empty() {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            self.line(&format!("* {verb} (\\Noselect) \"/\" \"\""));
        } else {
            let full = [reference, pattern].concat();
            for (name, attributes) in [("INBOX", "\\HasNoChildren"), ("Sent", "\\HasNoChildren \\Sent")] {
                if matches_pattern(&full, name.as_bytes()) {
                    self.line(&format!("* {verb} ({attributes}) \"/\" {name}"));
                }
            }
        }
        self.tagged(tag, "OK", &format!("{verb} completed"));
    }

    pub(crate) async fn status(&mut self, tag: &str, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) {
        let Some(name) = mailbox_name(mailbox) else {
            self.tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
            return;
        };
        let user = self.user().cloned().expect("authenticated");
        let (info, entries) = match self.server.store.mail().mailbox_sync(&user, name).await {
            Ok(listed) => listed,
            Err(error) => return self.store_failed(tag, &error),
        };
        let mut parts = Vec::new();
        for item in items {
            let value = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", entries.len()),
                StatusDataItemName::Recent => "RECENT 0".into(),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", info.uid_next),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", info.uid_validity),
                StatusDataItemName::Unseen => {
                    format!(
                        "UNSEEN {}",
                        entries.iter().filter(|e| !e.flags.has(Flags::SEEN)).count()
                    )
                }
                _ => continue,
            };
            parts.push(value);
        }
        self.line(&format!("* STATUS {} ({})", name.as_str(), parts.join(" ")));
        self.tagged(tag, "OK", "STATUS completed");
    }

    pub(crate) async fn select(&mut self, tag: &str, mailbox: &Mailbox<'_>, read_only: bool) {
        let user = self.user().cloned().expect("authenticated");
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.state = State::Authenticated(user.clone());
        let Some(name) = mailbox_name(mailbox) else {
            self.tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
            return;
        };
        let (info, entries) = match self.server.store.mail().mailbox_sync(&user, name).await {
            Ok(listed) => listed,
            Err(error) => return self.store_failed(tag, &error),
        };
        self.line("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
        if read_only {
            self.line("* OK [PERMANENTFLAGS ()] Read-only");
        } else {
            self.line("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Flags kept");
        }
        self.line(&format!("* {} EXISTS", entries.len()));
        self.line("* 0 RECENT");
        if let Some(first) = entries.iter().position(|e| !e.flags.has(Flags::SEEN)) {
            self.line(&format!("* OK [UNSEEN {}] First unseen", first + 1));
        }
        self.line(&format!("* OK [UIDVALIDITY {}] UIDs valid", info.uid_validity));
        self.line(&format!("* OK [UIDNEXT {}] Predicted next UID", info.uid_next));
        let access = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.tagged(tag, "OK", &format!("[{access}] {verb} completed"));
        self.state = State::Selected(
            user,
            Selected {
                mailbox: name,
                read_only,
                info,
                entries,
            },
        );
    }

    /// CLOSE expunges silently (unless read-only); UNSELECT does not.
    pub(crate) async fn close(&mut self, tag: &str, expunge: bool) {
        if expunge && let Err(error) = self.expunge_deleted(None).await {
            return self.store_failed(tag, &error);
        }
        let user = self.user().cloned().expect("authenticated");
        self.state = State::Authenticated(user);
        self.tagged(tag, "OK", "Mailbox closed");
    }

    pub(crate) async fn expunge(&mut self, tag: &str, uids: Option<&SequenceSet>) {
        if matches!(&self.state, State::Selected(_, s) if s.read_only) {
            self.tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
            return;
        }
        match self.expunge_deleted(uids).await {
            Ok(gone) => {
                for seq in gone {
                    self.line(&format!("* {seq} EXPUNGE"));
                }
                self.tagged(tag, "OK", "EXPUNGE completed");
            }
            Err(error) => self.store_failed(tag, &error),
        }
    }

    /// Expunges the `\Deleted` messages (within `uids` if given); returns the
    /// sequence numbers to report, each as of the moment it went.
    async fn expunge_deleted(&mut self, uids: Option<&SequenceSet>) -> store::Result<Vec<usize>> {
        let State::Selected(user, selected) = &mut self.state else {
            return Ok(Vec::new());
        };
        if selected.read_only {
            return Ok(Vec::new());
        }
        let largest = selected.entries.last().map_or(0, |e| e.uid);
        let mut gone = Vec::new();
        let mut index = 0;
        while index < selected.entries.len() {
            let entry = &selected.entries[index];
            let chosen = uids.is_none_or(|set| contains(set, entry.uid, largest));
            if entry.flags.has(Flags::DELETED) && chosen {
                let client = format!("imap:{}", self.peer.ip());
                self.server
                    .store
                    .mail()
                    .mailbox_expunge(user, selected.mailbox, &entry.id, &client)
                    .await?;
                selected.entries.remove(index);
                gone.push(index + 1);
            } else {
                index += 1;
            }
        }
        Ok(gone)
    }

    /// Looks at the mailbox again and reports what changed. Expunges are only
    /// reported when `expunges` (never during FETCH/STORE/SEARCH, RFC 3501 §7.4.1).
    pub(crate) async fn refresh(&mut self, expunges: bool) {
        let State::Selected(user, selected) = &mut self.state else {
            return;
        };
        let Ok((info, fresh)) = self.server.store.mail().mailbox_sync(user, selected.mailbox).await else {
            return;
        };
        let mut lines = Vec::new();
        if expunges {
            let mut index = 0;
            while index < selected.entries.len() {
                if fresh.iter().any(|e| e.uid == selected.entries[index].uid) {
                    index += 1;
                } else {
                    selected.entries.remove(index);
                    lines.push(format!("* {} EXPUNGE", index + 1));
                }
            }
        }
        for (seq, entry) in selected.entries.iter_mut().enumerate() {
            if let Some(now) = fresh.iter().find(|e| e.uid == entry.uid)
                && now.flags != entry.flags
            {
                entry.flags = now.flags;
                lines.push(format!(
                    "* {} FETCH (UID {} FLAGS {})",
                    seq + 1,
                    entry.uid,
                    flag_list(entry.flags)
                ));
            }
        }
        let known = selected.entries.last().map_or(0, |e| e.uid);
        let before = selected.entries.len();
        selected.entries.extend(fresh.into_iter().filter(|e| e.uid > known));
        if selected.entries.len() != before {
            lines.push(format!("* {} EXISTS", selected.entries.len()));
            lines.push("* 0 RECENT".into());
        }
        selected.info = info;
        for line in lines {
            self.line(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn list_patterns() {
        assert!(matches_pattern(b"*", b"INBOX"));
        assert!(matches_pattern(b"%", b"Sent"));
        assert!(matches_pattern(b"inbox", b"INBOX"));
        assert!(matches_pattern(b"S*", b"Sent"));
        assert!(!matches_pattern(b"Drafts", b"Sent"));
        assert!(!matches_pattern(b"", b"Sent"));
        assert!(matches_pattern(b"", b""));
        assert!(matches_pattern(b"*t", b"Sent"));
        assert!(matches_pattern(b"s%N*", b"Sent"));
        assert!(!matches_pattern(b"*x", b"Sent"));
        assert!(!matches_pattern(b"Sentt", b"Sent"));
        assert!(matches_pattern(b"**INBOX**", b"INBOX"));
        assert!(matches_pattern(b"I*B*X", b"INBOX"));
        assert!(!matches_pattern(b"I*B*Y", b"INBOX"));
    }

    /// The inputs that overflowed the stack (30,000 `*`) and backtracked
    /// exponentially (400 `*` then a letter) answer at once.
    #[test]
    fn hostile_patterns_match_in_linear_time() {
        let started = std::time::Instant::now();
        assert!(matches_pattern(&vec![b'*'; 30_000], b"INBOX"));
        let mut stall = vec![b'*'; 400];
        stall.push(b'q');
        assert!(!matches_pattern(&stall, b"INBOX"));
        assert!(!matches_pattern(&stall, b"Sent"));
        let mut long_name = vec![b'a'; 100_000];
        long_name.push(b'q');
        assert!(matches_pattern(&stall, &long_name));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
