//! FETCH and UID FETCH (RFC 3501 §6.4.5): flags, sizes and dates from the
//! database; ENVELOPE and header sections from the decrypted header block;
//! BODYSTRUCTURE from the message's cached outline; BODY[] / RFC822 /
//! BODY[TEXT] / BODY[n] from the sealed original as literals (a small message
//! decrypted once per command, a large one streamed in bounded memory; the
//! next messages are opened on their own tasks while one is written). The
//! store is asked once per command which messages are still visible (their
//! keys unwrapped once per session), the command's views are audited in one
//! transaction, and a body fetch without PEEK sets `\Seen` (the portal's read
//! state) for the whole command in one transaction; PEEK writes nothing else.
//! Responses collect in a large buffer, written out as it fills and flushed
//! once at the end of the command. One command names at most
//! [`MAX_FETCH_ITEMS`] items.

use std::collections::HashMap;
use std::sync::Arc;

use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_codec::imap_types::sequence::SequenceSet;

use store::mailbox::{Flags, MailEntry};
use tokio::io::AsyncWrite;

use super::format::{flag_list, internal_date};
use super::message;
use super::outline::Outline;
use super::sections::{Content, part_content, section_label, wants_parts};
use super::sequence::chosen;
use super::session::{Session, State};
use super::source::{Ahead, OUT_HIGH_WATER, Source};

/// Most data items one FETCH may name (a client needs a handful; each body
/// item costs a pass over the sealed original).
pub(crate) const MAX_FETCH_ITEMS: usize = 64;

/// What one FETCH response line is made from.
#[derive(Clone, Copy)]
struct Fetched<'a> {
    entry: &'a MailEntry,
    /// Where the message's octets come from (none when no item needs them).
    source: Option<&'a Source>,
    /// The message's header block.
    header: &'a [u8],
    /// The message's outline, when a part was asked for and it is small.
    outline: Option<&'a Outline>,
}

/// What the items of one FETCH need of each message.
#[derive(Clone, Copy)]
struct Needs {
    /// A body item without PEEK (or RFC822 / RFC822.TEXT): sets `\Seen`.
    sets_seen: bool,
    /// Any body or header item: the message's content is shown (audited).
    views_body: bool,
    /// The header block (also for ENVELOPE and structures).
    header: bool,
    /// Octets past the header block (whole message, text, parts, outline).
    body: bool,
    /// The MIME outline.
    parts: bool,
}

impl Needs {
    fn of(items: &[MessageDataItemName<'_>]) -> Self {
        let sets_seen = items.iter().any(|i| {
            matches!(
                i,
                MessageDataItemName::BodyExt { peek: false, .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
            )
        });
        let views_body = sets_seen
            || items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::BodyExt { .. } | MessageDataItemName::Rfc822Header
                )
            });
        let header = views_body
            || items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::Envelope | MessageDataItemName::Body | MessageDataItemName::BodyStructure
                )
            });
        let parts = wants_parts(items);
        let body = parts
            || items.iter().any(|i| match i {
                MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
                MessageDataItemName::BodyExt { section, .. } => !matches!(
                    section,
                    Some(Section::Header(None) | Section::HeaderFields(None, _) | Section::HeaderFieldsNot(None, _))
                ),
                _ => false,
            });
        Self {
            sets_seen,
            views_body,
            header,
            body,
            parts,
        }
    }
}

