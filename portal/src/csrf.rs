//! CSRF by construction: the guard every group of state-changing routes gets
//! from the route table (`routes.rs`), and the tokens it compares.
//!
//! A token is SHA-256 of a label and the cookie that authenticates the request
//! (the session, or a pending sign-in), so the guard needs no database. A POST
//! (PUT, PATCH, DELETE) that carries that cookie must also carry its token, in
//! the `X-CSRF-Token` header or as the body's `csrf` field: a URL-encoded form
//! field, a JSON body's top-level `"csrf"`, or a multipart body's *first* part
//! (read before the rest of the body is streamed on, so uploads stay streamed).
//! A request without the cookie carries no ambient authority and passes on to
//! the handler, which sends the person to sign in. Routes not authenticated by
//! a cookie are exempt only by name, with the reason, in their `routes()`.

use std::fmt::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;

use crate::Error;
use crate::cookies;

/// The header a script (or an upload) sends the token in.
pub const HEADER: &str = "x-csrf-token";
/// The form field the token is sent in.
pub const FIELD: &str = "csrf";
/// Largest URL-encoded or JSON body the guard reads for the token; larger ones
/// are refused before any handler sees them.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// How much of a multipart body the guard reads looking for its first part.
const MAX_FIRST_PART: usize = 16 * 1024;

/// Which token a group of routes demands, i.e. which cookie authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csrf {
    /// The session cookie: every signed-in form.
    Session,
    /// The pending-sign-in cookie between the password and the second step.
    PendingSignIn,
    /// No cookie authenticates these routes; the text says what protects them.
    Exempt(&'static str),
}

/// Put in a request's extensions once its session token has been checked;
/// the `Viewer` extractor (`session.rs`) refuses a state-changing request without it.
#[derive(Debug, Clone, Copy)]
pub struct SessionChecked;

/// The CSRF token for a session token.
pub fn csrf_for(session_token: &str) -> String {
    let digest = store::crypto::sha256(format!("csrf:{session_token}").as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The token of the second step's forms, bound to the pending-sign-in cookie.
pub fn pending_csrf(pending: &str) -> String {
    csrf_for(&format!("pending:{pending}"))
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

/// Whether a method can change state (RFC 9110 §9.2.1: not a safe method).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The middleware: refuses a state-changing request that carries `policy`'s
/// cookie without the matching token.
pub async fn guard(policy: Csrf, request: Request, next: Next) -> Response {
    if !changes_state(request.method()) {
        return next.run(request).await;
    }
    let (cookie, expected): (&str, fn(&str) -> String) = match policy {
        Csrf::Session => (cookies::SESSION, csrf_for),
        Csrf::PendingSignIn => (cookies::PENDING, pending_csrf),
        Csrf::Exempt(_) => return next.run(request).await,
    };
    let Some(token) = cookies::get(request.headers(), cookie) else {
        return next.run(request).await;
    };
    let (submitted, mut request) = match submitted_token(request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !submitted.is_some_and(|submitted| same_token(&expected(&token), &submitted)) {
        tracing::info!(method = %request.method(), "portal: CSRF token missing or wrong; refused");
        return Error::Forbidden.into_response();
    }
    if policy == Csrf::Session {
        request.extensions_mut().insert(SessionChecked);
    }
    next.run(request).await
}

/// The token the request carries, and the request with its body intact.
async fn submitted_token(request: Request) -> Result<(Option<String>, Request), Response> {
    if let Some(token) = request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok((Some(token.to_owned()), request));
    }
    let kind = content_type(request.headers());
    let (parts, body) = request.into_parts();
    let (token, body) = if kind.starts_with("application/x-www-form-urlencoded") {
        let bytes = read(body).await?;
        (form_field(&bytes), Body::from(bytes))
    } else if kind.starts_with("application/json") {
        let bytes = read(body).await?;
        let token = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get(FIELD)?.as_str().map(str::to_owned));
        (token, Body::from(bytes))
    } else if kind.starts_with("multipart/form-data") {
        // The boundary is compared byte for byte: take it from the header as
        // sent (Chromium's are mixed case), not the lower-cased `kind`.
        let raw = request_content_type(&parts.headers);
        match boundary(&raw) {
            Some(boundary) => first_part(body, &boundary).await,
            None => (None, body),
        }
    } else {
        (None, body)
    };
    Ok((token, Request::from_parts(parts, body)))
}

fn content_type(headers: &HeaderMap) -> String {
    request_content_type(headers).to_ascii_lowercase()
}

fn request_content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn read(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "This form is too large.").into_response())
}

/// The `csrf` field of a URL-encoded form (the token is hex: no decoding needed
/// beyond refusing anything else).
fn form_field(body: &[u8]) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let value = pair.strip_prefix(FIELD.as_bytes())?.strip_prefix(b"=")?;
        let value = percent_encoding::percent_decode(value).decode_utf8().ok()?;
        Some(value.into_owned())
    })
}

/// `boundary=` of a `multipart/form-data` content type (RFC 7578 §4.1).
fn boundary(content_type: &str) -> Option<String> {
    let value = content_type
        .split(';')
        .find_map(|p| {
            let p = p.trim();
            p.get(..9)
                .filter(|name| name.eq_ignore_ascii_case("boundary="))
                .map(|_| &p[9..])
        })?
        .trim_matches('"');
    (!value.is_empty() && value.len() <= 70).then(|| value.to_owned())
}

