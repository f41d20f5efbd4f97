//! `GET /m/{id}/a/{index}`: downloads one attachment, streamed and decrypted on
//! the fly, always as a download (never rendered by the browser).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;

use super::message_id;
use crate::routes::{Group, Routes};
use crate::sanitize::{content_disposition, download_content_type};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// Attachment downloads (signed in).
pub fn routes() -> Routes {
    Routes::new().group(Group::signed_in().get("/m/{id}/a/{index}", download))
}

/// Streams the attachment with headers that make browsers save it as a file.
pub async fn download(
    State(state): State<AppState>,
    Client(client): Client,
    Path((id, index)): Path<(String, String)>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let index: usize = index.parse().map_err(|_| Error::NotFound)?;
    let (meta, stream) = state
        .store
        .mail()
        .open_attachment(&viewer.user, &id, index, &client)
        .await?;
    let message = id.to_string();
    let body = Body::from_stream(stream.inspect_err(move |error| {
        // Store errors carry no PHI; the file's name is never logged.
        tracing::error!(%error, message, index, "portal: attachment stream failed");
    }));
    let content_type = HeaderValue::from_str(&download_content_type(&meta.content_type))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition =
        HeaderValue::from_str(&content_disposition(&meta.name)).unwrap_or(HeaderValue::from_static("attachment"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CONTENT_LENGTH, HeaderValue::from(meta.size)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((headers, body).into_response())
}
