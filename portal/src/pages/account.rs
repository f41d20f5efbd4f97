//! Signing in and out, and setting a password from an emailed link.

use std::fmt::Write as _;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::accounts::SignIn;
use store::accounts::two_step::Method;

use super::html;
use super::link_renewal::{offer, reader_zone, renewable};
use super::signing_in::{LOCKED, after_signin, device_cookie, signed_in, signin_page, to_second_step};
use crate::csrf::{same_token, signin_csrf};
use crate::routes::{Group, Routes};
use crate::session::{self, Client, Viewer};
use crate::{AppState, Error};

/// Signing in and out, the set-password link, the password change.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::exempt(
                "sign-in opens a session, so no session authenticates it; its form carries a login-CSRF token \
                 bound to the __Host-sealpost_signin cookie, checked in the handler",
            )
            .get("/signin", signin_form)
            .post("/signin", signin),
        )
        .group(
            Group::exempt(
                "authorised by the set-password token in the path, which a forger would have to know \
                 (and could then use directly); no cookie is involved",
            )
            .get("/password/{token}", password_form)
            .post("/password/{token}", set_password)
            .post("/password/{token}/code", send_reset_code),
        )
        .group(
            Group::exempt(
                "needs no authority: the same answer for every address, and a forged request only sends \
                 the owner of an address a reset link, as anyone could by typing the address",
            )
            .get("/forgot", forgot_form)
            .post("/forgot", forgot),
        )
        // Signed out already (no session cookie): the browser's cookie is cleared all the same.
        .group(Group::public().post("/signout", signout))
        .group(
            Group::signed_in()
                .get("/account/password", change_password_form)
                .post("/account/password", change_password),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    next: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SigninForm {
    email: String,
    password: String,
    next: String,
    csrf: String,
}

/// `GET /signin?next=/m/…`
pub async fn signin_form(
    viewer: Option<Viewer>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, Error> {
    if viewer.is_some() {
        return Ok(Redirect::to(after_signin(&query.next)).into_response());
    }
    signin_page(&headers, StatusCode::OK, String::new(), &query.next, None)
}

/// `POST /signin`: opens a session and goes on to `next`.
pub async fn signin(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Result<Response, Error> {
    let genuine = session::signin_token(&headers).is_some_and(|token| same_token(&signin_csrf(&token), &form.csrf));
    if !genuine {
        return signin_page(
            &headers,
            StatusCode::FORBIDDEN,
            form.email,
            &form.next,
            Some("This sign-in form has expired or did not come from this site. Please sign in again.".into()),
        );
    }
    let device = device_cookie(&headers);
    match state
        .store
        .auth()
        .begin_sign_in(form.email.trim(), &form.password, device.as_deref(), &client)
        .await
    {
        Ok(SignIn::Done(session)) => {
            // A browser signing in again leaves its old session behind: end it.
            if let Some(old) = session::cookie_token(&headers) {
                state.store.auth().sign_out(&old).await?;
            }
            Ok(signed_in(&session.token, after_signin(&form.next)))
        }
        Ok(SignIn::SecondStep { pending, .. }) => Ok(to_second_step(&pending, &form.next)),
        Err(store::Error::PasswordExpired(token)) => {
            Ok(Redirect::to(&format!("/password/{}?expired=1", token.expose())).into_response())
        }
        Err(error @ (store::Error::AuthFailed | store::Error::Locked | store::Error::Throttled)) => {
            let (status, message) = match error {
                store::Error::Locked => (StatusCode::FORBIDDEN, LOCKED.to_owned()),
                store::Error::Throttled => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins from your network. Please wait 15 minutes and try again.".to_owned(),
                ),
                _ => {
                    let mut message = "Wrong email address or password.".to_owned();
                    if let Some((left, minutes)) = state.store.auth().sign_in_warning(form.email.trim()).await? {
                        let tries = if left == 1 {
                            "One more failed try"
                        } else {
                            "Two more failed tries"
                        };
                        let _ = write!(
                            message,
                            " {tries} will lock sign-in for this address for {minutes} minutes."
                        );
                    }
                    (StatusCode::UNAUTHORIZED, message)
                }
            };
            signin_page(&headers, status, form.email, &form.next, Some(message))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /signout`: ends the session and clears the cookie.
pub async fn signout(State(state): State<AppState>, viewer: Option<Viewer>) -> Result<Response, Error> {
    if let Some(viewer) = viewer {
        state.store.auth().sign_out(&viewer.token).await?;
    }
    Ok(([(header::SET_COOKIE, session::clear_cookie())], Redirect::to("/signin")).into_response())
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    nav: Option<super::Nav>,
    token: String,
    email: String,
    error: Option<String>,
    /// Sign-in sent the person here because their password is too old.
    expired: bool,
    /// A reset asks for the second step too: `phone` or `totp`.
    code_method: Option<&'static str>,
    /// A code was just sent.
    sent: bool,
    /// The password rules, listed before the person types.
    rules: Vec<String>,
    /// What was typed, kept when a code is sent (the page is `no-store`).
    password: String,
    confirm: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    password: String,
    confirm: String,
    code: String,
}

async fn password_page(state: &AppState, token: String, error: Option<String>) -> Result<PasswordPage, Error> {
    let (user, method) = state.store.auth().reset_step(&token).await?;
    Ok(PasswordPage {
        nav: None,
        token,
        email: user.email,
        error,
        expired: false,
        code_method: method.map(Method::as_str),
        sent: false,
        rules: store::accounts::passwords::describe(&state.store.policy().passwords),
        password: String::new(),
        confirm: String::new(),
    })
}

/// A set-password link that can't be used: an expired or used one offers a
/// new link ("Send me a new link"); others are the plain error page.
fn dead_link(token: &str, error: store::Error) -> Result<Response, Error> {
    match renewable(&error).and_then(|problem| offer(problem, token, None)) {
        Some(page) => page,
        None => Err(error.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExpiredQuery {
    expired: String,
}

/// `GET /password/{token}` (`?expired=1` when sign-in found the password too old)
pub async fn password_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<ExpiredQuery>,
) -> Result<Response, Error> {
    if let Err(error) = state.store.auth().reset_step(&token).await {
        return dead_link(&token, error);
    }
    let mut page = password_page(&state, token, None).await?;
    page.expired = !query.expired.is_empty();
    html(StatusCode::OK, &page)
}

/// `POST /password/{token}`: sets the password, signs in, and goes to the
/// message the link was about (or the inbox).
pub async fn set_password(
    State(state): State<AppState>,
    Client(client): Client,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Error> {
    if let Err(error) = state.store.auth().reset_step(&token).await {
        return dead_link(&token, error);
    }
    let problem = if form.password.is_empty() {
        Some("Please choose a password.".to_owned())
    } else if form.password != form.confirm {
        Some("The two passwords are not the same. Please type the same password twice.".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        return retry(&state, token, problem, &form, StatusCode::BAD_REQUEST).await;
    }
    let (next, message) = match state
        .store
        .auth()
        .set_password_checked(&token, &form.password, &form.code, &client)
        .await
    {
        Ok(done) => done,
        // Too many wrong codes voided the link (or it ran out meanwhile).
        Err(error @ (store::Error::TokenExpired | store::Error::TokenUsed)) => return dead_link(&token, error),
        Err(error @ (store::Error::Locked | store::Error::Throttled)) => {
            let problem = if matches!(error, store::Error::Locked) {
                "Too many wrong codes: the code step is locked for a while. Please try again later."
            } else {
                "Too many failed attempts from your network. Please wait 15 minutes and try again."
            };
            return retry(&state, token, problem.to_owned(), &form, StatusCode::TOO_MANY_REQUESTS).await;
        }
        Err(store::Error::Invalid(problem)) => {
            return retry(&state, token, problem, &form, StatusCode::BAD_REQUEST).await;
        }
        Err(error) => return Err(error.into()),
    };
    let to = message.map_or_else(|| "/inbox".to_owned(), |id| format!("/m/{id}"));
    Ok(match next {
        SignIn::Done(session) => signed_in(&session.token, &to),
        SignIn::SecondStep { pending, .. } => to_second_step(&pending, &to),
    })
}

/// The set-password form again with `problem`; a phone code that was sent (the
/// person typed one) is still asked for.
async fn retry(
    state: &AppState,
    token: String,
    problem: String,
    form: &PasswordForm,
    status: StatusCode,
) -> Result<Response, Error> {
    let mut page = password_page(state, token, Some(problem)).await?;
    page.sent = !form.code.is_empty();
    html(status, &page)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SendCodeForm {
    channel: String,
    /// What was typed so far, shown again.
    password: String,
    confirm: String,
}

/// `POST /password/{token}/code`: sends the phone code a reset asks for.
pub async fn send_reset_code(
    State(state): State<AppState>,
    Client(client): Client,
    Path(token): Path<String>,
    Form(form): Form<SendCodeForm>,
) -> Result<Response, Error> {
    if let Err(error) = state.store.auth().reset_step(&token).await {
        return dead_link(&token, error);
    }
    let channel = store::accounts::two_step::Channel::parse(&form.channel).ok_or(Error::NotFound)?;
    let error = match state.store.auth().send_reset_code(&token, channel, &client).await {
        Ok(()) => None,
        Err(store::Error::Invalid(problem)) => Some(problem),
        Err(error) => return Err(error.into()),
    };
    let mut page = password_page(&state, token, error).await?;
    page.sent = page.error.is_none();
    page.password = form.password;
    page.confirm = form.confirm;
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    nav: Option<super::Nav>,
    answer: Option<ForgotAnswer>,
}

/// What the page says after a request: the same for every address.
struct ForgotAnswer {
    sent_now: bool,
    sent_at: String,
    next_at: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ForgotForm {
    email: String,
}

/// `GET /forgot`: asks for the address to send a set-password link to.
pub async fn forgot_form() -> Result<Response, Error> {
    html(
        StatusCode::OK,
        &ForgotPage {
            nav: None,
            answer: None,
        },
    )
}

/// `POST /forgot`: sends the link if the account exists; the answer is the same
/// either way, so the page tells nobody which addresses have accounts. A link
/// asked for minutes ago is not sent again, and the page says so and when.
pub async fn forgot(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, Error> {
    let slot = state
        .store
        .auth()
        .request_password_reset(form.email.trim(), &client)
        .await?;
    let zone = reader_zone(&headers);
    let answer = ForgotAnswer {
        sent_now: slot.sent_now,
        sent_at: zone.show(slot.sent_at).text,
        next_at: zone.show(slot.next_at).text,
    };
    let status = if slot.sent_now {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    html(
        status,
        &ForgotPage {
            nav: None,
            answer: Some(answer),
        },
    )
}

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePasswordPage {
    nav: Option<super::Nav>,
    error: Option<String>,
    done: bool,
    /// The password rules, listed before the person types.
    rules: Vec<String>,
    account_tab: &'static str,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ChangePasswordForm {
    current: String,
    password: String,
    confirm: String,
    /// `on` when the person also revokes their app passwords.
    revoke_app_passwords: String,
}

/// `GET /account/password`
pub async fn change_password_form(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    html(
        StatusCode::OK,
        &ChangePasswordPage {
            nav: Some(viewer.nav()),
            error: None,
            done: false,
            rules: store::accounts::passwords::describe(&state.store.policy().passwords),
            account_tab: "password",
        },
    )
}

/// `POST /account/password`: current password, then the new one twice. Every
/// other session of the person ends; their app passwords too if they tick it.
pub async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<ChangePasswordForm>,
) -> Result<Response, Error> {
    let refuse = |error: String| {
        html(
            StatusCode::BAD_REQUEST,
            &ChangePasswordPage {
                nav: Some(viewer.nav()),
                error: Some(error),
                done: false,
                rules: store::accounts::passwords::describe(&state.store.policy().passwords),
                account_tab: "password",
            },
        )
    };
    if form.password != form.confirm {
        return refuse("The two new passwords are not the same. Please type the same password twice.".into());
    }
    match state
        .store
        .auth()
        .change_password(
            &viewer.user,
            &form.current,
            &form.password,
            &viewer.token,
            !form.revoke_app_passwords.is_empty(),
            &client,
        )
        .await
    {
        Ok(()) => html(
            StatusCode::OK,
            &ChangePasswordPage {
                nav: Some(viewer.nav()),
                error: None,
                done: true,
                rules: Vec::new(),
                account_tab: "password",
            },
        ),
        Err(store::Error::Invalid(problem)) => refuse(problem),
        // Too many wrong current passwords lock sign-in like wrong sign-ins do.
        Err(error @ (store::Error::Locked | store::Error::Throttled)) => {
            let problem = if matches!(error, store::Error::Locked) {
                LOCKED
            } else {
                "Too many failed attempts from your network. Please wait 15 minutes and try again."
            };
            html(
                StatusCode::TOO_MANY_REQUESTS,
                &ChangePasswordPage {
                    nav: Some(viewer.nav()),
                    error: Some(problem.to_owned()),
                    done: false,
                    rules: store::accounts::passwords::describe(&state.store.policy().passwords),
                    account_tab: "password",
                },
            )
        }
        Err(error) => Err(error.into()),
    }
}