impl Session {
    pub(crate) async fn fetch<S: AsyncWrite + Unpin>(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        io: &mut S,
    ) -> std::io::Result<()> {
        let expanded;
        let mut items = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                expanded = m;
                expanded.expand()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
        };
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        if items.len() > MAX_FETCH_ITEMS {
            self.tagged(
                tag,
                "BAD",
                &format!("[LIMIT] Too many FETCH data items (at most {MAX_FETCH_ITEMS})"),
            );
            return Ok(());
        }
        let State::Selected(user, selected) = &self.state else {
            return Ok(());
        };
        let (user, mailbox, read_only) = (user.clone(), selected.mailbox, selected.read_only);
        let indexes = chosen(&selected.entries, set, uid);
        let needs = Needs::of(&items);
        let client = format!("imap:{}", self.peer.ip());
        // Which of them may still be read (one query), their views audited and
        // `\Seen` set (one transaction each), before anything is shown.
        let mut readable = HashMap::new();
        let mut ahead = Ahead::new(Arc::clone(&self.server.store), needs.body, Vec::new());
        if needs.header {
            let ids: Vec<_> = indexes.iter().map(|&i| selected.entries[i].id.clone()).collect();
            let store = Arc::clone(&self.server.store);
            let mail = store.mail();
            let answer = mail.mailbox_readable(&user, &ids, &mut self.keys).await;
            readable = match answer {
                Ok(readable) => readable,
                Err(error) => {
                    self.store_failed(tag, &error);
                    return Ok(());
                }
            };
            let State::Selected(_, selected) = &self.state else {
                return Ok(());
            };
            let shown: Vec<_> = indexes
                .iter()
                .map(|&i| &selected.entries[i])
                .filter(|e| readable.contains_key(&e.id))
                .collect();
            // Opening (reading, decrypting) starts now and overlaps the audit's
            // commit; nothing of it is shown before that commit.
            let in_order = shown.iter().map(|e| (readable[&e.id].clone(), e.size)).collect();
            ahead = Ahead::new(Arc::clone(&self.server.store), needs.body, in_order);
            let viewed: Vec<_> = shown.iter().map(|e| &e.id).collect();
            let unseen: Vec<_> = shown
                .iter()
                .filter(|e| !e.flags.has(Flags::SEEN))
                .map(|e| &e.id)
                .collect();
            let mut done = Ok(());
            if needs.views_body {
                done = mail.mailbox_audit_views(&user, &viewed, &client).await;
            }
            if done.is_ok() && needs.sets_seen && !read_only {
                done = mail.mailbox_set_seen(&user, mailbox, &unseen).await;
            }
            if let Err(error) = done {
                self.store_failed(tag, &error);
                return Ok(());
            }
        }
        let sets_seen = needs.sets_seen && !read_only;
        for index in indexes {
            let State::Selected(_, selected) = &mut self.state else {
                break;
            };
            let mut flags_changed = false;
            if sets_seen && readable.contains_key(&selected.entries[index].id) {
                let entry = &mut selected.entries[index];
                flags_changed = !entry.flags.has(Flags::SEEN);
                entry.flags = Flags(entry.flags.0 | Flags::SEEN);
            }
            let entry = selected.entries[index].clone();
            let (source, header) = if needs.header {
                // Gone meanwhile (deleted by its sender, expired): skip it.
                if !readable.contains_key(&entry.id) {
                    self.server.outlines.forget(&entry.id);
                    continue;
                }
                // `ahead` opens the readable ones in this same order.
                match ahead.next().await {
                    Some(Ok((source, header))) => (Some(source), header),
                    None | Some(Err(store::Error::NotFound)) => {
                        self.server.outlines.forget(&entry.id);
                        continue;
                    }
                    Some(Err(error)) => {
                        self.store_failed(tag, &error);
                        return Ok(());
                    }
                }
            } else {
                (None, Vec::new())
            };
            // The whole message parsed only when a part is asked for, and only if small.
            let outline = match &source {
                Some(source) if needs.parts && entry.size <= message::MAX_STRUCTURE => {
                    match self.outline(&entry, source).await {
                        Ok(outline) => outline,
                        Err(error) => {
                            self.store_failed(tag, &error);
                            return Ok(());
                        }
                    }
                }
                _ => None,
            };

            self.out
                .extend_from_slice(format!("* {} FETCH (", index + 1).as_bytes());
            let mut first = true;
            let mut items_out = items.clone();
            if flags_changed && !items_out.contains(&MessageDataItemName::Flags) {
                items_out.push(MessageDataItemName::Flags);
            }
            for item in &items_out {
                if !first {
                    self.out.push(b' ');
                }
                first = false;
                let fetched = Fetched {
                    entry: &entry,
                    source: source.as_ref(),
                    header: &header,
                    outline: outline.as_deref(),
                };
                self.write_item(io, item, fetched).await?;
                if self.out.len() > OUT_HIGH_WATER {
                    self.drain(io).await?;
                }
            }
            self.out.extend_from_slice(b")\r\n");
        }
        let verb = if uid { "UID FETCH" } else { "FETCH" };
        self.tagged(tag, "OK", &format!("{verb} completed"));
        Ok(())
    }

    /// Writes one FETCH data item of a message: its name, then its value.
    async fn write_item<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        item: &MessageDataItemName<'_>,
        fetched: Fetched<'_>,
    ) -> std::io::Result<()> {
        let Fetched {
            entry,
            source,
            header,
            outline,
        } = fetched;
        match item {
            MessageDataItemName::Uid => self.out.extend_from_slice(format!("UID {}", entry.uid).as_bytes()),
            MessageDataItemName::Flags => {
                self.out
                    .extend_from_slice(format!("FLAGS {}", flag_list(entry.flags)).as_bytes());
            }
            MessageDataItemName::InternalDate => {
                self.out
                    .extend_from_slice(format!("INTERNALDATE \"{}\"", internal_date(entry.internal_date)).as_bytes());
            }
            MessageDataItemName::Rfc822Size => self
                .out
                .extend_from_slice(format!("RFC822.SIZE {}", entry.size).as_bytes()),
            MessageDataItemName::Envelope => {
                self.out.extend_from_slice(b"ENVELOPE ");
                message::envelope(&mut self.out, header);
            }
            MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                let name: &[u8] = if matches!(item, MessageDataItemName::Body) {
                    b"BODY "
                } else {
                    b"BODYSTRUCTURE "
                };
                self.out.extend_from_slice(name);
                match outline {
                    Some(o) => self.out.extend_from_slice(&o.structure),
                    None => message::opaque_structure(&mut self.out, entry.size, header.len()),
                }
            }
            MessageDataItemName::Rfc822Header => {
                self.out.extend_from_slice(b"RFC822.HEADER ");
                super::string_literal(&mut self.out, header);
            }
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => {
                let (label, skip) = if matches!(item, MessageDataItemName::Rfc822) {
                    ("RFC822", 0)
                } else {
                    ("RFC822.TEXT", header.len() as u64)
                };
                self.out.extend_from_slice(format!("{label} ").as_bytes());
                let content = Content::Stream {
                    skip,
                    len: entry.size.saturating_sub(skip),
                };
                self.write_content(io, source, content, None).await?;
            }
            MessageDataItemName::BodyExt { section, partial, .. } => {
                let label = section_label(section.as_ref());
                let content = match section {
                    None => Content::Stream {
                        skip: 0,
                        len: entry.size,
                    },
                    Some(Section::Header(None)) => Content::Bytes(header.to_vec()),
                    Some(Section::Text(None)) => Content::Stream {
                        skip: header.len() as u64,
                        len: entry.size.saturating_sub(header.len() as u64),
                    },
                    Some(Section::HeaderFields(None, names) | Section::HeaderFieldsNot(None, names)) => {
                        let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
                        let names: Vec<Vec<u8>> = names.as_ref().iter().map(|n| n.as_ref().to_vec()).collect();
                        Content::Bytes(message::header_fields(header, &names, not))
                    }
                    Some(other) => part_content(outline, other),
                };
                match partial {
                    Some((origin, _)) => self
                        .out
                        .extend_from_slice(format!("BODY[{label}]<{origin}> ").as_bytes()),
                    None => self.out.extend_from_slice(format!("BODY[{label}] ").as_bytes()),
                }
                let partial = partial.map(|(o, l)| (u64::from(o), u64::from(l.get())));
                self.write_content(io, source, content, partial).await?;
            }
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                self.out.extend_from_slice(b"UID 0");
            }
            #[allow(unreachable_patterns)]
            _ => self.out.extend_from_slice(format!("UID {}", entry.uid).as_bytes()),
        }
        Ok(())
    }
}
