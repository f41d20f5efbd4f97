//! The second step of signing in (`/signin/verify`: a code by text, voice or
//! authenticator app, "remember this device"), setting two-step up, and the
//! account page where a signed-in person changes their method.
//!
//! Between the password and the code the browser holds only a pending-sign-in
//! cookie: it opens no session, lasts 10 minutes and is spent by the code; five
//! wrong codes void it (the person starts over from the password). Its forms
//! carry a CSRF token derived from it, like signed-in forms.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use store::accounts::User;
use store::accounts::two_step::{Channel, Method, TotpSetup, phone_hint};

use super::html;
use super::signing_in::{LOCKED, after_signin, set_cookie, signed_in, signin_page};
use crate::cookies::{self, DEVICE, PENDING};
use crate::csrf::pending_csrf;
use crate::next::safe_next;
use crate::routes::{Group, Routes};
use crate::session::{self, Client, Viewer};
use crate::{AppState, Error};

/// The second step of signing in, and the account page for it.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::pending_sign_in()
                .get("/signin/verify", form)
                .post("/signin/verify", submit)
                .post("/signin/verify/send", send)
                .post("/signin/verify/app", app),
        )
        .group(
            Group::signed_in()
                .get("/account/two-step", account)
                .post("/account/two-step", account_submit),
        )
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    nav: Option<super::Nav>,
    csrf: String,
    next: String,
    /// `phone`, `totp`, or `None` while setting up.
    method: Option<&'static str>,
    hint: String,
    phone: String,
    setup: Option<Setup>,
    status: Option<&'static str>,
    error: Option<String>,
}

/// An authenticator app being set up, as the page shows it.
pub struct Setup {
    pub secret: String,
    pub uri: String,
    pub qr: String,
}

