//! Splitting one spooled message into its sealed pieces, sans I/O: sealed
//! spool bytes in; the recipients' copy (`visible.rs`), each attachment and, at
//! the end, the metadata out as [`Piece`]s whose ciphertext the caller takes as
//! it comes. A small message is split whole on one blocking thread and stored
//! as one bundle; a large one streams, its pieces drained to their own blobs
//! after every chunk (`seal.rs`).

use crate::crypto::{DataKey, Opener};
use crate::ingest::headers::HeaderFacts;
use crate::ingest::mime::{Event, Splitter};
use crate::ingest::{self, PartSealer, Piece, SealedMeta};
use crate::layout::MessageBlob;
use crate::visible::HeaderFilter;
use crate::{Error, Result};

/// One message being split.
pub(crate) struct Splitting<'a> {
    opener: Option<Opener>,
    splitter: Splitter,
    filter: HeaderFilter,
    /// The attachments (and the facts of the headers).
    pub parts: PartSealer<'a>,
    /// The recipients' copy of the original.
    pub visible: Piece,
    plain: Vec<u8>,
    shown: Vec<u8>,
    events: Vec<Event>,
}

/// What splitting found, once the whole spool file has authenticated.
pub(crate) struct Split {
    pub meta: SealedMeta,
    pub facts: HeaderFacts,
    /// Plaintext size of the recipients' copy (the size IMAP announces).
    pub size: u64,
}

impl<'a> Splitting<'a> {
    pub fn new(key: &'a DataKey, subject_tag: &'a str) -> Self {
        Self {
            opener: Some(Opener::new(key, ingest::BLOB_ORIGINAL)),
            splitter: Splitter::new(),
            filter: HeaderFilter::new(),
            parts: PartSealer::new(subject_tag, key),
            visible: Piece::new(key, MessageBlob::Visible),
            plain: Vec::new(),
            shown: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Feeds the next sealed bytes of the spool file.
    pub fn push(&mut self, sealed: &[u8]) -> Result<()> {
        self.plain.clear();
        self.opener
            .as_mut()
            .ok_or(Error::Crypto)?
            .update(sealed, &mut self.plain)?;
        self.feed();
        Ok(())
    }

    fn feed(&mut self) {
        // Without the fields no recipient may see, into the recipients' copy;
        // whole, to the MIME splitter.
        self.shown.clear();
        self.filter.push(&self.plain, &mut self.shown);
        self.visible.write(&self.shown);
        self.splitter.push(&self.plain, &mut self.events);
        for event in self.events.drain(..) {
            self.parts.on_event(event);
        }
    }

    /// Every piece with sealed bytes not yet taken: the recipients' copy, then
    /// the attachments in order.
    pub fn pieces_mut(&mut self) -> impl Iterator<Item = &mut Piece> {
        std::iter::once(&mut self.visible).chain(self.parts.parts.iter_mut())
    }

    /// Checks the spool file's end (a file cut short fails here), seals the
    /// last chunks and says what was found. The pieces stay for the caller to
    /// take ([`pieces_mut`](Self::pieces_mut)).
    pub fn finish(&mut self) -> Result<Split> {
        let opener = self.opener.take().ok_or(Error::Crypto)?;
        self.plain.clear();
        opener.finish(&mut self.plain)?;
        self.feed();
        self.shown.clear();
        std::mem::replace(&mut self.filter, HeaderFilter::new()).finish(&mut self.shown);
        self.visible.write(&self.shown);
        self.visible.finish();
        std::mem::replace(&mut self.splitter, Splitter::new()).finish(&mut self.events);
        for event in self.events.drain(..) {
            self.parts.on_event(event);
        }
        let facts = self.parts.headers.take().unwrap_or_default();
        let mut meta = std::mem::take(&mut self.parts.meta);
        meta.subject.clone_from(facts.subject.expose());
        meta.from = match (&facts.from_name, &facts.from) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (None, Some(address)) => address.clone(),
            _ => String::new(),
        };
        meta.to.clone_from(&facts.to);
        meta.cc.clone_from(&facts.cc);
        meta.date = facts.date;
        meta.message_id.clone_from(&facts.message_id);
        meta.notice.clone_from(&facts.notice);
        Ok(Split {
            meta,
            facts,
            size: self.visible.plain_len,
        })
    }
}

/// The metadata, sealed as its own piece.
pub(crate) fn meta_piece(key: &DataKey, meta: &SealedMeta) -> Piece {
    let mut piece = Piece::new(key, MessageBlob::Meta);
    piece.write(&serde_json::to_vec(meta).expect("meta serializes"));
    piece.finish();
    piece
}
