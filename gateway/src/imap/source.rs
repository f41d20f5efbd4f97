//! Where a FETCH takes a message's octets from: the whole message decrypted
//! once for the command when it is small (every item of it is then a slice),
//! or the sealed original opened again for each item when it is large (in
//! bounded memory). Literals go into the session's response buffer, which is
//! written out whenever it passes the high-water mark, never flushed here.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use store::mailbox::{MailEntry, Readable};
use tokio::io::AsyncWrite;

use super::message;
use super::outline::Outline;
use super::sections::Content;
use super::session::Session;

/// Response bytes held before they are written out (not flushed: the one
/// flush comes at the end of the command).
pub(crate) const OUT_HIGH_WATER: usize = 256 * 1024;

/// Messages up to this size are decrypted whole once per FETCH when any body
/// item of theirs is asked for.
pub(crate) const WHOLE_MAX: u64 = 1024 * 1024;

/// Messages opened ahead of the one being written: at most this many…
const AHEAD_MESSAGES: usize = 16;
/// …and about this many octets of them (a message over it goes alone).
const AHEAD_BYTES: u64 = 2 * 1024 * 1024;

/// A message opened for one FETCH.
pub(crate) enum Source {
    /// The whole message, decrypted.
    Whole(Bytes),
    /// A message too large to hold: streamed from the sealed original per item.
    Sealed(Readable),
}

impl Source {
    /// Reads a small message whole.
    pub(crate) async fn whole(mail: &store::Mail<'_>, message: &Readable, size: u64) -> store::Result<Self> {
        let mut stream = mail.mailbox_open(message).await?;
        let mut whole = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            whole.extend_from_slice(&chunk?);
            if whole.len() as u64 > WHOLE_MAX {
                return Err(store::Error::Corrupt("original longer than its recorded size"));
            }
        }
        Ok(Self::Whole(Bytes::from(whole)))
    }

    /// The header block of a whole message (through the blank line).
    pub(crate) fn header_block(&self) -> Vec<u8> {
        let Self::Whole(whole) = self else {
            return Vec::new();
        };
        let head = &whole[..whole.len().min(message::MAX_HEADER + 4)];
        let end = message::blank_line(head).unwrap_or(head.len()).min(message::MAX_HEADER);
        whole[..end].to_vec()
    }
}

/// A message opened (or why not), with its header block.
pub(crate) type Opened = store::Result<(Source, Vec<u8>)>;

/// Opens a message for a FETCH: decrypted whole when its body is wanted and
/// it is small, otherwise only its header block is read (the body is streamed
/// per item from the sealed original).
async fn open(store: &store::Store, message: &Readable, size: u64, body: bool) -> Opened {
    let mail = store.mail();
    if body && size <= WHOLE_MAX {
        let whole = Source::whole(&mail, message, size).await?;
        let header = whole.header_block();
        return Ok((whole, header));
    }
    let header = message::header_block(mail.mailbox_open(message).await?).await?;
    Ok((Source::Sealed(message.clone()), header))
}

/// A message being opened on its own task; dropping it stops the task.
struct Opening {
    task: tokio::task::JoinHandle<Opened>,
    size: u64,
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The messages of one FETCH, opened in order on their own tasks, a few ahead
/// of the one being written (so reading and decrypting the next ones overlaps
/// writing this one), within [`AHEAD_MESSAGES`] and [`AHEAD_BYTES`].
pub(crate) struct Ahead {
    store: Arc<store::Store>,
    body: bool,
    waiting: VecDeque<(Readable, u64)>,
    opening: VecDeque<Opening>,
}

impl Ahead {
    /// `messages` in the order they will be taken, with their sizes; `body`:
    /// whether their bodies are wanted.
    pub(crate) fn new(store: Arc<store::Store>, body: bool, messages: Vec<(Readable, u64)>) -> Self {
        let mut ahead = Self {
            store,
            body,
            waiting: messages.into(),
            opening: VecDeque::new(),
        };
        ahead.fill();
        ahead
    }

