//! Single sign-on pages for practice staff: the SP metadata, starting a sign-in
//! at the practice's IdP, and the assertion consumer service (ACS) that checks
//! the IdP's answer (see `crate::sso`) and opens a session.
//!
//! The AuthnRequest's id is stored (single use, 10 minutes) and also put in a
//! cookie scoped to the ACS path, so an answer is only accepted in the browser
//! that asked for it (`SameSite=None`: the IdP posts cross-site).
#![allow(clippy::doc_markdown)] // SAML's words (IdP, AuthnRequest, NameID) read better bare

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::accounts::saml::{PracticeIdp, REQUEST_TTL};

use super::html;
use crate::error::ErrorPage;
use crate::routes::{Group, Routes};
use crate::session::{self, Client};
use crate::sso::{Idp, Sp, parse_idp_metadata};
use crate::{AppState, Error};

/// Single sign-on: starting at the IdP and its answer.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::public()
                .get("/saml/start", start)
                .get("/saml/{domain}/metadata", metadata)
                .get("/saml/{domain}/login", login),
        )
        .group(
            Group::exempt(
                "the IdP posts its answer cross-site, before any session exists: it must be signed by the \
                 practice's IdP, answer a stored single-use AuthnRequest, and match the SameSite=None \
                 sealpost_sso cookie of the browser that asked",
            )
            .post("/saml/{domain}/acs", acs),
        )
}

/// The cookie that ties an IdP's answer to the browser that asked.
const REQUEST_COOKIE: &str = "sealpost_sso";

/// The practice with `domain` and its IdP; not found if it has none.
async fn practice_idp(state: &AppState, domain: &str) -> Result<(PracticeIdp, Idp, Sp), Error> {
    let domain = domain.trim().to_ascii_lowercase();
    let practice = state.store.auth().practice_idp(&domain).await?.ok_or(Error::NotFound)?;
    let idp = parse_idp_metadata(&practice.metadata).map_err(|error| {
        tracing::error!(%error, practice = %practice.practice.id, "portal: stored IdP metadata does not parse");
        Error::NotFound
    })?;
    let sp = Sp::new(&state.config.public_url, &practice.practice.domain);
    Ok((practice, idp, sp))
}

/// `GET /saml/{domain}/metadata`: our SP metadata for the practice's IdP admin.
pub async fn metadata(State(state): State<AppState>, Path(domain): Path<String>) -> Result<Response, Error> {
    let (_, _, sp) = practice_idp(&state, &domain).await?;
    let xml = sp.metadata().map_err(|error| {
        tracing::error!(%error, "portal: SP metadata failed to render");
        Error::NotFound
    })?;
    Ok(([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response())
}

/// `GET /saml/{domain}/login`: sends the browser to the IdP with an AuthnRequest.
pub async fn login(State(state): State<AppState>, Path(domain): Path<String>) -> Result<Response, Error> {
    let (practice, idp, sp) = practice_idp(&state, &domain).await?;
    let id = format!("_{}", store::crypto::random_hex(16));
    state.store.auth().begin_sso(&practice.practice, &id).await?;
    let url = sp.authn_request_url(&idp, &id, state.store.now()).map_err(|error| {
        tracing::error!(%error, "portal: AuthnRequest failed to build");
        Error::NotFound
    })?;
    let cookie = format!(
        "{REQUEST_COOKIE}={id}; Max-Age={REQUEST_TTL}; Secure; HttpOnly; SameSite=None; Path=/saml/{}/acs",
        practice.practice.domain
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| Error::NotFound)?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response())
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct StartQuery {
    practice: String,
}

/// `GET /saml/start?practice=…` (the sign-in page's SSO form): an email address
/// or a practice domain leads to that practice's SSO sign-in.
pub async fn start(State(state): State<AppState>, Query(query): Query<StartQuery>) -> Result<Response, Error> {
    let input = query.practice.trim();
    let domain = input.rsplit_once('@').map_or(input, |(_, d)| d).to_ascii_lowercase();
    let known = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && state.store.auth().practice_idp(&domain).await?.is_some();
    if known {
        Ok(Redirect::to(&format!("/saml/{domain}/login")).into_response())
    } else {
        Err(Error::BadRequest(
            "Single sign-on is not set up for this practice. Please sign in with your email address and password."
                .into(),
        ))
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
}

/// `POST /saml/{domain}/acs`: verifies the IdP's Response and signs the person in.
pub async fn acs(
    State(state): State<AppState>,
    Client(client): Client,
    Path(domain): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Result<Response, Error> {
    let (practice, idp, sp) = practice_idp(&state, &domain).await?;
    let practice = practice.practice;
    let clear = HeaderValue::from_str(&format!(
        "{REQUEST_COOKIE}=; Max-Age=0; Secure; HttpOnly; SameSite=None; Path=/saml/{}/acs",
        practice.domain
    ))
    .map_err(|_| Error::NotFound)?;
    if form.saml_response.is_empty() {
        return Err(Error::BadRequest(
            "This sign-in answer is empty. Please start again.".into(),
        ));
    }
    let now = state.store.now();
    let encoded = form.saml_response;
    let checked = tokio::task::spawn_blocking(move || sp.verify(&idp, &encoded, now))
        .await
        .unwrap_or(Err("verification task failed"));
    let outcome = match checked {
        Ok(assertion)
            if crate::cookies::get(&headers, REQUEST_COOKIE).as_deref() != Some(assertion.in_response_to.as_str()) =>
        {
            Err("answer does not belong to this browser's request")
        }
        Ok(assertion) => match state.store.auth().finish_sso(&practice, &assertion, &client).await? {
            Ok(session) => Ok(session),
            Err(refusal) => Err(refusal_reason(refusal)),
        },
        Err(reason) => Err(reason),
    };
    match outcome {
        Ok(session) => {
            // A browser signing in again leaves its old session behind: end it.
            if let Some(old) = session::cookie_token(&headers) {
                state.store.auth().sign_out(&old).await?;
            }
            let mut response = Redirect::to("/inbox").into_response();
            let cookies = response.headers_mut();
            cookies.append(header::SET_COOKIE, session::session_cookie(&session.token));
            cookies.append(header::SET_COOKIE, clear);
            Ok(response)
        }
        Err(reason) => {
            state.store.auth().sso_refused(&practice, reason, &client).await?;
            let page = ErrorPage {
                nav: None,
                title: "Single sign-on failed",
                message: "We could not sign you in with your practice's sign-in service.".to_owned(),
                hint: "Please start again from the sign-in page. If it keeps happening, ask your practice's IT administrator; your account must be added to this portal first.",
                actions: vec![("/signin".to_owned(), "Sign in")],
            };
            let mut response = html(StatusCode::FORBIDDEN, &page)?;
            response.headers_mut().append(header::SET_COOKIE, clear);
            Ok(response)
        }
    }
}

fn refusal_reason(refusal: store::accounts::saml::SsoRefusal) -> &'static str {
    use store::accounts::saml::SsoRefusal;
    match refusal {
        SsoRefusal::UnknownRequest => "no pending request matches InResponseTo (unsolicited, expired or used)",
        SsoRefusal::Replay => "assertion id seen before (replay)",
        SsoRefusal::UnknownUser => "no doctor or staff account with this address in the practice",
    }
}
