//! The address book: `/contacts`, a page to look people up (searchable, a page
//! at a time, each with a link to write to them), and `/contacts/suggest?q=…`,
//! the JSON that `/static/address-book.js` asks while an address is typed.
//! Who is in a person's book is the store's rule (`store::address_book`).

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::address_book::AddressBookEntry;

use super::{Nav, html};
use crate::pagination::{Links, Page, PageQuery};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::{AppState, Error};

/// Suggestions one request returns unless it asks for fewer.
const SUGGESTIONS: i64 = 8;

/// The page, the suggestions and the script with its stylesheet.
pub fn routes() -> Routes {
    Routes::new()
        .group(Group::signed_in().get("/contacts", page))
        // Signed-out callers get a JSON 401 rather than the sign-in redirect a page gets.
        .group(
            Group::public()
                .get("/contacts/suggest", suggest)
                .get("/static/address-book.js", script)
                .get("/static/address-book.css", stylesheet),
        )
}

/// `?q=…&page=N&limit=M`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
    #[serde(flatten)]
    page: PageQuery,
}

/// One person on the page.
struct Row {
    name: String,
    address: String,
    description: String,
    /// `/compose?to=…`, the address URL-encoded.
    write: String,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Option<Nav>,
    /// A practice user (whose book holds the practice's people).
    sender: bool,
    search: String,
    rows: Vec<Row>,
    page: Links,
}

/// What a query value keeps as it is: RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One value for a link's query, percent-encoded (RFC 3986 §2.1).
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// `GET /contacts?q=…&page=N&limit=M`
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<SearchQuery>,
) -> Result<Response, Error> {
    let page = Page::from_query(&query.page)?;
    let mut people = state
        .store
        .mail()
        .address_book(&viewer.user, &query.q, page.fetch(), page.offset())
        .await?;
    let mut links = page.cut("/contacts", &mut people);
    let search = query.q.trim().to_owned();
    if !search.is_empty() {
        let keep = |link: String| format!("{link}&q={}", encode(&search));
        links.newer = links.newer.map(keep);
        links.older = links.older.map(keep);
    }
    let rows = people
        .into_iter()
        .map(|person| Row {
            write: format!("/compose?to={}", encode(&person.address)),
            name: person.name,
            address: person.address,
            description: person.description,
        })
        .collect();
    let nav = viewer.nav();
    html(
        StatusCode::OK,
        &ContactsPage {
            sender: nav.sender,
            nav: Some(nav),
            search,
            rows,
            page: links,
        },
    )
}

/// `?q=PREFIX&limit=N`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SuggestQuery {
    q: String,
    /// As text, so a bad value gets our own words.
    limit: String,
}

/// One suggestion, as the script reads it.
#[derive(Serialize)]
struct Suggestion {
    address: String,
    name: String,
    /// One of the five roles (`patient`, `doctor_in_practice`, …) where the
    /// viewer's practice knows it, else `null`.
    relationship: Option<&'static str>,
    /// Words for people: "Patient", "Doctor, Smiles Dental", or empty.
    label: String,
}

#[derive(Serialize)]
struct Suggestions {
    suggestions: Vec<Suggestion>,
}

/// A JSON problem (RFC 9457) for the script; no `WWW-Authenticate`, so a
/// browser never offers a password dialog for it.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn suggestion(entry: AddressBookEntry) -> Suggestion {
    Suggestion {
        relationship: entry.relationship.map(store::accounts::Relationship::as_str),
        address: entry.address,
        name: entry.name,
        label: entry.description,
    }
}

/// `GET /contacts/suggest?q=PREFIX&limit=N`: people in the viewer's address
/// book whose address or a word of whose name starts with `q`. Signed-in
/// people only: anyone else gets a 401 problem and learns nothing.
pub async fn suggest(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    Query(query): Query<SuggestQuery>,
) -> Response {
    let Some(viewer) = viewer else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Sign in to the portal first.",
        );
    };
    let limit = if query.limit.is_empty() {
        SUGGESTIONS
    } else {
        match query.limit.parse::<i64>() {
            Ok(limit) if limit >= 1 => limit,
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "The number of suggestions must be a whole number from 1.",
                );
            }
        }
    };
    match state
        .store
        .mail()
        .suggest_addresses(&viewer.user, &query.q, limit)
        .await
    {
        Ok(entries) => Json(Suggestions {
            suggestions: entries.into_iter().map(suggestion).collect(),
        })
        .into_response(),
        Err(store::Error::Invalid(message)) => problem(StatusCode::BAD_REQUEST, "Bad request", &message),
        Err(error) => {
            tracing::error!(%error, "contacts: suggestions failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side; please try again later.",
            )
        }
    }
}

/// A static file, cached for an hour like the stylesheet.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /static/address-book.js`: the combobox that enhances every
/// `input[data-address-book]`.
pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/address-book.js"),
    )
}

/// `GET /static/address-book.css`: the combobox's list, which the script links.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/address-book.css"))
}
