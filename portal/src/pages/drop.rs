//! `/drop` (Secure Drop): send files fast to one recipient without writing a
//! message. Drop or choose files (uploaded at once, resumable: the attachments
//! part of the compose form, `compose_attachments.html` + `uploads.js`), pick
//! the recipient with the address book, add an optional sealed note, send.
//! Posting it reads the form as compose does and sends with
//! `drop_send::send_drop`; when the address is new the page asks how the
//! sender knows them, keeping the files already uploaded.

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::accounts::Relationship;

use super::compose::sealed;
use super::compose_form::ComposeForm;
use super::drop_send::{DropRefusal, DropRequest, send_drop};
use super::{Nav, html};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The page and its form.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .get("/drop", page)
            // Files stream into staged uploads (their own size rules apply).
            .post(
                "/drop",
                Handler::<_, AppState>::layer(send, DefaultBodyLimit::disable()),
            ),
    )
}

/// `?to=ADDRESS`: a drop to someone already chosen (e.g. from Contacts).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DropQuery {
    to: String,
}

struct StagedRow {
    id: String,
    name: String,
}

/// The relationship question for a new address.
struct RoleQuestion {
    address: String,
    options: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "drop.html")]
struct DropPage {
    nav: Option<Nav>,
    csrf: String,
    error: Option<String>,
    to: String,
    note: String,
    role: Option<RoleQuestion>,
    staged: Vec<StagedRow>,
}

impl DropPage {
    fn new(viewer: &Viewer, to: &str, note: &str) -> Self {
        Self {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf(),
            error: None,
            to: to.to_owned(),
            note: note.to_owned(),
            role: None,
            staged: Vec::new(),
        }
    }
}

/// `GET /drop`.
pub async fn page(viewer: Viewer, Query(query): Query<DropQuery>) -> Result<Response, Error> {
    html(StatusCode::OK, &DropPage::new(&viewer, query.to.trim(), ""))
}

/// `POST /drop`: sends the files, or shows the page again saying what is missing.
pub async fn send(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    multipart: Multipart,
) -> Result<Response, Error> {
    let form = ComposeForm::read(&state, &viewer.user, multipart).await?;
    let chosen = form
        .roles
        .iter()
        .find(|(address, role)| address.trim().eq_ignore_ascii_case(form.to.trim()) && !role.is_empty())
        .map(|(_, role)| role.as_str());
    let role = match chosen {
        None => None,
        Some(text) => Some(
            Relationship::parse(text)
                .ok_or_else(|| Error::BadRequest("Please choose one of the listed relationships.".to_owned()))?,
        ),
    };
    let request = DropRequest {
        to: form.to.clone(),
        role,
        note: form.note.clone(),
        uploads: form.uploads.clone(),
    };
    let refusal = match &form.file_error {
        Some(text) => DropRefusal::Invalid(text.clone()),
        None => match send_drop(&state, &viewer.user, &request, &client).await {
            Ok(sent) => {
                let to = if sealed(&state, &sent).await {
                    format!("/m/{sent}")
                } else {
                    "/sent".to_owned()
                };
                return Ok(Redirect::to(&to).into_response());
            }
            Err(refusal) => refusal,
        },
    };
    let mut page = DropPage::new(&viewer, form.to.trim(), &form.note);
    for id in &form.uploads {
        let status = state.store.uploads().status(&viewer.user, id).await?;
        page.staged.push(StagedRow {
            id: id.to_string(),
            name: status.file_name,
        });
    }
    let status = match refusal {
        DropRefusal::Invalid(text) => {
            page.error = Some(text);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        DropRefusal::NeedsRole(address) => {
            page.error = Some(format!(
                "{address} is new: tell us how you know them, so they get the right invitation."
            ));
            page.role = Some(RoleQuestion {
                options: Relationship::ALL
                    .iter()
                    .map(|r| (r.as_str(), r.label(), Some(r.as_str()) == chosen))
                    .collect(),
                address,
            });
            StatusCode::UNPROCESSABLE_ENTITY
        }
        DropRefusal::FreeAccount { address, practices } => {
            page.error = Some(if practices.is_empty() {
                format!("Your free account can't send files to {address}; it can reply to the messages it receives.")
            } else {
                format!(
                    "Your free account can't send files to {address}; it can send to the doctors and staff of {}.",
                    practices.join(", ")
                )
            });
            StatusCode::FORBIDDEN
        }
        DropRefusal::Store(error) => return Err(error.into()),
    };
    html(status, &page)
}
