//! FETCH and UID FETCH (RFC 3501 §6.4.5): flags, sizes and dates from the
//! database; ENVELOPE and header sections from the decrypted header block;
//! BODYSTRUCTURE from the message's cached outline; BODY[] / RFC822 /
//! BODY[TEXT] / BODY[n] streamed from the sealed original as a literal, in
//! bounded memory. The response goes out item by item, and one command names
//! at most [`MAX_FETCH_ITEMS`] items. A body fetch without PEEK sets `\Seen`
//! (the portal's read state) and is audited as a view.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_codec::imap_types::sequence::SequenceSet;
use std::sync::Arc;

use store::mailbox::{Flags, MailEntry};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::format::{flag_list, internal_date};
use super::message;
use super::outline::Outline;
use super::sections::{Content, part_content, section_label, wants_parts};
use super::sequence::chosen;
use super::session::{Session, State};

/// Most data items one FETCH may name (a client needs a handful; each body
/// item costs a pass over the sealed original).
pub(crate) const MAX_FETCH_ITEMS: usize = 64;
/// Response bytes held before they are written out.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// What one FETCH response line is made from.
#[derive(Clone, Copy)]
struct Fetched<'a> {
    user: &'a store::accounts::User,
    entry: &'a MailEntry,
    client: &'a str,
    /// The message's header block.
    header: &'a [u8],
    /// The message's outline, when a part was asked for and it is small.
    outline: Option<&'a Outline>,
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
        let client = format!("imap:{}", self.peer.ip());
        for index in indexes {
            let State::Selected(_, selected) = &self.state else {
                break;
            };
            let mut entry = selected.entries[index].clone();
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
            let needs_header = views_body
                || items.iter().any(|i| {
                    matches!(
                        i,
                        MessageDataItemName::Envelope | MessageDataItemName::Body | MessageDataItemName::BodyStructure
                    )
                });
            let mut header = Vec::new();
            if needs_header {
                match self
                    .server
                    .store
                    .mail()
                    .open_original(&user, &entry.id, &client, views_body)
                    .await
                {
                    Ok(stream) => match message::header_block(stream).await {
                        Ok(block) => header = block,
                        Err(error) => {
                            self.store_failed(tag, &error);
                            return Ok(());
                        }
                    },
                    // Gone meanwhile (deleted by its sender, expired): skip it.
                    Err(store::Error::NotFound) => {
                        self.server.outlines.forget(&entry.id);
                        continue;
                    }
                    Err(error) => {
                        self.store_failed(tag, &error);
                        return Ok(());
                    }
                }
            }
            let mut flags_changed = false;
            if sets_seen && !read_only && !entry.flags.has(Flags::SEEN) {
                let flags = Flags(entry.flags.0 | Flags::SEEN);
                if let Err(error) = self
                    .server
                    .store
                    .mail()
                    .mailbox_set_flags(&user, mailbox, &entry.id, flags)
                    .await
                {
                    self.store_failed(tag, &error);
                    return Ok(());
                }
                entry.flags = flags;
                flags_changed = true;
                if let State::Selected(_, selected) = &mut self.state {
                    selected.entries[index].flags = flags;
                }
            }
            // The whole message parsed only when a part is asked for, and only if small.
            let outline = if wants_parts(&items) && entry.size <= message::MAX_STRUCTURE {
                match self.outline(&user, &entry, &client).await {
                    Ok(outline) => outline,
                    Err(error) => {
                        self.store_failed(tag, &error);
                        return Ok(());
                    }
                }
            } else {
                None
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
                    user: &user,
                    entry: &entry,
                    client: &client,
                    header: &header,
                    outline: outline.as_deref(),
                };
                self.write_item(io, item, fetched).await?;
                if self.out.len() > OUT_HIGH_WATER {
                    self.flush(io).await?;
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
            user,
            entry,
            client,
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
                self.write_content(io, user, entry, client, content, None).await?;
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
                self.write_content(io, user, entry, client, content, partial).await?;
            }
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                self.out.extend_from_slice(b"UID 0");
            }
            #[allow(unreachable_patterns)]
            _ => self.out.extend_from_slice(format!("UID {}", entry.uid).as_bytes()),
        }
        Ok(())
    }

    /// The message's outline: from the cache, or parsed now (on a blocking
    /// thread, once the global parse budget has room). `None` if parsing failed.
    async fn outline(
        &self,
        user: &store::accounts::User,
        entry: &MailEntry,
        client: &str,
    ) -> store::Result<Option<Arc<Outline>>> {
        let outlines = &self.server.outlines;
        if let Some(outline) = outlines.get(&entry.id) {
            return Ok(Some(outline));
        }
        let _permit = outlines.reserve(entry.size).await;
        // Another session may have parsed it while this one waited.
        if let Some(outline) = outlines.get(&entry.id) {
            return Ok(Some(outline));
        }
        let whole = self.read_range(user, entry, client, 0, entry.size).await?;
        match tokio::task::spawn_blocking(move || Outline::parse(&whole)).await {
            Ok(outline) => {
                let outline = Arc::new(outline);
                outlines.insert(entry.id.clone(), Arc::clone(&outline));
                Ok(Some(outline))
            }
            Err(error) => {
                tracing::warn!(%error, peer = %self.peer, "imap: parsing a message's structure failed");
                Ok(None)
            }
        }
    }

    /// `len` octets of the original from `skip` (fewer if it is shorter).
    async fn read_range(
        &self,
        user: &store::accounts::User,
        entry: &MailEntry,
        client: &str,
        mut skip: u64,
        len: u64,
    ) -> store::Result<Vec<u8>> {
        let mut stream = self
            .server
            .store
            .mail()
            .open_original(user, &entry.id, client, false)
            .await?;
        let mut out = Vec::with_capacity(usize::try_from(len.min(entry.size)).unwrap_or(0));
        let mut left = usize::try_from(len).unwrap_or(usize::MAX);
        while left > 0 {
            let Some(chunk) = stream.next().await else {
                break;
            };
            let chunk = chunk?;
            let drop = usize::try_from(skip.min(chunk.len() as u64)).unwrap_or(0);
            skip -= drop as u64;
            let data = &chunk[drop..];
            let take = left.min(data.len());
            out.extend_from_slice(&data[..take]);
            left -= take;
        }
        Ok(out)
    }

    /// Writes one body item's value: NIL, a literal from memory, or a literal
    /// streamed from the original (`partial` = origin and length, RFC 3501 §6.4.5).
    async fn write_content<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        user: &store::accounts::User,
        entry: &MailEntry,
        client: &str,
        content: Content,
        partial: Option<(u64, u64)>,
    ) -> std::io::Result<()> {
        let clip = |skip: u64, len: u64| match partial {
            Some((origin, max)) => (skip + origin.min(len), len.saturating_sub(origin).min(max)),
            None => (skip, len),
        };
        match content {
            Content::Missing => self.out.extend_from_slice(b"NIL"),
            Content::Fields { skip, len, names, not } => {
                let len = len.min(message::MAX_HEADER as u64);
                let block = self
                    .read_range(user, entry, client, skip, len)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let fields = message::header_fields(&block, &names, not);
                let (from, len) = clip(0, fields.len() as u64);
                let from = usize::try_from(from).unwrap_or(0);
                let len = usize::try_from(len).unwrap_or(0);
                super::string_literal(&mut self.out, &fields[from..from + len]);
            }
            Content::Bytes(bytes) => {
                let (from, len) = clip(0, bytes.len() as u64);
                let from = usize::try_from(from).unwrap_or(0);
                let len = usize::try_from(len).unwrap_or(0);
                super::string_literal(&mut self.out, &bytes[from..from + len]);
            }
            Content::Stream { skip, len } => {
                let (skip, len) = clip(skip, len);
                let stream = match self
                    .server
                    .store
                    .mail()
                    .open_original(user, &entry.id, client, false)
                    .await
                {
                    Ok(stream) => stream,
                    Err(error) => return Err(std::io::Error::other(error.to_string())),
                };
                self.out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                self.flush(io).await?;
                stream_range(io, stream, skip, len).await?;
            }
        }
        Ok(())
    }
}

/// Writes exactly `len` octets of the stream after skipping `skip`. If the
/// original is shorter than promised the connection can't continue: error.
async fn stream_range<S: AsyncWrite + Unpin>(
    io: &mut S,
    mut stream: BoxStream<'static, store::Result<Bytes>>,
    mut skip: u64,
    mut len: u64,
) -> std::io::Result<()> {
    while len > 0 {
        let Some(chunk) = stream.next().await else {
            return Err(std::io::Error::other("original shorter than its recorded size"));
        };
        let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut data = &chunk[..];
        let drop = usize::try_from(skip.min(data.len() as u64)).unwrap_or(0);
        data = &data[drop..];
        skip -= drop as u64;
        let take = usize::try_from(len.min(data.len() as u64)).unwrap_or(0);
        io.write_all(&data[..take]).await?;
        len -= take as u64;
    }
    Ok(())
}
