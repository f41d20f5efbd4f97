//! A harness that sends arbitrary form bodies and query strings to the
//! portal's real router (no network), for the `portal_forms` fuzz target
//! (`fuzz/`) and the bounded random-input test below: every form and query
//! struct the handlers deserialize, behind the real extractors, sessions and
//! CSRF checks, against a real store with a practice, a signed-in doctor and a
//! sealed message. A panic or a `5xx` answer is a finding: bad input must get
//! a clear `4xx` (or the page again) and change nothing it should not.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use percent_encoding::{AsciiSet, CONTROLS, percent_encode};
use store::accounts::Role;
use tower::ServiceExt as _;

use crate::csrf::csrf_for;
use crate::session::{COOKIE, SIGNIN_COOKIE};

/// The pre-session (sign-in) token the harness presents.
const PRE_SESSION: &str = "fuzz-pre-session-token";
const PASSWORD: &str = "Sunny-Orchard-31";

/// Bytes of a query string kept as they are (so `&`, `=`, `+` and `%` keep
/// their meaning); the rest are percent-encoded into a valid URI.
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The routes that take a form or a query, with `{id}` the sealed message,
/// `{user}` the staff member and `{token}` an unknown link token. Signing out
/// is left out: it would end the harness's session.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/signin"),
    ("GET", "/signin"),
    ("POST", "/signin/verify"),
    ("GET", "/signin/verify"),
    ("POST", "/signin/verify/send"),
    ("POST", "/signin/verify/app"),
    ("POST", "/account/two-step"),
    ("POST", "/password/{token}/code"),
    ("GET", "/password/{token}"),
    ("POST", "/password/{token}"),
    ("GET", "/practice/users"),
    ("GET", "/practice/users/{user}"),
    ("POST", "/practice/users/{user}"),
    ("POST", "/forgot"),
    ("POST", "/account/password"),
    ("GET", "/account/passkeys"),
    ("POST", "/account/passkeys/register/start"),
    ("POST", "/account/passkeys/register/finish"),
    ("POST", "/account/passkeys/1/remove"),
    ("POST", "/signin/passkey/start"),
    ("POST", "/signin/passkey/finish"),
    ("POST", "/account/app-passwords"),
    ("POST", "/account/app-passwords/1/revoke"),
    ("GET", "/inbox"),
    ("GET", "/sent"),
    ("GET", "/m/{id}"),
    ("POST", "/m/{id}"),
    ("GET", "/m/{id}/a/0"),
    ("GET", "/m/{id}/roles"),
    ("POST", "/m/{id}/roles"),
    ("GET", "/api/contacts"),
    ("POST", "/api/addin-key"),
    ("GET", "/saml/start"),
    ("POST", "/saml/fuzz.example/acs"),
];

const MESSAGE: &[u8] = b"From: Dr Ada <ada@fuzz.example>\r\nTo: pat@patient.example\r\nSubject: results\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello.\r\n--b\r\nContent-Type: application/pdf; name=r.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

