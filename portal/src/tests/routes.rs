//! The route table's guarantee, walked from the router's own table
//! (`crate::all_routes()`): every state-changing route refuses a request that
//! carries a signed-in session cookie but not its CSRF token, and the routes
//! that are exempt are exactly the ones listed here, each with its reason.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use tower::ServiceExt as _;

use super::{Env, location, send_message, text};
use crate::csrf::{Csrf, changes_state, csrf_for};
use crate::routes::Access;
use crate::session::Viewer;

/// The state-changing routes no session cookie authenticates, and why that is
/// safe. Adding one means adding it here, with its reason.
const EXEMPT: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/billing/stripe/webhook",
        "no cookie; believed only with a valid Stripe-Signature (HMAC, tolerance, event id once)",
    ),
    (
        "POST",
        "/email/{token}",
        "the email confirmation token in the path, sent only to the new address, is the authority",
    ),
    (
        "POST",
        "/link/renew",
        "the old link's token in the form is the authority; it only re-sends to the same address, rate-limited",
    ),
    (
        "POST",
        "/signin",
        "opens a session; its own login-CSRF token, bound to __Host-sealpost_signin",
    ),
    (
        "POST",
        "/password/{token}",
        "the set-password token in the path is the authority",
    ),
    (
        "POST",
        "/password/{token}/code",
        "the set-password token in the path is the authority",
    ),
    (
        "POST",
        "/forgot",
        "needs no authority: the same answer for every address",
    ),
    (
        "POST",
        "/signin/passkey/start",
        "opens a session; SameSite=Strict ceremony cookie",
    ),
    (
        "POST",
        "/signin/passkey/finish",
        "opens a session; the passkey signs origin and challenge",
    ),
    (
        "POST",
        "/m/{id}/register",
        "the invitation token it carries is the authority",
    ),
    (
        "POST",
        "/saml/{domain}/acs",
        "the IdP's signed answer to this browser's own request",
    ),
    ("POST", "/api/addin-key", "Authorization: Basic only, never a cookie"),
    (
        "POST",
        "/api/uploads",
        "Secure Drop API: Authorization: Basic only, never a cookie",
    ),
    (
        "PATCH",
        "/api/uploads/{id}",
        "Secure Drop API: Authorization: Basic only, never a cookie",
    ),
    (
        "DELETE",
        "/api/uploads/{id}",
        "Secure Drop API: Authorization: Basic only, never a cookie",
    ),
    (
        "POST",
        "/api/drops",
        "Secure Drop API: Authorization: Basic only, never a cookie",
    ),
];

/// A concrete path for a route template.
fn concrete(path: &str, message: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{id}" if path.starts_with("/m/") => message.to_owned(),
            s if s.starts_with('{') => "1".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_state_changing_route_needs_its_csrf_token() {
    let env = Env::new().await;
    let (session, message) = send_message(&env).await;
    let table = crate::all_routes().table();

    let exempt: BTreeSet<(String, &str)> = table
        .iter()
        .filter(|r| changes_state(&r.method) && matches!(r.csrf, Csrf::Exempt(_)))
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let listed: BTreeSet<(String, &str)> = EXEMPT.iter().map(|(m, p, _)| ((*m).to_owned(), *p)).collect();
    assert_eq!(exempt, listed, "exempt routes must be listed in EXEMPT with a reason");

    // Guards by group: the account pages need a session, Manage Users a User Manager.
    for route in &table {
        if route.path.starts_with("/account/") || ["/inbox", "/sent", "/compose"].contains(&route.path) {
            assert_eq!(route.access, Access::SignedIn, "{}", route.path);
        }
        if route.path.starts_with("/practice/") {
            assert_eq!(route.access, Access::UserManager, "{}", route.path);
        }
    }

    let guarded: Vec<_> = table
        .iter()
        .filter(|r| changes_state(&r.method) && !matches!(r.csrf, Csrf::Exempt(_)))
        .collect();
    for known in [
        "/signout",
        "/signin/verify",
        "/account/password",
        "/m/{id}/roles",
        "/practice/users/{id}",
        "/compose",
        "/drop",
    ] {
        assert!(guarded.iter().any(|r| r.path == known), "{known} is guarded");
    }
    for route in guarded {
        let uri = concrete(route.path, &message);
        let cookie = match route.csrf {
            Csrf::PendingSignIn => format!("{session}; sealpost_pending=a-pending-sign-in"),
            _ => session.clone(),
        };
        let attempts = [
            ("application/x-www-form-urlencoded", "action=edit".to_owned(), None),
            (
                "application/x-www-form-urlencoded",
                "csrf=forged&action=edit".to_owned(),
                None,
            ),
            (
                "application/x-www-form-urlencoded",
                format!("csrf={}", csrf_for("another-session")),
                None,
            ),
            ("application/json", r#"{"csrf":"forged"}"#.to_owned(), None),
            (
                "multipart/form-data; boundary=b",
                "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nforged\r\n--b--\r\n".to_owned(),
                None,
            ),
            ("text/plain", String::new(), Some("forged")),
        ];
        for (kind, body, header_token) in attempts {
            let mut request = Request::builder()
                .method(route.method.clone())
                .uri(&uri)
                .header(header::COOKIE, &cookie)
                .header(header::CONTENT_TYPE, kind);
            if let Some(token) = header_token {
                request = request.header(crate::csrf::HEADER, token);
            }
            let response = env.send(request.body(Body::from(body.clone())).unwrap()).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{} {} ({kind}, {body:?}) must be refused without its token",
                route.method,
                route.path
            );
            assert!(text(response).await.contains("Not allowed"));
        }
    }
    // Nothing was done: the session still works, and the roles are still open.
    assert_eq!(env.get("/inbox", Some(&session)).await.status(), StatusCode::OK);
    let page = text(env.get(&format!("/m/{message}/roles"), Some(&session)).await).await;
    assert!(page.contains("role_"));
}

#[tokio::test]
async fn the_right_token_in_the_header_passes() {
    let env = Env::new().await;
    let (session, _) = send_message(&env).await;
    let token = csrf_for(session.split_once('=').unwrap().1);
    let request = Request::post("/signout")
        .header(header::COOKIE, &session)
        .header(crate::csrf::HEADER, &token)
        .body(Body::empty())
        .unwrap();
    let response = env.send(request).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/signin");
    assert_eq!(
        location(&env.get("/inbox", Some(&session)).await),
        "/signin?next=/inbox"
    );
}

/// A handler that takes a [`Viewer`] on a POST route someone added outside the
/// table's groups: the viewer is refused, as no guard checked the token.
#[tokio::test]
async fn a_post_route_outside_the_guards_gets_no_viewer() {
    let env = Env::new().await;
    let (session, _) = send_message(&env).await;
    let state = crate::AppState {
        store: Arc::clone(&env.store),
        config: Arc::new(crate::PortalConfig {
            public_url: "https://portal.test".into(),
            spooled: std::sync::Arc::default(),
        }),
        webauthn: None,
    };
    let router: Router = Router::new()
        .route("/unguarded", post(|viewer: Viewer| async move { viewer.user.email }))
        .with_state(state);
    let token = csrf_for(session.split_once('=').unwrap().1);
    let request = Request::post("/unguarded")
        .header(header::COOKIE, &session)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={token}")))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
