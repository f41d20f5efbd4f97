//! Who is asking: the session cookie and the signed-in [`Viewer`], the client
//! address for the audit log, CSRF tokens, and the guard on `next` redirects.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::{AppState, Error};

/// The session cookie's name.
pub const COOKIE: &str = "sealpost_session";

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
    cookie(headers, COOKIE)
}

/// A cookie's value from the request, if set and not empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// The pre-session cookie the sign-in form's CSRF token is bound to (login
/// CSRF: another site must not sign a browser in to an account of its
/// choosing). `__Host-`: only this host may set it; `SameSite=Lax`: a
/// cross-site POST does not carry it.
pub const SIGNIN_COOKIE: &str = "__Host-sealpost_signin";

/// The sign-in pre-session token from the request, if it has a sane one.
pub fn signin_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SIGNIN_COOKIE).filter(|token| {
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

/// The sign-in form's CSRF token for a pre-session token.
pub fn signin_csrf(token: &str) -> String {
    csrf_for(&format!("signin:{token}"))
}

/// Compares two CSRF tokens in constant time.
pub fn same_token(expected: &str, submitted: &str) -> bool {
    expected.len() == submitted.len()
        && expected
            .bytes()
            .zip(submitted.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
}

impl Viewer {
    /// This session's CSRF token: SHA-256 of a fixed label and the session token.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    /// Refuses a form whose CSRF field does not match this session.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), Error> {
        let expected = self.csrf();
        let same = expected.len() == submitted.len()
            && expected
                .bytes()
                .zip(submitted.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same { Ok(()) } else { Err(Error::Forbidden) }
    }

    /// What the page header shows for this viewer.
    pub fn nav(&self) -> crate::pages::Nav {
        use store::accounts::Role;
        let sender = self.user.practice_id.is_some() && matches!(self.user.role, Role::Doctor | Role::Staff);
        crate::pages::Nav {
            name: self.user.display_name().to_owned(),
            csrf: self.csrf(),
            sender,
            manager: self.user.user_manager && self.user.practice_id.is_some(),
        }
    }
}

/// The CSRF token for a session token.
pub fn csrf_for(session_token: &str) -> String {
    let digest = store::crypto::sha256(format!("csrf:{session_token}").as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

async fn lookup(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, Error> {
    let Some(token) = cookie_token(&parts.headers) else {
        return Ok(None);
    };
    Ok(state
        .store
        .auth()
        .session_user(&token)
        .await?
        .map(|user| Viewer { user, token }))
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

/// `next` if it is a path on this site, else `None`. Refuses absolute URLs,
/// scheme-relative `//host` and `/\host` (browsers treat `\` as `/`), and
/// anything with control characters, so sign-in can't redirect elsewhere.
pub fn safe_next(next: &str) -> Option<&str> {
    let mut chars = next.chars();
    let ok = chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 2000;
    ok.then_some(next)
}

/// Characters escaped when a path is put in the `next` query parameter.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'`');

/// The sign-in page that leads on to `next`.
pub fn signin_url(next: &str) -> String {
    match safe_next(next) {
        Some(next) if next != "/" => format!("/signin?next={}", utf8_percent_encode(next, QUERY_VALUE)),
        _ => "/signin".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_guard_refuses_other_sites() {
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "evil.com",
            "",
            "/\t/evil.com",
            "/m/x\\y",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        for good in ["/", "/inbox", "/m/0123456789abcdef0123456789abcdef", "/m/1?x=//y"] {
            assert_eq!(safe_next(good), Some(good));
        }
    }

    #[test]
    fn signin_url_keeps_next() {
        assert_eq!(signin_url("/m/abc"), "/signin?next=/m/abc");
        assert_eq!(
            signin_url("/m/abc?invite=a&b=c"),
            "/signin?next=/m/abc%3Finvite%3Da%26b%3Dc"
        );
        assert_eq!(signin_url("//evil.com"), "/signin");
    }

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

    #[test]
    fn csrf_depends_on_the_session() {
        assert_eq!(csrf_for("a").len(), 64);
        assert_ne!(csrf_for("a"), csrf_for("b"));
    }
}
