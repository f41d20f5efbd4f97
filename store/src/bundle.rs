//! The one-file layout of a small sealed message (issue 14: one file and two
//! fsyncs instead of one per piece). A bundle holds the pieces a large message
//! keeps as separate blobs (the recipients' copy, the metadata, each
//! attachment), each sealed exactly as it would be on its own: its own blob
//! number under the message's data key, its own chunks, its own last-chunk
//! mark (`crypto.rs`). Only this index is in clear, and it tells no more than
//! separate files' names and sizes would:
//!
//! ```text
//! "SPB1"  count: u16 BE  count × (blob number: u32 BE, length: u64 BE)  pieces…
//! ```
//!
//! The pieces follow in the index's order. An index that lies (a length, a
//! number) only makes a piece fail to open: each chunk's nonce carries its blob
//! number and index, and the last chunk is authenticated as last.

use bytes::Bytes;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"SPB1";
const ENTRY: usize = 4 + 8;

/// Builds a bundle from sealed pieces: `(blob number, sealed bytes)`.
pub(crate) fn build(pieces: &[(u32, &[u8])]) -> Vec<u8> {
    let count = u16::try_from(pieces.len()).expect("a bundle holds at most a few thousand pieces");
    let body: usize = pieces.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + pieces.len() * ENTRY + body);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_be_bytes());
    for (number, bytes) in pieces {
        out.extend_from_slice(&number.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    }
    for (_, bytes) in pieces {
        out.extend_from_slice(bytes);
    }
    out
}

/// The sealed bytes of piece `number` in `bundle`, `None` if it holds no such
/// piece; a bundle whose index does not fit its size is corrupt.
pub(crate) fn piece(bundle: &Bytes, number: u32) -> Result<Option<Bytes>> {
    let corrupt = || Error::Corrupt("a sealed message bundle");
    let rest = bundle.strip_prefix(MAGIC.as_slice()).ok_or_else(corrupt)?;
    let (count, rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let count = usize::from(u16::from_be_bytes(*count));
    let index_len = count.checked_mul(ENTRY).ok_or_else(corrupt)?;
    let index = rest.get(..index_len).ok_or_else(corrupt)?;
    let mut offset = MAGIC.len() + 2 + index_len;
    let mut found = None;
    for entry in index.chunks_exact(ENTRY) {
        let (n, len) = entry.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = usize::try_from(u64::from_be_bytes(len.try_into().map_err(|_| corrupt())?)).map_err(|_| corrupt())?;
        let end = offset.checked_add(len).ok_or_else(corrupt)?;
        if end > bundle.len() {
            return Err(corrupt());
        }
        if u32::from_be_bytes(*n) == number && found.is_none() {
            found = Some(bundle.slice(offset..end));
        }
        offset = end;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKey, open_all, seal_all};

    #[test]
    fn pieces_come_back_as_sealed_and_open_under_their_own_numbers() {
        let key = DataKey::generate();
        let visible = seal_all(&key, u32::MAX, b"From: a\r\n\r\nhello");
        let meta = seal_all(&key, 2, b"{}");
        let part = seal_all(&key, 3, &vec![7u8; 200_000]);
        let bundle = Bytes::from(build(&[(u32::MAX, &visible), (2, &meta), (3, &part)]));
        assert_eq!(piece(&bundle, 2).unwrap().unwrap(), meta);
        assert_eq!(
            open_all(&key, 3, &piece(&bundle, 3).unwrap().unwrap()).unwrap(),
            vec![7u8; 200_000]
        );
        assert_eq!(
            open_all(&key, u32::MAX, &piece(&bundle, u32::MAX).unwrap().unwrap()).unwrap(),
            b"From: a\r\n\r\nhello"
        );
        assert!(piece(&bundle, 4).unwrap().is_none());
    }

    #[test]
    fn a_lying_index_is_an_error_or_a_piece_that_does_not_open() {
        let key = DataKey::generate();
        let meta = seal_all(&key, 2, b"{\"subject\":\"x\"}");
        let part = seal_all(&key, 3, b"attachment");
        let good = build(&[(2, &meta), (3, &part)]);
        // Truncated: the index promises more than is there.
        let cut = Bytes::from(good[..good.len() - 1].to_vec());
        assert!(matches!(piece(&cut, 3), Err(Error::Corrupt(_))));
        assert!(matches!(piece(&Bytes::from_static(b"SPB"), 2), Err(Error::Corrupt(_))));
        assert!(matches!(
            piece(&Bytes::from_static(b"XXXX\0\0"), 2),
            Err(Error::Corrupt(_))
        ));
        // Numbers swapped: each piece is found, and neither opens.
        let mut swapped = good.clone();
        swapped[6..10].copy_from_slice(&3u32.to_be_bytes());
        swapped[18..22].copy_from_slice(&2u32.to_be_bytes());
        let swapped = Bytes::from(swapped);
        assert!(open_all(&key, 2, &piece(&swapped, 2).unwrap().unwrap()).is_err());
        assert!(open_all(&key, 3, &piece(&swapped, 3).unwrap().unwrap()).is_err());
        // A length moved between neighbours: both fail to open.
        let mut shifted = good;
        let first = u64::try_from(meta.len()).unwrap();
        shifted[10..18].copy_from_slice(&(first - 1).to_be_bytes());
        shifted[22..30].copy_from_slice(&(u64::try_from(part.len()).unwrap() + 1).to_be_bytes());
        let shifted = Bytes::from(shifted);
        assert!(open_all(&key, 2, &piece(&shifted, 2).unwrap().unwrap()).is_err());
        assert!(open_all(&key, 3, &piece(&shifted, 3).unwrap().unwrap()).is_err());
    }
}
