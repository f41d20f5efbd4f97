//! The portal's pages: shared view types and the small handlers (home, the
//! stylesheet, not found). Each submodule owns one area.

pub mod account;
pub mod app_passwords;
pub mod attachment;
pub mod lists;
pub mod manage_users;
pub mod message;
pub mod passkeys;
pub mod register;
pub mod roles;
pub mod sso;
pub mod two_step;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::Error;
use crate::session::Viewer;

/// The page header for a signed-in viewer: their name and the sign-out form's
/// CSRF token.
#[derive(Debug, Clone)]
pub struct Nav {
    pub name: String,
    pub csrf: String,
    /// A practice user, who sends secure mail (shows the Sent list).
    pub sender: bool,
    /// A practice's User Manager (shows Manage users).
    pub manager: bool,
}

/// Renders a template as an HTML response.
pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Result<Response, Error> {
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /`: the inbox for a signed-in viewer, else sign-in.
pub async fn home(viewer: Option<Viewer>) -> Redirect {
    Redirect::to(if viewer.is_some() { "/inbox" } else { "/signin" })
}

/// `GET /static/app.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// Any unknown path.
pub async fn not_found() -> Error {
    Error::NotFound
}

/// Parses a message id from a URL segment; anything else is not found.
pub(crate) fn message_id(text: &str) -> Result<store::ids::MessageId, Error> {
    store::ids::MessageId::parse(text).ok_or(Error::NotFound)
}

/// First value of `name` in a decoded form.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}
