//! `/uploads`: the resumable upload endpoint, tus 1.0 core with the creation and
//! termination extensions (<https://tus.io/protocols/resumable-upload>).
//! `POST /uploads` (`Upload-Length`, `Upload-Metadata: filename <base64>`) makes
//! an upload and answers its `Location`; `HEAD /uploads/{id}` says how far it
//! got (`Upload-Offset`); `PATCH /uploads/{id}` (`Upload-Offset`, body
//! `application/offset+octet-stream`) continues it, streamed and sealed as it
//! arrives; `DELETE /uploads/{id}` removes it. `GET /uploads/{id}` gives its
//! owner a finished upload back as a download. Every request is the signed-in
//! owner's (anyone else gets 404); state-changing ones carry `X-CSRF-Token`.
//! Answers are plain text a script can show; file names are never logged.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::{StreamExt as _, TryStreamExt as _};
use store::accounts::User;
use store::uploads::{UploadId, UploadStatus};

use crate::AppState;
use crate::routes::{Group, Routes};
use crate::sanitize::{content_disposition, download_content_type};
use crate::session::Viewer;

/// The protocol version spoken (the only one).
pub const TUS_VERSION: &str = "1.0.0";
const TUS_RESUMABLE: &str = "tus-resumable";
const UPLOAD_OFFSET: &str = "upload-offset";
const UPLOAD_LENGTH: &str = "upload-length";
const UPLOAD_METADATA: &str = "upload-metadata";
/// The longest `Upload-Metadata` header read.
const MAX_METADATA: usize = 4096;

/// The upload endpoint (signed in; CSRF by header).
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .post("/uploads", create)
            .head("/uploads/{id}", head)
            .get("/uploads/{id}", download)
            .patch("/uploads/{id}", patch)
            .delete("/uploads/{id}", delete),
    )
}

/// A tus answer: the status, the protocol header, and a text for people.
fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [
            (
                header::HeaderName::from_static(TUS_RESUMABLE),
                HeaderValue::from_static(TUS_VERSION),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        text.into(),
    )
        .into_response()
}

/// A store error as a tus answer. Texts written for the person (which may
/// name their file) go to them, never to the log.
fn failed(error: store::Error) -> Response {
    match error {
        store::Error::NotFound | store::Error::Forbidden(_) => answer(StatusCode::NOT_FOUND, "No such upload."),
        store::Error::Conflict(text) => answer(StatusCode::CONFLICT, text),
        store::Error::Invalid(text) => answer(StatusCode::BAD_REQUEST, text),
        other => {
            tracing::error!(error = %other, "portal: upload failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The upload failed on our side. Please try again.",
            )
        }
    }
}

