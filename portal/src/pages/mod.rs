//! The portal's pages: shared view types and the small handlers (home, the
//! stylesheet, not found). Each submodule owns one area.

pub mod account;
pub mod app_passwords;
pub mod attachment;
pub mod billing;
mod billing_buy;
mod billing_invoices;
mod billing_stripe;
pub mod compose;
mod compose_form;
mod compose_phi;
pub mod contacts;
mod countdown;
pub mod drop;
pub(crate) mod drop_send;
pub mod link_renewal;
pub mod lists;
pub mod manage_users;
pub mod message;
mod message_attachments;
pub mod message_lifecycle;
mod message_view;
pub mod passkeys;
pub mod practice_delivery;
pub mod practice_retention;
pub mod profile;
pub mod profile_email;
pub mod register;
pub mod roles;
pub mod signing_in;
pub mod sso;
pub mod two_step;
pub mod upload_form;
pub mod uploads;
pub mod viewer;
mod viewer_kind;
pub mod zip_download;
mod zip_writer;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use serde::Deserialize;

use crate::Error;
pub use crate::nav::Nav;
use crate::routes::{Group, Routes};
use crate::session::Viewer;

/// `?invite=TOKEN` on a message link: a new recipient's invitation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InviteQuery {
    pub invite: String,
}

/// The pages that belong to no area: home, health check, the stylesheet.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::public()
            .get("/", home)
            .get("/healthz", || async { "ok" })
            .get("/static/app.css", stylesheet)
            .get("/static/tz.js", || script(include_str!("../../static/tz.js")))
            .get("/static/print.js", || script(include_str!("../../static/print.js"))),
    )
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

/// A script of the portal's own (the CSP allows scripts from 'self' only).
async fn script(source: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        source,
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