impl Setup {
    fn new(setup: TotpSetup) -> Self {
        let qr = qrcode::QrCode::new(setup.uri.as_bytes())
            .map(|code| {
                let svg = code
                    .render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(200, 200)
                    .build();
                svg.find("<svg").map_or_else(String::new, |at| svg[at..].to_owned())
            })
            .unwrap_or_default();
        Self {
            secret: setup.secret,
            uri: setup.uri,
            qr,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    next: String,
}

async fn pending(state: &AppState, headers: &HeaderMap) -> Result<(String, User), Error> {
    let Some(token) = cookies::get(headers, PENDING) else {
        return Err(Error::NotSignedIn { next: "/".into() });
    };
    match state.store.auth().pending_sign_in(&token).await {
        Ok(user) => Ok((token, user)),
        Err(store::Error::TokenInvalid | store::Error::TokenExpired | store::Error::TokenUsed) => {
            Err(Error::NotSignedIn { next: "/".into() })
        }
        Err(error) => Err(error.into()),
    }
}

async fn verify_page(state: &AppState, token: &str, user: &User, next: &str) -> Result<VerifyPage, Error> {
    let two_step = state.store.auth().two_step(user.id).await?;
    Ok(VerifyPage {
        nav: None,
        csrf: pending_csrf(token),
        next: safe_next(next).unwrap_or_default().to_owned(),
        method: two_step.method.map(Method::as_str),
        hint: phone_hint(&two_step.phone),
        phone: two_step.phone,
        setup: None,
        status: None,
        error: None,
    })
}

/// `GET /signin/verify`: asks for the code (or sets two-step up).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, Error> {
    let (token, user) = pending(&state, &headers).await?;
    let mut page = verify_page(&state, &token, &user, &query.next).await?;
    if page.method == Some("phone") {
        page.status = Some("sent");
    }
    html(StatusCode::OK, &page)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct VerifyForm {
    code: String,
    method: String,
    remember: String,
    next: String,
    channel: String,
    phone: String,
}

/// `POST /signin/verify`: checks the code, then opens the session.
pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Result<Response, Error> {
    let (token, user) = pending(&state, &headers).await?;
    let method = Method::parse(&form.method).unwrap_or(Method::Phone);
    let remember = !form.remember.is_empty();
    match state
        .store
        .auth()
        .finish_sign_in(&token, method, &form.code, remember, &client)
        .await
    {
        Ok((session, device)) => {
            if let Some(old) = session::cookie_token(&headers) {
                state.store.auth().sign_out(&old).await?;
            }
            let mut response = signed_in(&session.token, after_signin(&form.next));
            let cookies = response.headers_mut();
            cookies.append(header::SET_COOKIE, set_cookie(PENDING, "", 0));
            if let Some(device) = device {
                let days = state.store.policy().two_step.remember_days;
                cookies.append(header::SET_COOKIE, set_cookie(DEVICE, &device, days * 86_400));
            }
            Ok(response)
        }
        Err(store::Error::AuthFailed) => {
            let mut page = verify_page(&state, &token, &user, &form.next).await?;
            page.error = Some(
                "That code is not right, has expired or was already used. Please try again, or ask for a new code."
                    .into(),
            );
            html(StatusCode::UNAUTHORIZED, &page)
        }
        // Too many wrong codes voided the pending sign-in, or sign-in is paused
        // or throttled: back to the password, saying why.
        Err(
            error @ (store::Error::TokenExpired
            | store::Error::TokenUsed
            | store::Error::TokenInvalid
            | store::Error::Locked
            | store::Error::Throttled),
        ) => {
            let (status, message) = match error {
                store::Error::Locked => (StatusCode::FORBIDDEN, LOCKED.to_owned()),
                store::Error::Throttled => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins from your network. Please wait 15 minutes and try again.".to_owned(),
                ),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "Too many wrong codes: please sign in again with your password.".to_owned(),
                ),
            };
            let mut response = signin_page(&headers, status, user.email, &form.next, Some(message))?;
            response
                .headers_mut()
                .append(header::SET_COOKIE, set_cookie(PENDING, "", 0));
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /signin/verify/send`: sends a code by text or voice (to a new phone
/// while setting up).
pub async fn send(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Result<Response, Error> {
    let (token, user) = pending(&state, &headers).await?;
    let channel = Channel::parse(&form.channel).ok_or(Error::NotFound)?;
    let two_step = state.store.auth().two_step(user.id).await?;
    let (purpose, phone) = match two_step.method {
        Some(Method::Phone) => (store::accounts::two_step::CodePurpose::SignIn, None),
        Some(Method::Totp) => return Err(Error::NotFound),
        None => (store::accounts::two_step::CodePurpose::Enrol, Some(form.phone.as_str())),
    };
    let mut page = verify_page(&state, &token, &user, &form.next).await?;
    match state
        .store
        .auth()
        .send_code(&user, purpose, channel, phone, &client)
        .await
    {
        Ok(()) => {
            page.status = Some(if channel == Channel::Voice { "called" } else { "sent" });
            page.phone = form.phone.trim().to_owned();
            if phone.is_some() {
                page.hint = phone_hint(&page.phone);
            }
        }
        Err(store::Error::Invalid(problem)) => page.error = Some(problem),
        Err(error) => return Err(error.into()),
    }
    html(StatusCode::OK, &page)
}

/// `POST /signin/verify/app`: starts setting up an authenticator app (only
/// for someone who has no second step yet).
pub async fn app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Result<Response, Error> {
    let (token, user) = pending(&state, &headers).await?;
    let mut page = verify_page(&state, &token, &user, &form.next).await?;
    if page.method.is_some() {
        return Err(Error::NotFound);
    }
    page.setup = Some(Setup::new(state.store.auth().begin_totp(&user).await?));
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "two_step_account.html")]
struct AccountPage {
    nav: Option<super::Nav>,
    method: Option<&'static str>,
    hint: String,
    phone: String,
    off: bool,
    devices: i64,
    setup: Option<Setup>,
    status: Option<&'static str>,
    error: Option<String>,
}

async fn account_page(state: &AppState, viewer: &Viewer) -> Result<AccountPage, Error> {
    let two_step = state.store.auth().two_step(viewer.user.id).await?;
    Ok(AccountPage {
        nav: Some(viewer.nav()),
        method: two_step.method.map(Method::as_str),
        hint: phone_hint(&two_step.phone),
        phone: two_step.phone,
        off: !two_step.on,
        devices: state.store.auth().remembered_devices(&viewer.user).await?,
        setup: None,
        status: None,
        error: None,
    })
}

/// `GET /account/two-step`
pub async fn account(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    html(StatusCode::OK, &account_page(&state, &viewer).await?)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AccountForm {
    action: String,
    phone: String,
    channel: String,
    code: String,
}

/// `POST /account/two-step`: `action` is `send` (a code to a phone to use),
/// `phone` (confirm it), `app` (start an authenticator app) or `app_confirm`.
pub async fn account_submit(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<AccountForm>,
) -> Result<Response, Error> {
    let store = &state.store;
    let user = &viewer.user;
    let mut page = account_page(&state, &viewer).await?;
    let wrong = "That code is not right or has expired. Please try again.";
    let outcome = match form.action.as_str() {
        "send" => {
            let channel = Channel::parse(&form.channel).unwrap_or(Channel::Sms);
            page.phone = form.phone.trim().to_owned();
            store
                .auth()
                .send_code(
                    user,
                    store::accounts::two_step::CodePurpose::Enrol,
                    channel,
                    Some(&form.phone),
                    &client,
                )
                .await
                .map(|()| "sent")
        }
        "phone" => store
            .auth()
            .confirm_phone(user, &form.code, &client)
            .await
            .map(|()| "phone_done"),
        "app" => {
            page.setup = Some(Setup::new(store.auth().begin_totp(user).await?));
            Ok("app_started")
        }
        "app_confirm" => store
            .auth()
            .confirm_totp(user, &form.code, &client)
            .await
            .map(|()| "app_done"),
        _ => return Err(Error::NotFound),
    };
    let status = match outcome {
        Ok(status) => {
            page.status = Some(status);
            StatusCode::OK
        }
        Err(store::Error::Invalid(problem)) => {
            page.error = Some(problem);
            StatusCode::BAD_REQUEST
        }
        Err(store::Error::AuthFailed) => {
            page.error = Some(wrong.into());
            StatusCode::BAD_REQUEST
        }
        Err(error) => return Err(error.into()),
    };
    if matches!(page.status, Some("phone_done" | "app_done")) {
        let fresh = account_page(&state, &viewer).await?;
        page.method = fresh.method;
        page.hint = fresh.hint;
        page.phone = fresh.phone;
    }
    html(status, &page)
}
