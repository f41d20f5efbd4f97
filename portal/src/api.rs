//! The portal's JSON API, used by the Outlook add-in: `GET /api/contacts` tells a
//! practice user which recipients their practice already knows, and how they
//! relate to it, so the add-in fills their role in; `POST /api/addin-key` gives
//! the add-in its own key for that, so it never keeps an app password.
//!
//! The caller is the session cookie's user (the add-in's pages are served by the
//! portal) or, where third-party cookies are blocked, `Authorization: Basic` with
//! the user's email and an app password (RFC 7617). Errors are JSON problems
//! (RFC 9457, `application/problem+json`).

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use store::accounts::User;

use crate::AppState;
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};

/// The JSON API.
pub fn routes() -> Routes {
    Routes::new()
        // Read only; a POST here would need the session's CSRF token.
        .group(Group::public().get("/api/contacts", contacts))
        .group(
            Group::exempt(
                "authenticated only by Authorization: Basic (email and app password), never by a cookie, \
                 which a cross-site form can't send",
            )
            .post("/api/addin-key", addin_key),
        )
}

/// An API error, sent as a JSON problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Sign in to the portal, or send your email address and an app password (Basic authentication).",
        )
    }
}

impl From<store::Error> for Problem {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Invalid(message) => Self::new(StatusCode::BAD_REQUEST, "Bad request", message),
            store::Error::AuthFailed | store::Error::Locked | store::Error::PasswordExpired(_) => Self::unauthorized(),
            store::Error::Throttled => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many failed sign-ins from this address; try again in a few minutes.",
            ),
            other => {
                tracing::error!(error = %other, "api: store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side; please try again later.",
                )
            }
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    r#type: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&ProblemBody {
            r#type: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Sealpost\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// The API's caller: from `Authorization: Bearer` (the add-in's own key, see
/// `store::accounts::addin_keys`) or `Basic` (email and app password) if sent,
/// and then only that; else from the session cookie.
pub struct ApiUser(pub User);

/// The add-in's key from an `Authorization: Bearer` header (RFC 6750), if that
/// is the scheme sent.
fn bearer_key(headers: &HeaderMap) -> Option<String> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = text.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim().to_owned())
}

/// `email:password` from an `Authorization: Basic` header; `None` if absent,
/// an error if present but unreadable.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| Problem::unauthorized())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(Problem::unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Problem::unauthorized());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| Problem::unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| Problem::unauthorized())?;
    let (email, password) = decoded.split_once(':').ok_or_else(Problem::unauthorized)?;
    Ok(Some((email.to_owned(), password.to_owned())))
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(key) = bearer_key(&parts.headers) {
            return Ok(Self(state.store.auth().addin_key_user(&key).await?));
        }
        if let Some((email, password)) = basic_credentials(&parts.headers)? {
            let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
            let user = state.store.auth().check_mail_client(&email, &password, &client).await?;
            return Ok(Self(user));
        }
        match <Viewer as axum::extract::OptionalFromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(Some(viewer)) => Ok(Self(viewer.user)),
            Err(crate::Error::Store(error)) => Err(error.into()),
            Ok(None) | Err(_) => Err(Problem::unauthorized()),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ContactsQuery {
    /// Comma-separated addresses.
    addresses: String,
}

#[derive(Serialize)]
struct ContactJson {
    address: String,
    /// One of the `X-Sealpost-Role` values, e.g. `patient`.
    relationship: &'static str,
    /// Words for people, e.g. "Patient".
    label: &'static str,
}

#[derive(Serialize)]
struct ContactsJson {
    contacts: Vec<ContactJson>,
}

/// `GET /api/contacts?addresses=a@x,b@y`: the known contacts among the
/// addresses, for a practice user who may send secure mail (a paid doctor or
/// staff member); others are left out.
pub async fn contacts(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(query): Query<ContactsQuery>,
) -> Result<Response, Problem> {
    if user.may_send_secure().is_err() {
        return Err(not_sending());
    }
    let addresses: Vec<String> = query
        .addresses
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let known = state.store.mail().known_contacts(&user, &addresses).await?;
    let body = ContactsJson {
        contacts: known
            .into_iter()
            .map(|k| ContactJson {
                address: k.address,
                relationship: k.relationship.as_str(),
                label: k.relationship.label(),
            })
            .collect(),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response())
}

#[derive(Serialize)]
struct AddinKeyJson {
    key: String,
}

/// `POST /api/addin-key` with `Authorization: Basic` (email and app password):
/// a new key for the Outlook add-in, which opens this API only, so the add-in
/// never keeps the app password (which opens mail too). Only accounts that may
/// send secure mail get one; the previous key stops working.
pub async fn addin_key(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some((email, password)) = basic_credentials(&headers)? else {
        return Err(Problem::unauthorized());
    };
    let user = state.store.auth().check_mail_client(&email, &password, &client).await?;
    if user.may_send_secure().is_err() {
        return Err(not_sending());
    }
    let key = state.store.auth().issue_addin_key(&user, &client).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(&AddinKeyJson { key }).unwrap_or_default(),
    )
        .into_response())
}

fn not_sending() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "Not a sending account",
        "Only doctors and staff of a practice with a paid account send secure mail with the add-in.",
    )
}
