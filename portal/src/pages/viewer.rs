//! In-page viewers: `GET /m/{id}/a/{index}/view` (a page per kind: image,
//! TIFF, STL, DICOM; `viewer_kind.rs` picks it), the bytes its script reads
//! (`/raw`, audited as a view) and the attachment list's thumbnails
//! (`/thumb`, images only). The bytes are only ever typed as an image when
//! their first bytes are one, always with a sandboxing CSP and as an
//! attachment, so nothing a sender attaches can run in the portal's origin.
//! The viewers' scripts (vendored three.js, daikon and UTIF.js, and our own)
//! are built into the binary and served from `/static/viewers/`.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::{self, BoxStream};
use store::messages::archive::AttachmentUse;

use super::viewer_kind::{Kind, kind_of, sniff_image};
use super::{Nav, html, message_id};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The viewer pages and their bytes (signed in); the scripts (public).
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::signed_in()
                .get("/m/{id}/a/{index}/view", page)
                .get("/m/{id}/a/{index}/raw", raw)
                .get("/m/{id}/a/{index}/thumb", thumbnail),
        )
        .group(Group::public().get("/static/viewers/{file}", asset))
}

/// Another attachment of the same message a DICOM series may include.
pub struct SeriesFile {
    pub index: usize,
}

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    nav: Option<Nav>,
    id: String,
    index: usize,
    name: String,
    label: &'static str,
    slug: &'static str,
    /// DICOM: every DICOM attachment of the message (a series may span them).
    series: Vec<SeriesFile>,
}

/// `GET /m/{id}/a/{index}/view`: the viewer for one attachment; not found
/// for a type no viewer knows (the message page offers no link to it).
pub async fn page(
    State(state): State<AppState>,
    Path((id, index)): Path<(String, String)>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let index: usize = index.parse().map_err(|_| Error::NotFound)?;
    let attachments = state.store.mail().attachment_list(&viewer.user, &id).await?;
    let attachment = attachments.get(index).ok_or(Error::NotFound)?;
    let kind = kind_of(&attachment.name, &attachment.content_type).ok_or(Error::NotFound)?;
    let series = if kind == Kind::Dicom {
        attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| kind_of(&a.name, &a.content_type) == Some(Kind::Dicom))
            .map(|(index, _)| SeriesFile { index })
            .collect()
    } else {
        Vec::new()
    };
    let name = if attachment.name.trim().is_empty() {
        format!("Attachment {}", index + 1)
    } else {
        attachment.name.clone()
    };
    html(
        StatusCode::OK,
        &ViewerPage {
            nav: Some(viewer.nav()),
            id: id.to_string(),
            index,
            name,
            label: kind.label(),
            slug: kind.slug(),
            series,
        },
    )
}

/// `GET /m/{id}/a/{index}/raw`: the bytes a viewer draws.
pub async fn raw(
    State(state): State<AppState>,
    Client(client): Client,
    Path((id, index)): Path<(String, String)>,
    viewer: Viewer,
) -> Result<Response, Error> {
    bytes_for(&state, &client, &id, &index, &viewer, AttachmentUse::View).await
}

/// `GET /m/{id}/a/{index}/thumb`: an image attachment for the list's small
/// picture. A file named as an image whose bytes are not one (damaged, or
/// something else renamed) gets a plain file icon instead, never its bytes:
/// the list shows no broken picture.
pub async fn thumbnail(
    State(state): State<AppState>,
    Client(client): Client,
    Path((id, index)): Path<(String, String)>,
    viewer: Viewer,
) -> Result<Response, Error> {
    bytes_for(&state, &client, &id, &index, &viewer, AttachmentUse::Thumbnail).await
}

async fn bytes_for(
    state: &AppState,
    client: &str,
    id: &str,
    index: &str,
    viewer: &Viewer,
    why: AttachmentUse,
) -> Result<Response, Error> {
    let id = message_id(id)?;
    let index: usize = index.parse().map_err(|_| Error::NotFound)?;
    let mail = state.store.mail();
    let attachments = mail.attachment_list(&viewer.user, &id).await?;
    let attachment = attachments.get(index).ok_or(Error::NotFound)?;
    let kind = kind_of(&attachment.name, &attachment.content_type).ok_or(Error::NotFound)?;
    if why == AttachmentUse::Thumbnail && !kind.has_thumbnail() {
        return Err(Error::NotFound);
    }
    let (meta, mut data) = mail.open_attachment_for(&viewer.user, &id, index, client, why).await?;
    // The first piece says what the bytes are; it is sent on unchanged.
    let first = match data.next().await {
        Some(Ok(first)) => first,
        Some(Err(error)) => return Err(error.into()),
        None => Bytes::new(),
    };
    let image = sniff_image(&first);
    if why == AttachmentUse::Thumbnail && image.is_none() {
        return Ok(not_an_image());
    }
    let message = id.to_string();
    let rest: BoxStream<'static, store::Result<Bytes>> = data;
    let body = stream::once(async move { Ok(first) }).chain(rest).map(move |piece| {
        piece.map_err(|error| {
            // Store errors carry no PHI; the file's name is never logged.
            tracing::error!(%error, message, index, "portal: viewer stream failed");
            std::io::Error::other("attachment stream failed")
        })
    });
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(image.unwrap_or("application/octet-stream")),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(meta.size)),
        (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

/// The icon a thumbnail shows for a file whose bytes are not an image: ours,
/// static, with no script.
const FILE_ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 48 48\" width=\"48\" height=\"48\">\
<path d=\"M12 4h16l10 10v30H12z\" fill=\"#eef2f6\" stroke=\"#5b6b7b\" stroke-width=\"2\"/>\
<path d=\"M28 4v10h10\" fill=\"none\" stroke=\"#5b6b7b\" stroke-width=\"2\"/></svg>";

fn not_an_image() -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
    ];
    (headers, FILE_ICON).into_response()
}

/// `GET /static/viewers/{file}`: the viewers' scripts and styles.
pub async fn asset(Path(file): Path<String>) -> Response {
    let js = "text/javascript; charset=utf-8";
    let (kind, bytes): (&str, &'static [u8]) = match file.as_str() {
        "viewers.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../static/viewers/viewers.css"),
        ),
        "panzoom.js" => (js, include_bytes!("../../static/viewers/panzoom.js")),
        "image.js" => (js, include_bytes!("../../static/viewers/image.js")),
        "tiff.js" => (js, include_bytes!("../../static/viewers/tiff.js")),
        "stl.js" => (js, include_bytes!("../../static/viewers/stl.js")),
        "dicom.js" => (js, include_bytes!("../../static/viewers/dicom.js")),
        "daikon-shim.js" => (js, include_bytes!("../../static/viewers/daikon-shim.js")),
        "UTIF.js" => (js, include_bytes!("../../static/viewers/vendor/UTIF.js")),
        "daikon-min.js" => (js, include_bytes!("../../static/viewers/vendor/daikon-min.js")),
        "three.module.js" => (js, include_bytes!("../../static/viewers/vendor/three.module.js")),
        "three.core.js" => (js, include_bytes!("../../static/viewers/vendor/three.core.js")),
        "STLLoader.js" => (js, include_bytes!("../../static/viewers/vendor/STLLoader.js")),
        "OrbitControls.js" => (js, include_bytes!("../../static/viewers/vendor/OrbitControls.js")),
        _ => return Error::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        bytes,
    )
        .into_response()
}
