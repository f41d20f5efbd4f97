//! Passkeys: the account page that lists, adds and removes them, and the JSON
//! endpoints `/static/passkey.js` calls around `navigator.credentials.create()`
//! and `.get()`. Each ceremony's state stays in the store, found by a token in
//! the short-lived `sealpost_passkey` cookie (`SameSite=Strict`) and spent on
//! use; adding a passkey also needs the session's CSRF token (the JSON body's
//! `csrf`, checked by the guard).

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Url};

use super::{Nav, html};
use crate::next::safe_next;
use crate::routes::{Group, Routes};
use crate::session::{self, Client, Viewer};
use crate::{AppState, Error};

/// The passkey pages, the script, and the JSON endpoints around the ceremonies.
pub fn routes() -> Routes {
    Routes::new()
        .group(Group::public().get("/static/passkey.js", script))
        .group(
            Group::exempt(
                "sign-in by passkey opens a session, so no session authenticates it: the ceremony state is \
                 found by the SameSite=Strict sealpost_passkey cookie, and the passkey's signature covers \
                 this origin and that ceremony's challenge, which a forger can't produce",
            )
            .post("/signin/passkey/start", signin_start)
            .post("/signin/passkey/finish", signin_finish),
        )
        .group(
            Group::signed_in()
                .get("/account/passkeys", list)
                .post("/account/passkeys/register/start", register_start)
                .post("/account/passkeys/register/finish", register_finish)
                .post("/account/passkeys/{id}/remove", remove),
        )
}

/// The ceremony cookie's name.
const COOKIE: &str = "sealpost_passkey";

/// The relying party for `public_url`: its host is the RP ID, the URL the only
/// allowed origin. `None` (passkeys off, with a warning) if that can't be.
pub fn relying_party(public_url: &str) -> Option<Webauthn> {
    let origin = Url::parse(public_url).ok()?;
    let rp_id = origin.host_str()?.to_owned();
    match webauthn_rs::WebauthnBuilder::new(&rp_id, &origin).and_then(|b| b.rp_name("Sealpost").build()) {
        Ok(webauthn) => Some(webauthn),
        Err(error) => {
            tracing::warn!(%error, public_url, "passkeys are off: public_url can't be a WebAuthn origin");
            None
        }
    }
}

fn webauthn(state: &AppState) -> Result<&Webauthn, Error> {
    state.webauthn.as_deref().ok_or(Error::NotFound)
}

fn ceremony_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        store::accounts::passkeys::CEREMONY_TTL
    ))
    .unwrap_or_else(|_| clear_ceremony_cookie())
}

fn clear_ceremony_cookie() -> HeaderValue {
    HeaderValue::from_static("sealpost_passkey=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn ceremony_token(headers: &HeaderMap) -> String {
    crate::cookies::get(headers, COOKIE).unwrap_or_default()
}

/// A JSON answer the script shows as is: `{"error": "..."}`.
fn problem(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::SET_COOKIE, clear_ceremony_cookie())],
        Json(json!({ "error": message })),
    )
        .into_response()
}

struct Row {
    id: i64,
    label: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage {
    nav: Option<Nav>,
    csrf: String,
    passkeys: Vec<Row>,
    added: bool,
    available: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddedQuery {
    added: String,
}

/// `GET /account/passkeys`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AddedQuery>,
) -> Result<Response, Error> {
    let passkeys = state
        .store
        .auth()
        .passkeys(&viewer.user)
        .await?
        .into_iter()
        .map(|p| Row {
            id: p.id,
            label: p.label,
            created: viewer.zone.show(p.created_at).text,
            last_used: p.last_used_at.map_or_else(
                || "not used yet".to_owned(),
                |at| format!("last used {}", viewer.zone.show(at).text),
            ),
        })
        .collect();
    let page = PasskeysPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf(),
        passkeys,
        added: !query.added.is_empty(),
        available: state.webauthn.is_some(),
    };
    html(StatusCode::OK, &page)
}

/// `POST /account/passkeys/{id}/remove`
pub async fn remove(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    state.store.auth().remove_passkey(&viewer.user, id, &client).await?;
    Ok(Redirect::to("/account/passkeys").into_response())
}