    fn fill(&mut self) {
        while let Some((_, size)) = self.waiting.front() {
            let busy: u64 = self.opening.iter().map(|o| o.size).sum();
            if !self.opening.is_empty() && (self.opening.len() >= AHEAD_MESSAGES || busy + size > AHEAD_BYTES) {
                break;
            }
            let Some((message, size)) = self.waiting.pop_front() else {
                break;
            };
            let (store, body) = (Arc::clone(&self.store), self.body);
            let task = tokio::spawn(async move { open(&store, &message, size, body).await });
            // A large message streamed later holds only its header here.
            let held = if body && size <= WHOLE_MAX { size } else { 0 };
            self.opening.push_back(Opening { task, size: held });
        }
    }

    /// The next message, opened.
    pub(crate) async fn next(&mut self) -> Option<Opened> {
        let mut opening = self.opening.pop_front()?;
        let opened = match (&mut opening.task).await {
            Ok(opened) => opened,
            Err(error) => Err(store::Error::Io(std::io::Error::other(error.to_string()))),
        };
        self.fill();
        Some(opened)
    }
}

impl Session {
    /// Writes the response buffer out (without flushing the connection).
    pub(crate) async fn drain<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        if !self.out.is_empty() {
            tokio::io::AsyncWriteExt::write_all(io, &self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The message's outline: from the cache, or parsed now (on a blocking
    /// thread, once the global parse budget has room). `None` if parsing failed.
    pub(crate) async fn outline(&self, entry: &MailEntry, source: &Source) -> store::Result<Option<Arc<Outline>>> {
        let outlines = &self.server.outlines;
        if let Some(outline) = outlines.get(&entry.id) {
            return Ok(Some(outline));
        }
        let _permit = outlines.reserve(entry.size).await;
        // Another session may have parsed it while this one waited.
        if let Some(outline) = outlines.get(&entry.id) {
            return Ok(Some(outline));
        }
        let whole = match source {
            Source::Whole(whole) => whole.clone(),
            Source::Sealed(_) => Bytes::from(self.read_range(source, 0, entry.size).await?),
        };
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
    async fn read_range(&self, source: &Source, mut skip: u64, len: u64) -> store::Result<Vec<u8>> {
        let message = match source {
            Source::Whole(whole) => {
                let from = usize::try_from(skip).unwrap_or(usize::MAX).min(whole.len());
                let to = from
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(whole.len());
                return Ok(whole[from..to].to_vec());
            }
            Source::Sealed(message) => message,
        };
        let mut stream = self.server.store.mail().mailbox_open(message).await?;
        let mut out = Vec::new();
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
    /// of a range of the original (`partial` = origin and length, RFC 3501 §6.4.5).
    pub(super) async fn write_content<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        source: Option<&Source>,
        content: Content,
        partial: Option<(u64, u64)>,
    ) -> std::io::Result<()> {
        let clip = |skip: u64, len: u64| match partial {
            Some((origin, max)) => (skip + origin.min(len), len.saturating_sub(origin).min(max)),
            None => (skip, len),
        };
        let no_source = || std::io::Error::other("a body item without its message opened");
        match content {
            Content::Missing => self.out.extend_from_slice(b"NIL"),
            Content::Fields { skip, len, names, not } => {
                let len = len.min(message::MAX_HEADER as u64);
                let block = self
                    .read_range(source.ok_or_else(no_source)?, skip, len)
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
                match source.ok_or_else(no_source)? {
                    Source::Whole(whole) => {
                        let from = usize::try_from(skip).unwrap_or(usize::MAX);
                        let to = usize::try_from(skip + len).unwrap_or(usize::MAX);
                        let Some(range) = whole.get(from..to) else {
                            return Err(std::io::Error::other("original shorter than its recorded size"));
                        };
                        self.out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                        self.out.extend_from_slice(range);
                    }
                    Source::Sealed(message) => {
                        let stream = self
                            .server
                            .store
                            .mail()
                            .mailbox_open(message)
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        self.out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                        self.stream_range(io, stream, skip, len).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes exactly `len` octets of the stream after skipping `skip`, through
    /// the response buffer. If the original is shorter than promised the
    /// connection can't continue: error.
    async fn stream_range<S: AsyncWrite + Unpin>(
        &mut self,
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
            self.out.extend_from_slice(&data[..take]);
            len -= take as u64;
            if self.out.len() > OUT_HIGH_WATER {
                self.drain(io).await?;
            }
        }
        Ok(())
    }
}