/// A store with a practice and a sealed message, the portal over it, and a
/// signed-in doctor's session.
pub struct Harness {
    router: Router,
    session: String,
    message: String,
    staff: String,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl Harness {
    /// Sets everything up in `dir` (which must outlive the harness).
    ///
    /// # Panics
    /// If the store cannot be opened or filled: the harness is for tests.
    pub async fn new(dir: &Path) -> Self {
        let config = store::StoreConfig {
            database_url: format!("sqlite://{}/db.sqlite", dir.display()),
            blobs_url: format!("file://{}/blobs", dir.display()),
            data_dir: dir.join("data"),
            policy: store::Policy {
                two_step: store::accounts::two_step::TwoStepPolicy {
                    required: false,
                    ..Default::default()
                },
                ..store::Policy::default()
            },
        };
        let store = store::Store::open(config, Arc::new(store::SystemClock))
            .await
            .expect("store opens");
        store
            .accounts()
            .add_practice("Fuzz Dental", "fuzz.example")
            .await
            .expect("practice");
        let (ada, token) = store
            .accounts()
            .add_practice_user("ada@fuzz.example", "Ada", Role::Doctor, "fuzz.example", true, true)
            .await
            .expect("doctor");
        let (staff, _) = store
            .accounts()
            .add_practice_user("bob@fuzz.example", "Bob", Role::Staff, "fuzz.example", false, false)
            .await
            .expect("staff");
        let mut writer = store.queue().spool_writer().await.expect("spool");
        writer.write(MESSAGE).await.expect("spool write");
        let spooled = writer.finish().await.expect("spooled");
        store
            .queue()
            .accept_secure(
                &spooled,
                "ada@fuzz.example",
                &["pat@patient.example".to_owned()],
                ada.id,
            )
            .await
            .expect("accepted");
        store.mail().seal_spooled(&spooled.id).await.expect("sealed");
        let router = crate::router(
            store,
            crate::PortalConfig {
                public_url: "https://portal.fuzz.example".into(),
                spooled: std::sync::Arc::default(),
            },
        );
        let body = format!("password={PASSWORD}&confirm={PASSWORD}");
        let request = Request::post(format!("/password/{token}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let session = response
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.strip_prefix(&format!("{COOKIE}=")))
            .expect("setting the password signs in")
            .to_owned();
        Self {
            router,
            session,
            message: spooled.id.to_string(),
            staff: staff.id.to_string(),
        }
    }

    /// Sends one request built from `input`: byte 0 picks the route, byte 1
    /// what comes with it (bit 0: the session cookie; bit 1: the session's
    /// CSRF token first in the body; bit 2: the sign-in pre-session's; bit 3:
    /// a JSON content type), then the query string up to the first newline,
    /// then the body. Returns the status.
    ///
    /// # Panics
    /// If the answer is a `5xx`: bad input must be refused clearly.
    pub async fn run(&self, input: &[u8]) -> StatusCode {
        let (route, flags, rest) = match input {
            [route, flags, rest @ ..] => (*route, *flags, rest),
            [route] => (*route, 0, &[][..]),
            [] => (0, 0, &[][..]),
        };
        let (method, path) = ROUTES[usize::from(route) % ROUTES.len()];
        let (query, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let path = path
            .replace("{id}", &self.message)
            .replace("{user}", &self.staff)
            .replace("{token}", "fuzz-unknown-token");
        let mut uri = path.clone();
        if !query.is_empty() {
            uri.push('?');
            uri.extend(percent_encode(query, QUERY));
        }
        let mut form = Vec::new();
        if flags & 2 != 0 {
            form.extend_from_slice(format!("csrf={}&", csrf_for(&self.session)).as_bytes());
        }
        if flags & 4 != 0 {
            form.extend_from_slice(format!("csrf={}&", csrf_for(PRE_SESSION)).as_bytes());
        }
        form.extend_from_slice(body);
        let cookies = if flags & 1 != 0 {
            format!("{SIGNIN_COOKIE}={PRE_SESSION}; {COOKIE}={}", self.session)
        } else {
            format!("{SIGNIN_COOKIE}={PRE_SESSION}")
        };
        let content_type = if flags & 8 != 0 {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::COOKIE, cookies)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ORIGIN, "https://portal.fuzz.example")
            .body(Body::from(form))
            .expect("a valid request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        assert!(!status.is_server_error(), "{method} {path}: {status}");
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Form and query material for the random inputs.
    const PIECES: &[&[u8]] = &[
        b"email=ada%40fuzz.example",
        b"&password=Sunny-Orchard-31",
        b"&confirm=x",
        b"&next=/inbox",
        b"&next=//evil.example",
        b"&label=phone",
        b"&action=remove&two_step=on",
        b"&role=patient&pat%40patient.example=doctor_other_practice",
        b"&full_name=Pat&phone=555",
        b"&code=123456&channel=sms",
        b"&SAMLResponse=PHNhbWxwOlJlc3BvbnNl",
        b"invite=",
        b"q=ad",
        b"%",
        b"%zz&&==",
        b"+",
        b"\n",
        b"{\"credential\":{}}",
    ];

    /// A small deterministic generator (xorshift), so a failure reproduces.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// The harness's session is signed in (the inbox answers 200, not a
    /// redirect to sign-in), then 400 random requests over every route: none
    /// answers `5xx`, none panics.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_form_input_never_breaks_the_portal() {
        let dir = tempfile::tempdir().unwrap();
        let harness = Harness::new(dir.path()).await;
        let inbox = ROUTES.iter().position(|r| *r == ("GET", "/inbox")).unwrap();
        let inbox = u8::try_from(inbox).unwrap();
        assert_eq!(harness.run(&[inbox, 1]).await, StatusCode::OK);
        assert_eq!(harness.run(&[inbox, 0]).await, StatusCode::SEE_OTHER);
        let mut state = 0x5EA1_F0A4_u64;
        for _ in 0..400 {
            let mut input = vec![
                u8::try_from(next(&mut state) & 0xff).unwrap(),
                u8::try_from(next(&mut state) & 0x0f).unwrap(),
            ];
            for _ in 0..(next(&mut state) % 6) {
                let piece = PIECES[usize::try_from(next(&mut state) % PIECES.len() as u64).unwrap()];
                input.extend_from_slice(piece);
                for _ in 0..(next(&mut state) % 2) {
                    input.push(u8::try_from(next(&mut state) & 0xff).unwrap());
                }
            }
            harness.run(&input).await;
        }
    }
}