/// Reads a multipart body until its first part is complete (at most
/// [`MAX_FIRST_PART`]); the token if that part is the `csrf` field. The body
/// handed on is the bytes read followed by the rest, still streaming.
async fn first_part(body: Body, boundary: &str) -> (Option<String>, Body) {
    let mut stream = body.into_data_stream();
    let mut buffered = Vec::new();
    let mut token = None;
    let mut failed = None;
    loop {
        match parse_first_part(&buffered, boundary) {
            FirstPart::Incomplete => {}
            FirstPart::Token(found) => {
                token = Some(found);
                break;
            }
            FirstPart::Other => break,
        }
        // Checked after parsing, so a first piece larger than the limit (a
        // whole small form in one read) is still looked at.
        if buffered.len() >= MAX_FIRST_PART {
            break;
        }
        match stream.next().await {
            Some(Ok(chunk)) => buffered.extend_from_slice(&chunk),
            Some(Err(error)) => {
                failed = Some(error);
                break;
            }
            None => break,
        }
    }
    let head =
        futures::stream::iter(std::iter::once(Ok::<_, axum::Error>(Bytes::from(buffered))).chain(failed.map(Err)));
    (token, Body::from_stream(head.chain(stream)))
}

/// What the bytes read so far say about a multipart body's first part.
#[derive(Debug, PartialEq, Eq)]
enum FirstPart {
    /// Not complete yet.
    Incomplete,
    /// The `csrf` field, with its value.
    Token(String),
    /// Complete (or unreadable), and not the `csrf` field.
    Other,
}

fn parse_first_part(bytes: &[u8], boundary: &str) -> FirstPart {
    let opening = format!("--{boundary}\r\n");
    let closing = format!("\r\n--{boundary}");
    if bytes.len() < opening.len() {
        return FirstPart::Incomplete;
    }
    let Some(rest) = bytes.strip_prefix(opening.as_bytes()) else {
        return FirstPart::Other;
    };
    let Some(end) = find(rest, closing.as_bytes()) else {
        return FirstPart::Incomplete;
    };
    let part = &rest[..end];
    let Some(split) = find(part, b"\r\n\r\n") else {
        return FirstPart::Other;
    };
    let (headers, value) = (&part[..split], &part[split + 4..]);
    let headers = String::from_utf8_lossy(headers).to_ascii_lowercase();
    let named = headers.lines().any(|line| {
        line.starts_with("content-disposition:")
            && line.contains("form-data")
            && line.split(';').any(|p| p.trim() == "name=\"csrf\"")
            && !line.contains("filename")
    });
    if named {
        FirstPart::Token(String::from_utf8_lossy(value).into_owned())
    } else {
        FirstPart::Other
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_the_cookie_and_its_kind() {
        assert_eq!(csrf_for("a").len(), 64);
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_ne!(pending_csrf("a"), csrf_for("a"));
        assert_ne!(signin_csrf("a"), pending_csrf("a"));
        assert!(same_token(&csrf_for("a"), &csrf_for("a")));
        assert!(!same_token(&csrf_for("a"), &csrf_for("a")[..63]));
    }

    #[test]
    fn form_field_is_found_only_by_its_exact_name() {
        assert_eq!(form_field(b"a=1&csrf=ab%63&b=2").as_deref(), Some("abc"));
        assert_eq!(form_field(b"xcsrf=1&csrfx=2"), None);
        assert_eq!(form_field(b""), None);
    }

    #[test]
    fn multipart_first_part_must_be_the_csrf_field() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n...";
        assert_eq!(parse_first_part(body, "XyZ"), FirstPart::Token("tok".to_owned()));
        assert_eq!(parse_first_part(&body[..30], "XyZ"), FirstPart::Incomplete);
        let file_first =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"; filename=\"csrf\"\r\n\r\ntok\r\n--XyZ";
        assert_eq!(parse_first_part(file_first, "XyZ"), FirstPart::Other);
        assert_eq!(
            parse_first_part(b"garbage that is long enough", "XyZ"),
            FirstPart::Other
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary("multipart/form-data; Boundary=----WebKitFormBoundaryAbC").as_deref(),
            Some("----WebKitFormBoundaryAbC"),
            "the boundary keeps its case"
        );
    }

    #[tokio::test]
    async fn a_multipart_body_is_checked_by_its_first_field_and_streamed_on_whole() {
        use axum::Router;
        use axum::routing::post;
        use tower::ServiceExt as _;

        let router = Router::new()
            .route("/upload", post(|body: Bytes| async move { body.len().to_string() }))
            .route_layer(axum::middleware::from_fn(|request: Request, next: Next| {
                guard(Csrf::Session, request, next)
            }));
        let file = "x".repeat(100_000);
        let send = |first: &str, second: &str, piece: usize| {
            let body = format!(
                "--Bq\r\nContent-Disposition: form-data; name=\"{first}\"\r\n\r\n{}\r\n--Bq\r\nContent-Disposition: form-data; name=\"{second}\"; filename=\"a\"\r\n\r\n{file}\r\n--Bq--\r\n",
                csrf_for("tok")
            );
            let length = body.len();
            // In pieces of `piece` bytes, as a network would deliver it.
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .into_bytes()
                .chunks(piece)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let request = Request::post("/upload")
                .header(header::COOKIE, "sealpost_session=tok")
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=Bq")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap();
            let router = router.clone();
            async move { (router.oneshot(request).await.unwrap(), length) }
        };
        // Small pieces, and one piece larger than the part the guard reads.
        for piece in [1000, 1 << 20] {
            let (response, length) = send("csrf", "file", piece).await;
            assert_eq!(response.status(), StatusCode::OK, "pieces of {piece}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            assert_eq!(body, length.to_string(), "the whole body reaches the handler");
        }
        let (response, _) = send("file", "csrf", 1000).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "the token must come first");
    }
}
