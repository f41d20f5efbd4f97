//! Reading sealed files: a local file streamed in 256 KiB pieces, and a stream of
//! sealed chunks turned into verified plaintext as it passes. The blob store, the
//! sealer (reading the spool) and the delivery worker (reading the outbound
//! queue) all read this way.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

use crate::Result;
use crate::crypto::Opener;

/// Streams a file's bytes in 256 KiB pieces.
pub(crate) async fn file_stream(path: &Path) -> Result<BoxStream<'static, Result<Bytes>>> {
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            crate::Error::NotFound
        } else {
            e.into()
        }
    })?;
    Ok(file_chunks(file))
}

/// Streams an open file's bytes in 256 KiB pieces.
pub(crate) fn file_chunks(file: tokio::fs::File) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold(file, |mut file| async move {
        // Read into spare capacity: zeroing 256 KiB for every read (twice for a
        // small file: its bytes, then the end) was most of an IMAP FETCH's CPU.
        let mut buf = BytesMut::with_capacity(256 * 1024);
        let n = file.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((buf.freeze(), file)))
    })
    .boxed()
}

/// Streams the first `len` bytes of an open file (its size, known from its
/// metadata): no read past the end just to learn it is the end, and no buffer
/// larger than what is left.
pub(crate) fn file_chunks_sized(file: tokio::fs::File, len: u64) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let mut buf = BytesMut::with_capacity(usize::try_from(left.min(256 * 1024)).unwrap_or(256 * 1024));
        let n = file.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((buf.freeze(), (file, left.saturating_sub(n as u64)))))
    })
    .boxed()
}

/// Turns a stream of sealed bytes into a stream of verified plaintext.
pub(crate) fn open_sealed_stream(
    sealed: BoxStream<'static, Result<Bytes>>,
    opener: Opener,
) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold((sealed, Some(opener)), |(mut sealed, mut opener)| async move {
        loop {
            let Some(active) = opener.as_mut() else { return Ok(None) };
            let mut out = Vec::new();
            match sealed.next().await {
                Some(chunk) => active.update(&chunk?, &mut out)?,
                None => opener.take().expect("checked above").finish(&mut out)?,
            }
            if !out.is_empty() {
                return Ok(Some((Bytes::from(out), (sealed, opener))));
            }
        }
    })
    .boxed()
}
