//! The MIME outline of one message: its BODYSTRUCTURE text and where each
//! part's header and body lie in the original. It is computed once per message
//! (the whole message parsed off the async workers, within a global memory
//! budget) and kept in a bounded in-memory cache, so a FETCH never re-parses a
//! message and `BODY[n]` streams the part's octets from the sealed original
//! instead of copying them into memory.
//!
//! The outline holds PHI (attachment names in BODYSTRUCTURE): it lives only in
//! this process's memory, never on disk, and is dropped when the message is
//! found gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use mail_parser::{Message, MessageParser, PartType};
use store::ids::MessageId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::message;

/// A range of the original, `start..end`; `None` when the octets are not a
/// slice of it (inside an embedded message that had to be decoded first).
pub type Span = Option<(u64, u64)>;

/// Which piece of a part a section names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// `BODY[n]`: the part's body (for a message/rfc822 part, the whole message).
    Body,
    /// `BODY[n.MIME]`: the part's own header.
    Mime,
    /// `BODY[n.HEADER]` / `BODY[n.TEXT]` of a message/rfc822 part.
    Header,
    Text,
}

#[derive(Debug)]
enum Kind {
    Leaf,
    /// Node indexes of the children, in order.
    Multipart(Vec<u32>),
    /// An embedded message: its root node, its header block and its text.
    Message {
        root: u32,
        header: Span,
        text: Span,
    },
}

#[derive(Debug)]
struct Node {
    mime: Span,
    body: Span,
    kind: Kind,
}

/// What FETCH needs to know about a message's MIME structure.
#[derive(Debug)]
pub struct Outline {
    /// BODYSTRUCTURE / BODY (RFC 3501 §7.4.2), without extension data.
    pub structure: Vec<u8>,
    /// Node 0 is the message's root part; empty when the message did not parse.
    nodes: Vec<Node>,
}

impl Outline {
    /// Parses `whole` (CPU-heavy: call from a blocking thread). A message that
    /// does not parse is described as one opaque part with no sections.
    pub fn parse(whole: &[u8]) -> Self {
        let Some(parsed) = MessageParser::default().parse(whole) else {
            let mut structure = Vec::new();
            let header = message::blank_line(whole).unwrap_or(whole.len());
            message::opaque_structure(&mut structure, whole.len() as u64, header);
            return Self {
                structure,
                nodes: Vec::new(),
            };
        };
        let mut structure = Vec::new();
        message::body_structure(&mut structure, &parsed);
        Self {
            structure,
            nodes: nodes(&parsed),
        }
    }

    /// Roughly how much memory this outline holds.
    pub fn weight(&self) -> usize {
        let children: usize = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                Kind::Multipart(c) => c.len() * 4,
                _ => 0,
            })
            .sum();
        self.structure.len() + self.nodes.len() * std::mem::size_of::<Node>() + children
    }

    /// Where section `path` (part numbers from 1) and `piece` lie: `None` if
    /// there is no such section, `Some(None)` if it is not a slice of the
    /// original. Iterative, so a deep path costs nothing but its length.
    pub fn section(&self, path: &[u32], piece: Piece) -> Option<Span> {
        let mut index = 0usize;
        // Steps taken inside the current (possibly embedded) message.
        let mut local = 0usize;
        let mut step = 0usize;
        while let Some(&n) = path.get(step) {
            match &self.nodes.get(index)?.kind {
                Kind::Multipart(children) => {
                    index = *children.get((n as usize).checked_sub(1)?)? as usize;
                    step += 1;
                    local += 1;
                }
                // Part numbers past an embedded message count within it.
                Kind::Message { root, .. } if local > 0 => {
                    index = *root as usize;
                    local = 0;
                }
                _ if n == 1 && local == 0 => {
                    step += 1;
                    local += 1;
                }
                _ => return None,
            }
        }
        let node = self.nodes.get(index)?;
        match (piece, &node.kind) {
            (Piece::Body, _) => Some(node.body),
            (Piece::Mime, _) => Some(node.mime),
            (Piece::Header, Kind::Message { header, .. }) => Some(*header),
            (Piece::Text, Kind::Message { text, .. }) => Some(*text),
            _ => None,
        }
    }
}

/// The part tree of `parsed` and of every message embedded in it, as flat
/// nodes with absolute offsets (a work list, not recursion).
fn nodes(parsed: &Message<'_>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    // (message, where its raw octets start in the original, the node whose root it is)
    let mut pending: VecDeque<(&Message<'_>, Option<u64>, Option<usize>)> = VecDeque::from([(parsed, Some(0), None)]);
    while let Some((msg, raw_start, parent)) = pending.pop_front() {
        let start = nodes.len();
        if let Some(parent) = parent
            && let Some(Node {
                kind: Kind::Message { root, .. },
                ..
            }) = nodes.get_mut(parent)
        {
            *root = u32::try_from(start).unwrap_or(u32::MAX);
        }
        let raw = msg.raw_message();
        let origin = message::origin(msg);
        let span = |from: u32, to: u32| {
            let from = u64::from(from.checked_sub(origin)?);
            let to = u64::from(to.checked_sub(origin)?).max(from);
            raw_start.map(|s| (s + from, s + to))
        };
        for (i, part) in msg.parts.iter().enumerate() {
            let kind = match &part.body {
                PartType::Multipart(children) => Kind::Multipart(
                    children
                        .iter()
                        .map(|c| u32::try_from(start + *c as usize).unwrap_or(u32::MAX))
                        .collect(),
                ),
                PartType::Message(inner) => {
                    let inner_raw = inner.raw_message();
                    // Usable only if the embedded message's octets are the
                    // part's body as sent (not decoded from base64, say).
                    let body_at = part.offset_body.saturating_sub(origin);
                    let body = raw.get(body_at as usize..).unwrap_or_default();
                    let inner_start = raw_start
                        .filter(|_| body.starts_with(inner_raw))
                        .map(|s| s + u64::from(body_at));
                    let split = message::blank_line(inner_raw).unwrap_or(inner_raw.len()) as u64;
                    let whole = inner_raw.len() as u64;
                    pending.push_back((inner, inner_start, Some(start + i)));
                    Kind::Message {
                        root: u32::MAX,
                        header: inner_start.map(|s| (s, s + split)),
                        text: inner_start.map(|s| (s + split, s + whole)),
                    }
                }
                _ => Kind::Leaf,
            };
            nodes.push(Node {
                mime: span(part.offset_header, part.offset_body),
                body: span(part.offset_body, part.offset_end),
                kind,
            });
        }
    }
    nodes
}

/// Bytes of outlines kept in the cache, all messages together.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// An outline larger than this is used once and not kept.
const CACHE_ENTRY_MAX: usize = 4 * 1024 * 1024;
/// Memory all parses in flight may use together, in KiB (one permit each). A
/// parse reserves about three times the message: its octets, decoded copies
/// of its parts, and the parser's own structures.
const PARSE_BUDGET_KIB: usize = 128 * 1024;

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<MessageId, Arc<Outline>>,
    order: VecDeque<MessageId>,
    bytes: usize,
}