/// Refuses a request that does not speak tus 1.0.0 (tus: 412 with `Tus-Version`).
fn check_version(headers: &HeaderMap) -> Result<(), Response> {
    if headers.get(TUS_RESUMABLE).and_then(|v| v.to_str().ok()) == Some(TUS_VERSION) {
        return Ok(());
    }
    let mut response = answer(
        StatusCode::PRECONDITION_FAILED,
        "This endpoint speaks tus 1.0.0 (Tus-Resumable: 1.0.0).",
    );
    response
        .headers_mut()
        .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    Err(response)
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?;
    // RFC 9110 §8.6-like: digits only (no sign, no spaces).
    (!text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The `filename` of an `Upload-Metadata` header: `key base64, key base64…`.
fn metadata_file_name(headers: &HeaderMap) -> Option<String> {
    let text = headers.get(UPLOAD_METADATA)?.to_str().ok()?;
    if text.len() > MAX_METADATA {
        return None;
    }
    text.split(',').find_map(|pair| {
        let mut words = pair.trim().splitn(2, ' ');
        let key = words.next()?;
        let value = words.next()?.trim();
        if key != "filename" && key != "name" {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        String::from_utf8(bytes).ok()
    })
}

fn upload_id(text: &str) -> Result<UploadId, Response> {
    UploadId::parse(text).ok_or_else(|| answer(StatusCode::NOT_FOUND, "No such upload."))
}

/// The headers that tell where an upload stands.
fn with_offset(mut response: Response, status: &UploadStatus) -> Response {
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(status.offset));
    headers.insert(UPLOAD_LENGTH, HeaderValue::from(status.length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /uploads`: makes an upload (tus creation). A type not accepted gets
/// 415 and a too-large one 413, each saying which file and what is allowed.
pub async fn create(State(state): State<AppState>, viewer: Viewer, headers: HeaderMap) -> Response {
    create_for(&state, &viewer.user, &headers, "/uploads").await
}

/// Makes an upload for `owner`; its `Location` is under `base` (`/uploads`, or
/// `/api/uploads` for the app-password API of `sealpost drop`).
pub(crate) async fn create_for(state: &AppState, owner: &User, headers: &HeaderMap, base: &str) -> Response {
    if let Err(refused) = check_version(headers) {
        return refused;
    }
    if headers.contains_key("upload-defer-length") {
        return answer(StatusCode::BAD_REQUEST, "Say the file's length (Upload-Length).");
    }
    let Some(length) = number(headers, UPLOAD_LENGTH) else {
        return answer(StatusCode::BAD_REQUEST, "Say the file's length (Upload-Length).");
    };
    let Some(name) = metadata_file_name(headers) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "Say the file's name (Upload-Metadata: filename).",
        );
    };
    let name = match store::uploads::clean_file_name(&name) {
        Ok(name) => name,
        Err(error) => return failed(error),
    };
    let rules = &state.store.policy().uploads;
    if let Err(store::Error::Invalid(text)) = rules.check_type(&name) {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, text);
    }
    if let Err(store::Error::Invalid(text)) = rules.check_size(&name, length) {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, text);
    }
    match state.store.uploads().create(owner, &name, length).await {
        Ok(created) => {
            let mut response = with_offset(answer(StatusCode::CREATED, ""), &created);
            let location = format!("{base}/{}", created.id);
            response.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&location).expect("ids are ASCII"),
            );
            response
        }
        Err(error) => failed(error),
    }
}

/// `HEAD /uploads/{id}`: where the upload stands.
pub async fn head(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    head_for(&state, &viewer.user, &id).await
}

/// Where `owner`'s upload `id` stands.
pub(crate) async fn head_for(state: &AppState, owner: &User, id: &str) -> Response {
    let id = match upload_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match state.store.uploads().status(owner, &id).await {
        Ok(status) => with_offset(answer(StatusCode::OK, ""), &status),
        Err(error) => failed(error),
    }
}

/// `PATCH /uploads/{id}`: continues the upload from `Upload-Offset`, sealing
/// the body as it streams in. A connection cut mid-way keeps every whole chunk
/// that arrived; the client asks (`HEAD`) and goes on from there.
pub async fn patch(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    patch_for(&state, &viewer.user, &id, request).await
}

/// Continues `owner`'s upload `id` with the request's body.
pub(crate) async fn patch_for(state: &AppState, owner: &User, id: &str, request: Request) -> Response {
    let headers = request.headers();
    if let Err(refused) = check_version(headers) {
        return refused;
    }
    let id = match upload_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if kind != Some("application/offset+octet-stream") {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the bytes as application/offset+octet-stream.",
        );
    }
    let Some(offset) = number(headers, UPLOAD_OFFSET) else {
        return answer(StatusCode::BAD_REQUEST, "Say where the bytes go (Upload-Offset).");
    };
    let body = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    match state.store.uploads().append(owner, &id, offset, body).await {
        Ok(status) => with_offset(answer(StatusCode::NO_CONTENT, ""), &status),
        Err(error) => failed(error),
    }
}

/// `DELETE /uploads/{id}`: removes the upload (tus termination).
pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    delete_for(&state, &viewer.user, &id, &headers).await
}

/// Removes `owner`'s upload `id`.
pub(crate) async fn delete_for(state: &AppState, owner: &User, id: &str, headers: &HeaderMap) -> Response {
    if let Err(refused) = check_version(headers) {
        return refused;
    }
    let id = match upload_id(id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match state.store.uploads().discard(owner, &id).await {
        Ok(()) => answer(StatusCode::NO_CONTENT, ""),
        Err(error) => failed(error),
    }
}

/// `GET /uploads/{id}`: the owner's finished upload, decrypted as it streams,
/// always as a download.
pub async fn download(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let id = match upload_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let file = match state.store.uploads().open(&viewer.user, &id).await {
        Ok(file) => file,
        Err(error) => return failed(error),
    };
    let body = Body::from_stream(file.body.inspect_err(|error| {
        tracing::error!(%error, "portal: upload download stream failed");
    }));
    let content_type = HeaderValue::from_str(&download_content_type(&file.content_type))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition =
        HeaderValue::from_str(&content_disposition(&file.file_name)).unwrap_or(HeaderValue::from_static("attachment"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CONTENT_LENGTH, HeaderValue::from(file.size)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_file() {
        let mut headers = HeaderMap::new();
        headers.insert(
            UPLOAD_METADATA,
            HeaderValue::from_static("relativePath bnVsbA==,filename c2Nhbi5wZGY=,is_confidential"),
        );
        assert_eq!(metadata_file_name(&headers).as_deref(), Some("scan.pdf"));
        headers.insert(UPLOAD_METADATA, HeaderValue::from_static("filename !!!"));
        assert_eq!(metadata_file_name(&headers), None);
        headers.insert(UPLOAD_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(number(&headers, UPLOAD_LENGTH), None);
        headers.insert(UPLOAD_LENGTH, HeaderValue::from_static("2000000000"));
        assert_eq!(number(&headers, UPLOAD_LENGTH), Some(2_000_000_000));
    }
}
