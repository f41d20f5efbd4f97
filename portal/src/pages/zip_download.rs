//! `GET /m/{id}/all.zip` ("Download all"): every attachment of a message in
//! one zip, written while each is decrypted ([`ZipWriter`]): no temporary
//! file, memory bounded by one piece of one file. Each file is opened (and
//! audited as a download) only when the archive reaches it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt as _};

use super::message_id;
use super::zip_writer::{ZipWriter, safe_names};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// "Download all" (signed in).
pub fn routes() -> Routes {
    Routes::new().group(Group::signed_in().get("/m/{id}/all.zip", download_all))
}

/// Where the archive is between two pieces.
enum Step {
    /// The next file to open, by index.
    Open(usize),
    /// Sending the bytes of the file at that index.
    Data(usize, BoxStream<'static, store::Result<Bytes>>),
    /// Every file sent: the central directory is next.
    Directory,
    Done,
}

struct Archive {
    store: Arc<store::Store>,
    user: store::accounts::User,
    id: store::ids::MessageId,
    client: String,
    entries: Vec<(String, u64)>,
    zip: Option<ZipWriter>,
    step: Step,
}

/// Streams the zip; a failure mid-way ends the response early, so the client
/// sees a broken download rather than a quietly short archive.
pub async fn download_all(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let attachments = state.store.mail().attachment_list(&viewer.user, &id).await?;
    if attachments.is_empty() {
        return Err(Error::NotFound);
    }
    let names = safe_names(attachments.iter().map(|a| a.name.as_str()));
    let archive = Archive {
        store: state.store.clone(),
        user: viewer.user,
        id: id.clone(),
        client,
        entries: names.into_iter().zip(attachments.iter().map(|a| a.size)).collect(),
        zip: Some(ZipWriter::new(state.store.now())),
        step: Step::Open(0),
    };
    let body = Body::from_stream(stream::unfold(archive, next_piece));
    let disposition = format!(
        "attachment; filename=\"message-{}.zip\"",
        &id.as_str()[..8.min(id.as_str().len())]
    );
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((headers, body).into_response())
}

type Piece = Result<Bytes, std::io::Error>;

async fn next_piece(mut archive: Archive) -> Option<(Piece, Archive)> {
    loop {
        let zip = archive.zip.as_mut()?;
        match &mut archive.step {
            Step::Open(index) => {
                let index = *index;
                let Some((name, size)) = archive.entries.get(index) else {
                    archive.step = Step::Directory;
                    continue;
                };
                let opened = archive
                    .store
                    .mail()
                    .open_attachment(&archive.user, &archive.id, index, &archive.client)
                    .await;
                match opened {
                    Ok((_, data)) => {
                        let header = zip.begin(name, *size);
                        archive.step = Step::Data(index, data);
                        return Some((Ok(header), archive));
                    }
                    Err(error) => return Some(fail(archive, &error.to_string())),
                }
            }
            Step::Data(index, data) => match data.next().await {
                Some(Ok(chunk)) => {
                    zip.data(&chunk);
                    return Some((Ok(chunk), archive));
                }
                Some(Err(error)) => return Some(fail(archive, &error.to_string())),
                None => match zip.end() {
                    Ok(descriptor) => {
                        archive.step = Step::Open(*index + 1);
                        return Some((Ok(descriptor), archive));
                    }
                    Err(_) => return Some(fail(archive, "attachment size differs from its record")),
                },
            },
            Step::Directory => {
                let directory = archive.zip.take()?.finish();
                archive.step = Step::Done;
                return Some((Ok(directory), archive));
            }
            Step::Done => return None,
        }
    }
}

/// Ends the archive with an error (logged without PHI: no names).
fn fail(mut archive: Archive, error: &str) -> (Piece, Archive) {
    tracing::error!(error, message = %archive.id, "portal: download-all stream failed");
    archive.zip = None;
    archive.step = Step::Done;
    (Err(std::io::Error::other("download-all failed")), archive)
}
