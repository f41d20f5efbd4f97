//! The portal's cookie names and reading a cookie from a request: a leaf that
//! the session, the CSRF guard and the sign-in pages share.

use axum::http::{HeaderMap, header};

/// The session cookie.
pub const SESSION: &str = "sealpost_session";
/// The pending sign-in between the password and the second step.
pub const PENDING: &str = "sealpost_pending";
/// A device remembered by the second step.
pub const DEVICE: &str = "sealpost_device";

/// A cookie's value from the request, if set and not empty.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}