/// The outline cache and the parse budget every session shares.
#[derive(Debug)]
pub struct Outlines {
    cache: Mutex<Cache>,
    budget: Arc<Semaphore>,
}

impl Default for Outlines {
    fn default() -> Self {
        Self {
            cache: Mutex::default(),
            budget: Arc::new(Semaphore::new(PARSE_BUDGET_KIB)),
        }
    }
}

impl Outlines {
    pub fn get(&self, id: &MessageId) -> Option<Arc<Outline>> {
        self.cache.lock().ok()?.map.get(id).cloned()
    }

    /// Keeps `outline` (oldest entries make room), unless it is too large.
    pub fn insert(&self, id: MessageId, outline: Arc<Outline>) {
        let weight = outline.weight();
        if weight > CACHE_ENTRY_MAX {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        while cache.bytes + weight > CACHE_BYTES {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            if let Some(gone) = cache.map.remove(&old) {
                cache.bytes -= gone.weight();
            }
        }
        if let Some(previous) = cache.map.insert(id.clone(), outline) {
            cache.bytes -= previous.weight();
        } else {
            cache.order.push_back(id);
        }
        cache.bytes += weight;
    }

    /// Drops a message's outline (it was deleted or expired).
    pub fn forget(&self, id: &MessageId) {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(gone) = cache.map.remove(id)
        {
            cache.bytes -= gone.weight();
            cache.order.retain(|o| o != id);
        }
    }

    /// Waits until parsing a message of `size` octets fits the global budget.
    pub async fn reserve(&self, size: u64) -> Option<OwnedSemaphorePermit> {
        let kib = size.saturating_mul(3) / 1024 + 1;
        let permits = u32::try_from(kib.min(PARSE_BUDGET_KIB as u64)).unwrap_or(u32::MAX);
        Arc::clone(&self.budget).acquire_many_owned(permits).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: Ada <ada@smiles.example>\r\nTo: pat@example.org\r\nSubject: Hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--c--\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";

    fn get(outline: &Outline, path: &[u32], piece: Piece) -> Option<&'static [u8]> {
        let (from, to) = outline.section(path, piece)??;
        MAIL.get(usize::try_from(from).unwrap()..usize::try_from(to).unwrap())
    }

    #[test]
    fn sections_are_ranges_of_the_original() {
        let outline = Outline::parse(MAIL);
        assert_eq!(get(&outline, &[1], Piece::Body), Some(&b"hello"[..]));
        assert_eq!(get(&outline, &[3], Piece::Body), Some(&b"AAAA"[..]));
        assert_eq!(
            get(&outline, &[3], Piece::Mime),
            Some(&b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"[..])
        );
        assert!(
            get(&outline, &[2], Piece::Header)
                .unwrap()
                .starts_with(b"Subject: inner")
        );
        assert_eq!(get(&outline, &[2, 1], Piece::Body), Some(&b"inner text"[..]));
        assert_eq!(outline.section(&[4], Piece::Body), None);
        assert_eq!(outline.section(&[1], Piece::Header), None);
        let text = String::from_utf8(outline.structure.clone()).unwrap();
        assert!(
            text.contains("\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 119 "),
            "{text}"
        );
        assert!(
            text.contains("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0)"),
            "{text}"
        );
    }

    #[test]
    fn a_single_part_message_is_part_one() {
        let outline = Outline::parse(b"Subject: x\r\n\r\nbody\r\n");
        let (from, to) = outline.section(&[1], Piece::Body).unwrap().unwrap();
        assert_eq!(from..to, 14..20);
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let outlines = Outlines::default();
        let outline = Arc::new(Outline::parse(MAIL));
        let per = outline.weight();
        let n = CACHE_BYTES / per + 10;
        let ids: Vec<MessageId> = (0..n).map(|_| MessageId::generate()).collect();
        for id in &ids {
            outlines.insert(id.clone(), Arc::clone(&outline));
        }
        let cache = outlines.cache.lock().unwrap();
        assert!(cache.bytes <= CACHE_BYTES);
        assert!(cache.map.len() < n && cache.map.len() == cache.order.len());
        drop(cache);
        assert!(outlines.get(&ids[0]).is_none() && outlines.get(&ids[n - 1]).is_some());
        outlines.forget(&ids[n - 1]);
        assert!(outlines.get(&ids[n - 1]).is_none());
    }
}
