//! Who is asking: the session cookie and the signed-in [`Viewer`], and the
//! client address for the audit log. CSRF tokens are checked by the guard in
//! `csrf.rs`, before a handler runs; a state-changing request that reaches the
//! [`Viewer`] extractor unchecked is refused.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::cookies;
use crate::csrf::{self, SessionChecked};
use crate::nav::Nav;
use crate::{AppState, Error};

/// The session cookie's name.
pub const COOKIE: &str = cookies::SESSION;

/// The cookie that opens a session.
pub fn session_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={token}; Secure; HttpOnly; SameSite=Lax; Path=/")).unwrap_or_else(|_| {
        HeaderValue::from_static("sealpost_session=; Max-Age=0; Secure; HttpOnly; SameSite=Lax; Path=/")
    })
}

/// The cookie that ends a session in the browser.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("sealpost_session=; Max-Age=0; Secure; HttpOnly; SameSite=Lax; Path=/")
}

/// The session token from the request's cookies, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookies::get(headers, COOKIE)
}

/// The pre-session cookie the sign-in form's CSRF token is bound to (login
/// CSRF: another site must not sign a browser in to an account of its
/// choosing). `__Host-`: only this host may set it; `SameSite=Lax`: a
/// cross-site POST does not carry it.
pub const SIGNIN_COOKIE: &str = "__Host-sealpost_signin";

/// The sign-in pre-session token from the request, if it has a sane one.
pub fn signin_token(headers: &HeaderMap) -> Option<String> {
    cookies::get(headers, SIGNIN_COOKIE).filter(|token| {
        token.len() <= 100
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The cookie that holds a sign-in pre-session token (an hour).
pub fn signin_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SIGNIN_COOKIE}={token}; Max-Age=3600; Secure; HttpOnly; SameSite=Lax; Path=/"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("__Host-sealpost_signin=; Max-Age=0; Secure; Path=/"))
}

/// The client's address as the audit log records it.
#[derive(Debug, Clone)]
pub struct Client(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        Ok(Self(address))
    }
}

/// A signed-in user and their session token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: store::accounts::User,
    pub token: String,
    /// Messages in their inbox they have not opened (the folder list shows it).
    pub unread: i64,
    /// The time zone their pages show times in.
    pub zone: crate::time::Zone,
}

impl Viewer {
    /// This session's CSRF token: SHA-256 of a fixed label and the session token.
    pub fn csrf(&self) -> String {
        csrf::csrf_for(&self.token)
    }

    /// What the page header shows for this viewer.
    pub fn nav(&self) -> Nav {
        Nav::of(&self.user, self.csrf(), self.unread)
    }
}

/// The viewer the access guard found, or the session cookie's user. A
/// state-changing request whose CSRF token was not checked is refused, so a
/// handler outside the guarded groups can't act for the session by mistake.
async fn lookup(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, Error> {
    if let Some(viewer) = parts.extensions.get::<Viewer>() {
        return Ok(Some(viewer.clone()));
    }
    let Some(token) = cookie_token(&parts.headers) else {
        return Ok(None);
    };
    if csrf::changes_state(&parts.method) && parts.extensions.get::<SessionChecked>().is_none() {
        tracing::error!(method = %parts.method, "portal: a state-changing route is outside the CSRF guard");
        return Err(Error::Forbidden);
    }
    let Some(user) = state.store.auth().session_user(&token).await? else {
        return Ok(None);
    };
    let unread = state.store.mail().unread_count(&user).await?;
    let browser_zone = cookies::get(&parts.headers, crate::time::COOKIE);
    let zone = crate::time::choose(user.profile.time_zone.as_deref(), browser_zone.as_deref());
    Ok(Some(Viewer {
        user,
        token,
        unread,
        zone,
    }))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        lookup(parts, state).await?.ok_or(Error::NotSignedIn { next })
    }
}

impl OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        lookup(parts, state).await
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sealpost_session=tok; b=2"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("tok"));
        headers.insert(header::COOKIE, HeaderValue::from_static("sealpost_session="));
        assert_eq!(cookie_token(&headers), None);
    }
}