/// `POST /account/passkeys/register/start` (JSON): options for `create()`.
pub async fn register_start(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    match state
        .store
        .auth()
        .start_passkey_registration(webauthn(&state)?, &viewer.user)
        .await
    {
        Ok((options, token)) => Ok(([(header::SET_COOKIE, ceremony_cookie(&token))], Json(options)).into_response()),
        Err(store::Error::Invalid(message)) => Ok(problem(StatusCode::BAD_REQUEST, &message)),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    #[serde(default)]
    label: String,
    credential: RegisterPublicKeyCredential,
}

/// `POST /account/passkeys/register/finish` (JSON): stores the new passkey.
pub async fn register_finish(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    headers: HeaderMap,
    Json(body): Json<RegisterFinish>,
) -> Result<Response, Error> {
    let done = state
        .store
        .auth()
        .finish_passkey_registration(
            webauthn(&state)?,
            &viewer.user,
            &ceremony_token(&headers),
            &body.label,
            &body.credential,
            &client,
        )
        .await;
    match done {
        Ok(()) => Ok((
            [(header::SET_COOKIE, clear_ceremony_cookie())],
            Json(json!({ "redirect": "/account/passkeys?added=1" })),
        )
            .into_response()),
        Err(store::Error::Invalid(message) | store::Error::Conflict(message)) => {
            Ok(problem(StatusCode::BAD_REQUEST, &message))
        }
        Err(store::Error::TokenInvalid | store::Error::TokenExpired | store::Error::TokenUsed) => Ok(problem(
            StatusCode::BAD_REQUEST,
            "That took too long or was already used. Please try again.",
        )),
        Err(error) => Err(error.into()),
    }
}

const THROTTLED: &str = "Too many failed sign-ins from your network. Please wait 15 minutes and try again.";

/// `POST /signin/passkey/start` (JSON): options for `get()`.
pub async fn signin_start(State(state): State<AppState>, Client(client): Client) -> Result<Response, Error> {
    match state
        .store
        .auth()
        .start_passkey_signin(webauthn(&state)?, &client)
        .await
    {
        Ok((mut options, token)) => {
            // The button asks now (a modal prompt), not in the address autofill.
            options.mediation = None;
            Ok(([(header::SET_COOKIE, ceremony_cookie(&token))], Json(options)).into_response())
        }
        Err(store::Error::Throttled) => Ok(problem(StatusCode::TOO_MANY_REQUESTS, THROTTLED)),
        Err(store::Error::Invalid(message)) => Ok(problem(StatusCode::BAD_REQUEST, &message)),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct SigninFinish {
    credential: PublicKeyCredential,
    #[serde(default)]
    next: String,
}

/// `POST /signin/passkey/finish` (JSON): opens a session (a new session id; any
/// old one in this browser ends) and says where to go.
pub async fn signin_finish(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Json(body): Json<SigninFinish>,
) -> Result<Response, Error> {
    let signed_in = state
        .store
        .auth()
        .finish_passkey_signin(webauthn(&state)?, &ceremony_token(&headers), &body.credential, &client)
        .await;
    match signed_in {
        Ok(session) => {
            if let Some(old) = session::cookie_token(&headers) {
                state.store.auth().sign_out(&old).await?;
            }
            let to = safe_next(&body.next).unwrap_or("/inbox");
            let mut response = Json(json!({ "redirect": to })).into_response();
            let cookies = response.headers_mut();
            cookies.append(header::SET_COOKIE, session::session_cookie(&session.token));
            cookies.append(header::SET_COOKIE, clear_ceremony_cookie());
            Ok(response)
        }
        Err(store::Error::Throttled) => Ok(problem(StatusCode::TOO_MANY_REQUESTS, THROTTLED)),
        Err(store::Error::AuthFailed) => Ok(problem(
            StatusCode::UNAUTHORIZED,
            "That passkey could not sign you in. Use your password, or try again.",
        )),
        Err(error) => Err(error.into()),
    }
}

/// `GET /static/passkey.js`: the only script the portal serves.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/passkey.js"),
    )
        .into_response()
}
