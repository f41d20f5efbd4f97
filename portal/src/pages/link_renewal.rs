//! "Send me a new link": what an invitation or set-password link that expired
//! or was used shows instead of a dead end ("ask the sender"), and the request
//! it makes: a fresh link to the same address, at most one per 10 minutes,
//! with an honest answer about when one went out and when the next may.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{Nav, html};
use crate::error::LinkProblem;
use crate::routes::{Group, Routes};
use crate::session::Client;
use crate::time::{self, Zone};
use crate::{AppState, Error, cookies};

/// The renewal request.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::exempt(
            "authorised by the (expired or used) link token in the form: whoever holds it may only have a \
             new link sent to the address it was sent to, at most once per 10 minutes; no cookie is involved",
        )
        .post("/link/renew", renew),
    )
}

/// What the page says after a request.
struct Answer {
    sent_now: bool,
    /// The address, masked.
    to: String,
    sent_at: String,
    next_at: String,
}

#[derive(Template)]
#[template(path = "link_renew.html")]
struct RenewPage {
    nav: Option<Nav>,
    title: &'static str,
    message: &'static str,
    token: String,
    /// Where signing in leads, for those who registered already.
    signin: String,
    answer: Option<Answer>,
}

/// The page an expired or used link shows: what happened, and the button that
/// sends a new link. `None` for problems it can't help with (unknown links).
pub(crate) fn offer(problem: LinkProblem, token: &str, next: Option<&str>) -> Option<Result<Response, Error>> {
    let (title, message) = match problem {
        LinkProblem::Expired => ("Link expired", "This link has expired."),
        LinkProblem::Used => ("Link already used", "This link has already been used."),
        LinkProblem::Unknown => return None,
    };
    Some(html(
        StatusCode::GONE,
        &RenewPage {
            nav: None,
            title,
            message,
            token: token.to_owned(),
            signin: next.map_or_else(|| "/signin".to_owned(), crate::next::signin_url),
            answer: None,
        },
    ))
}

/// The link problem behind a store error, if it is one a new link solves.
pub(crate) fn renewable(error: &store::Error) -> Option<LinkProblem> {
    match error {
        store::Error::TokenExpired => Some(LinkProblem::Expired),
        store::Error::TokenUsed => Some(LinkProblem::Used),
        _ => None,
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct RenewForm {
    token: String,
}

/// The zone of a signed-out reader: their browser's, else the server's.
pub(crate) fn reader_zone(headers: &HeaderMap) -> Zone {
    time::choose(None, cookies::get(headers, time::COOKIE).as_deref())
}

/// `POST /link/renew`: sends a new link to the address the old one went to.
pub async fn renew(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<RenewForm>,
) -> Result<Response, Error> {
    let (slot, to) = state.store.auth().renew_link(&form.token, &client).await?;
    let zone = reader_zone(&headers);
    let page = RenewPage {
        nav: None,
        title: if slot.sent_now {
            "We sent you a new link"
        } else {
            "A link is on its way"
        },
        message: "",
        token: form.token,
        signin: "/signin".to_owned(),
        answer: Some(Answer {
            sent_now: slot.sent_now,
            to,
            sent_at: zone.show(slot.sent_at).text,
            next_at: zone.show(slot.next_at).text,
        }),
    };
    let status = if slot.sent_now {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    html(status, &page)
}
