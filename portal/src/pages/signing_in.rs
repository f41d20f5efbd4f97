//! What signing in by password (`account.rs`), the second step (`two_step.rs`)
//! and the other ways in share: the sign-in page, where to go afterwards, the
//! cookies that open a session or hold a pending sign-in. A leaf, so those
//! pages don't import each other.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Nav, html};
use crate::cookies::{self, DEVICE, PENDING};
use crate::csrf::signin_csrf;
use crate::next::{safe_next, signin_url};
use crate::{Error, session};

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    nav: Option<Nav>,
    email: String,
    next: String,
    /// Bound to the pre-session cookie (login CSRF).
    csrf: String,
    error: Option<String>,
}

/// What the sign-in page says when sign-in is paused for an address. The same
/// whether or not an account has it.
pub const LOCKED: &str = "Sign-in for this address is locked after too many failed attempts: for 15 minutes at first, longer if it happens again. Please try again later, or use \u{201c}Forgot your password?\u{201d} below to set a new password and unlock it now.";

/// Where to go after signing in: `next` if it stays on this site, else the inbox.
pub fn after_signin(next: &str) -> &str {
    safe_next(next).unwrap_or("/inbox")
}

/// A redirect that also opens the session in the browser.
pub fn signed_in(token: &str, to: &str) -> Response {
    ([(header::SET_COOKIE, session::session_cookie(token))], Redirect::to(to)).into_response()
}

/// The sign-in page, with the pre-session cookie its form's CSRF token is
/// bound to (the browser's own, or a new one).
pub fn signin_page(
    headers: &HeaderMap,
    status: StatusCode,
    email: String,
    next: &str,
    error: Option<String>,
) -> Result<Response, Error> {
    let token = session::signin_token(headers).unwrap_or_else(store::accounts::new_token);
    let page = SigninPage {
        nav: None,
        email,
        next: safe_next(next).unwrap_or_default().to_owned(),
        csrf: signin_csrf(&token),
        error,
    };
    let mut response = html(status, &page)?;
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::signin_cookie(&token));
    Ok(response)
}

/// The remembered-device token from the request, if any.
pub fn device_cookie(headers: &HeaderMap) -> Option<String> {
    cookies::get(headers, DEVICE)
}

/// A second-step cookie (`sealpost_pending` or `sealpost_device`).
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax; Path=/"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("sealpost_pending=; Max-Age=0; Path=/"))
}

/// Sends the browser to the second step, holding the pending sign-in.
pub fn to_second_step(pending: &str, next: &str) -> Response {
    let to = signin_url(next).replacen("/signin", "/signin/verify", 1);
    (
        [(header::SET_COOKIE, set_cookie(PENDING, pending, 10 * 60))],
        Redirect::to(&to),
    )
        .into_response()
}
