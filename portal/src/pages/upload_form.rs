//! `/uploads/new` ("Upload files"): a page of its own around the attachments
//! part of a form (`compose_attachments.html`), until the compose form hosts it
//! and for Secure Drop to grow from; and the scripts that enhance that part
//! (`/static/uploads.js` over the vendored tus client, `/static/tus.min.js`).
//! Without scripts the form posts its files as a plain multipart body, each
//! streamed into the store as it arrives ([`stage_file_fields`]).

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use store::uploads::{UploadId, UploadStatus};

use super::{Nav, html};
use crate::routes::{Group, Routes};
use crate::sanitize::human_size;
use crate::session::Viewer;
use crate::{AppState, Error};

/// The page, its no-script form, and the scripts.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::signed_in()
                .get("/uploads/new", page)
                .post("/uploads/new", submit),
        )
        .group(
            Group::public()
                .get("/static/uploads.js", || async {
                    script(include_str!("../../static/uploads.js"))
                })
                .get("/static/tus.min.js", || async {
                    script(include_str!("../../static/vendor/tus.min.js"))
                })
                .get("/static/uploads.css", || async {
                    asset("text/css; charset=utf-8", include_str!("../../static/uploads.css"))
                }),
        )
}

fn script(text: &'static str) -> Response {
    asset("text/javascript; charset=utf-8", text)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// One staged file as the page lists it.
pub struct StagedRow {
    pub id: String,
    pub name: String,
    pub size: String,
}

impl From<&UploadStatus> for StagedRow {
    fn from(status: &UploadStatus) -> Self {
        Self {
            id: status.id.to_string(),
            name: status.file_name.clone(),
            size: human_size(status.length),
        }
    }
}

#[derive(Template)]
#[template(path = "uploads_new.html")]
struct UploadPage {
    nav: Option<Nav>,
    staged: Vec<StagedRow>,
    error: Option<String>,
}

/// `GET /uploads/new`.
pub async fn page(viewer: Viewer) -> Result<Response, Error> {
    html(
        StatusCode::OK,
        &UploadPage {
            nav: Some(viewer.nav()),
            staged: Vec::new(),
            error: None,
        },
    )
}

/// `POST /uploads/new`: the files the form carries (`file` parts, streamed;
/// `upload` ids the script staged), checked together against the rules.
pub async fn submit(State(state): State<AppState>, viewer: Viewer, multipart: Multipart) -> Result<Response, Error> {
    let (staged, problem) = match stage_file_fields(&state.store, &viewer.user, multipart).await {
        Ok(staged) => {
            let files: Vec<(String, u64)> = staged.iter().map(|s| (s.file_name.clone(), s.length)).collect();
            let problem = state.store.policy().uploads.check_files(&files).err();
            (staged, problem)
        }
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let error = match problem {
        None => None,
        Some(store::Error::Invalid(text) | store::Error::Conflict(text)) => Some(text),
        Some(other) => return Err(other.into()),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(
        status,
        &UploadPage {
            nav: Some(viewer.nav()),
            staged: staged.iter().map(StagedRow::from).collect(),
            error,
        },
    )
}

/// Reads a multipart form's files: each `file` part is staged as it streams
/// in (never whole in memory), each `upload` field names an upload the script
/// staged, which must be the viewer's and finished. Other fields are skipped.
/// A refused file stops the staging, but the rest of the body is still read
/// (and thrown away), so the browser gets the page that says why instead of
/// a broken connection. The compose form can take its attachments the same way.
pub async fn stage_file_fields(
    store: &store::Store,
    owner: &store::accounts::User,
    mut multipart: Multipart,
) -> Result<Vec<UploadStatus>, store::Error> {
    let mut staged = Vec::new();
    if let Err(error) = read_fields(store, owner, &mut multipart, &mut staged).await {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
        return Err(error);
    }
    Ok(staged)
}

async fn read_fields(
    store: &store::Store,
    owner: &store::accounts::User,
    multipart: &mut Multipart,
    staged: &mut Vec<UploadStatus>,
) -> Result<(), store::Error> {
    let bad_form = |_| store::Error::invalid("The form did not arrive whole; please send it again.");
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or_default().to_owned();
                if name.is_empty() {
                    continue; // the file input left empty
                }
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
                let body =
                    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed();
                let feed = async {
                    loop {
                        let next = match field.chunk().await {
                            Ok(Some(chunk)) => Ok(chunk),
                            Ok(None) => break,
                            Err(error) => Err(std::io::Error::other(error.to_string())),
                        };
                        let stop = next.is_err();
                        if tx.send(next).await.is_err() || stop {
                            break;
                        }
                    }
                    drop(tx);
                };
                let uploads = store.uploads();
                let (done, ()) = tokio::join!(uploads.stage_stream(owner, &name, body), feed);
                // What of this file the staging did not read is thrown away.
                while let Ok(Some(_)) = field.chunk().await {}
                staged.push(done?);
            }
            Some("upload") => {
                let text = field.text().await.map_err(bad_form)?;
                let id = UploadId::parse(text.trim()).ok_or(store::Error::NotFound)?;
                let status = store.uploads().status(owner, &id).await?;
                if !status.is_complete() {
                    return Err(store::Error::invalid(format!(
                        "\"{}\" has not finished uploading yet.",
                        status.file_name
                    )));
                }
                staged.push(status);
            }
            _ => {}
        }
    }
    Ok(())
}
