//! Router tests against a real store in a temp dir, driven with `oneshot`: the
//! invitation → registration → set password → read → download flow, the
//! sender's views, sign-in/out, CSRF and the security headers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use store::accounts::Role;
use store::jobs::JobKind;
use store::{Store, StoreConfig, SystemClock};
use tower::ServiceExt as _;

use crate::csrf::csrf_for;

const MESSAGE: &str = "From: Dr Alice <alice@clinic.example>\r
To: pat@example.com, doc@other.example, new@unknown.example\r
Subject: Your results\r
X-Sealpost-Secure: 1\r
X-Sealpost-Role: pat@example.com patient\r
X-Sealpost-Role: doc@other.example doctor_other_practice\r
X-Sealpost-Notice: Your lab results are ready\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Hello <b>Pat</b></p><script>alert(1)</script><img src=x onerror=alert(2)>\r
--b1\r
Content-Type: application/pdf\r
Content-Disposition: attachment; filename*=utf-8''R%C3%A9sultat%20final.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--b1--\r
";

/// A sign-in pre-session cookie, as `GET /signin` sets one.
const SIGNIN_COOKIE: &str = "__Host-sealpost_signin=pre-session-token";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    router: Router,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
            blobs_url: format!("file://{}", dir.path().join("blobs").display()),
            data_dir: dir.path().join("data"),
            // Two-step verification has its own end-to-end tests (tests/e2e/two_step.rs).
            policy: store::Policy {
                two_step: store::accounts::two_step::TwoStepPolicy {
                    required: false,
                    ..Default::default()
                },
                ..store::Policy::default()
            },
        };
        let store = Store::open(config, Arc::new(SystemClock)).await.unwrap();
        let router = crate::router(
            store.clone(),
            crate::PortalConfig {
                public_url: "https://portal.test".into(),
                spooled: std::sync::Arc::default(),
            },
        );
        Self {
            _dir: dir,
            store,
            router,
        }
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Response<Body> {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, uri: &str, form: &[(&str, &str)], cookie: Option<&str>) -> Response<Body> {
        let body = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, NON_ALPHANUMERIC),
                    utf8_percent_encode(v, NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// The link of the first pending mail job of `kind` for `email`; marks all jobs done.
    async fn link(&self, kind: JobKind, email: &str) -> String {
        let mut found = None;
        for job in self.store.queue().pending_jobs(100).await.unwrap() {
            let user = self.store.accounts().user(job.user_id).await.unwrap();
            if job.kind == kind && user.email == email && found.is_none() {
                found = Some(self.store.queue().job_context(&job).await.unwrap().link);
            }
            self.store.queue().skip_job(job.id).await.unwrap();
        }
        found.unwrap_or_else(|| panic!("no {kind:?} job for {email}"))
    }
}

async fn text(response: Response<Body>) -> String {
    String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

fn location(response: &Response<Body>) -> &str {
    response.headers().get(header::LOCATION).unwrap().to_str().unwrap()
}

fn session_cookie(response: &Response<Body>) -> String {
    let value = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    assert!(
        value.contains("Secure")
            && value.contains("HttpOnly")
            && value.contains("SameSite=Lax")
            && value.contains("Path=/")
    );
    value.split(';').next().unwrap().to_owned()
}

/// Where the registration form behind an invitation link (`/m/{id}?invite=T`) posts.
fn register_url(invite: &str) -> String {
    invite.replacen("?invite=", "/register?invite=", 1)
}

fn token_of(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

/// A practice, a paid sender with a password, and one sealed message; returns
/// the sender's session cookie and the message id.
async fn send_message(env: &Env) -> (String, String) {
    env.store
        .accounts()
        .add_practice("Bright Smiles Dental", "clinic.example")
        .await
        .unwrap();
    let (alice, token) = env
        .store
        .accounts()
        .add_practice_user(
            "alice@clinic.example",
            "Dr Alice",
            Role::Doctor,
            "clinic.example",
            true,
            false,
        )
        .await
        .unwrap();
    let response = env
        .post(
            &format!("/password/{token}"),
            &[("password", "Sunny-Orchard-31"), ("confirm", "Sunny-Orchard-31")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/inbox");
    let cookie = session_cookie(&response);

    let mut writer = env.store.queue().spool_writer().await.unwrap();
    writer.write(MESSAGE.as_bytes()).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    let rcpt = ["pat@example.com", "doc@other.example", "new@unknown.example"].map(String::from);
    env.store
        .queue()
        .accept_secure(&spooled, "alice@clinic.example", &rcpt, alice.id)
        .await
        .unwrap();
    env.store.mail().seal_spooled(&spooled.id).await.unwrap();
    (cookie, spooled.id.to_string())
}

#[tokio::test]
async fn patient_registers_sets_password_reads_and_downloads() {
    let env = Env::new().await;
    let (_, id) = send_message(&env).await;
    let invite = env.link(JobKind::Notify, "pat@example.com").await;
    assert!(invite.starts_with(&format!("/m/{id}?invite=")));

    let response = env.get(&format!("/m/{id}"), None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/signin?next=/m/{id}"));
    assert_eq!(
        env.get(&format!("/m/{id}?invite=nonsense"), None).await.status(),
        StatusCode::NOT_FOUND
    );

    let response = env.get(&invite, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = text(response).await;
    assert!(
        page.contains("Bright Smiles Dental")
            && page.contains("pat@example.com")
            && page.contains(r#"for="full_name""#)
    );
    assert!(!page.contains("name=\"specialty\"") && !page.contains("name=\"practice_name\""));

    let response = env
        .post(
            &register_url(&invite),
            &[("full_name", " "), ("phone", "201 555 0123")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = text(response).await;
    assert!(page.contains("Please enter your full name.") && page.contains("201 555 0123"));

    let response = env
        .post(
            &register_url(&invite),
            &[("full_name", "Pat Smith"), ("phone", "201 555 0123")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("Check your email"));
    assert_eq!(env.get(&invite, None).await.status(), StatusCode::GONE);

    let password_link = env.link(JobKind::SetPassword, "pat@example.com").await;
    assert_eq!(env.get(&password_link, None).await.status(), StatusCode::OK);
    let response = env
        .post(
            &password_link,
            &[("password", "Pat-Secret-123"), ("confirm", "Pat-Secret-124")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = env
        .post(&password_link, &[("password", "short"), ("confirm", "short")], None)
        .await;
    assert!(text(response).await.contains("at least 8 characters"));
    let response = env
        .post(
            &password_link,
            &[("password", "Pat-Secret-123"), ("confirm", "Pat-Secret-123")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/m/{id}"));
    let cookie = session_cookie(&response);
    assert_eq!(env.get(&password_link, None).await.status(), StatusCode::GONE);

    let response = env.get(&format!("/m/{id}"), Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(
        response.headers()[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    let page = text(response).await;
    assert!(page.contains("Your results") && page.contains("Your lab results are ready") && page.contains("Dr Alice"));
    assert!(page.contains("Hello <b>Pat</b>"));
    // The only scripts are the portal's own files (the layout's time-zone script).
    assert!(
        page.matches("<script").count() == page.matches("<script src=\"/static/").count() && !page.contains("onerror")
    );
    let attachments = &page[page.find("Attachments").expect("an attachment list")..];
    assert!(
        attachments.contains(&format!("/m/{id}/a/0")) && attachments.contains("Résultat final.pdf"),
        "{attachments}"
    );

    let response = env.get(&format!("/m/{id}/a/0"), Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment;") && disposition.ends_with("filename*=UTF-8''R%C3%A9sultat%20final.pdf")
    );
    assert_eq!(text(response).await, "%PDF-1.4\n");
    assert_eq!(headers[header::CONTENT_LENGTH], "9");
    assert_eq!(
        env.get(&format!("/m/{id}/a/7"), Some(&cookie)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&format!("/m/{id}/a/x"), Some(&cookie)).await.status(),
        StatusCode::NOT_FOUND
    );

    let page = text(env.get("/inbox", Some(&cookie)).await).await;
    assert!(
        page.contains("Your results") && page.contains(&format!("href=\"/m/{id}\"")) && page.contains("1 attachment")
    );
    // Everyone has a Sent list: a patient's replies from the portal are kept there.
    assert!(page.contains(r#"href="/sent""#) && page.contains(r#"href="/compose""#));
    assert_eq!(
        env.get("/m/0123456789abcdef0123456789abcdef", Some(&cookie))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get("/m/not-an-id", Some(&cookie)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn other_practice_doctor_registers_with_specialty_and_practice() {
    let env = Env::new().await;
    let (_, id) = send_message(&env).await;
    let invite = env.link(JobKind::Notify, "doc@other.example").await;
    let page = text(env.get(&invite, None).await).await;
    assert!(page.contains(r#"name="specialty""#) && page.contains(r#"name="practice_name""#));

    let response = env
        .post(
            &register_url(&invite),
            &[
                ("full_name", "Dr Bob"),
                ("phone", "201 555 0111"),
                ("specialty", "Endodontics"),
                ("step", "specialty"),
            ],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = text(response).await;
    assert!(page.contains(r#"value="Root canal treatment" checked"#) && page.contains("Dr Bob"));

    let form = [
        ("full_name", "Dr Bob"),
        ("phone", "201 555 0111"),
        ("specialty", "Endodontics"),
        ("procedures", "Root canal treatment"),
        ("procedures", "Apicoectomy"),
        ("practice_name", "Other Dental"),
        ("practice_website", "www.other.example"),
        ("invite", "ignored-when-the-query-has-one"),
    ];
    let response = env
        .post(
            &register_url(&invite),
            &[
                ("specialty", "Wizardry"),
                ("full_name", "Dr Bob"),
                ("phone", "201 555 0111"),
            ],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("Please enter the name of your practice."));
    let response = env.post(&register_url(&invite), &form, None).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", text(response).await);
    let user = env
        .store
        .accounts()
        .user_by_email("doc@other.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.profile.specialty.as_deref(), Some("Endodontics"));
    assert_eq!(user.profile.procedures, ["Root canal treatment", "Apicoectomy"]);
    assert_eq!(user.profile.practice_name.as_deref(), Some("Other Dental"));
    let _ = id;
}

#[tokio::test]
async fn sender_sees_status_chooses_roles_and_signs_out() {
    let env = Env::new().await;
    let (cookie, id) = send_message(&env).await;
    let page = text(env.get(&format!("/m/{id}"), Some(&cookie)).await).await;
    assert!(
        page.contains("pat@example.com") && page.contains("Not read yet") && page.contains(&format!("/m/{id}/roles"))
    );

    let page = text(env.get(&format!("/m/{id}/roles"), Some(&cookie)).await).await;
    let new_user = env
        .store
        .accounts()
        .user_by_email("new@unknown.example")
        .await
        .unwrap()
        .unwrap();
    let field = format!("role_{}", new_user.id);
    assert!(page.contains(&format!(r#"name="{field}" value="patient""#)));

    let response = env
        .post(
            &format!("/m/{id}/roles"),
            &[(&field, "patient"), ("csrf", "wrong")],
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let csrf = csrf_for(token_of(&cookie));
    let response = env
        .post(
            &format!("/m/{id}/roles"),
            &[(&field, "patient"), ("csrf", &csrf)],
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/m/{id}"));
    let sender = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let message = store::ids::MessageId::parse(&id).unwrap();
    assert!(
        env.store
            .mail()
            .pending_roles(&sender, &message)
            .await
            .unwrap()
            .is_empty()
    );

    let page = text(env.get("/sent", Some(&cookie)).await).await;
    assert!(page.contains("Your results"));

    let response = env.post("/signout", &[("csrf", "nope")], Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = env.post("/signout", &[("csrf", &csrf)], Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let response = env.get("/inbox", Some(&cookie)).await;
    assert_eq!(location(&response), "/signin?next=/inbox");

    // Login CSRF: the sign-in form's token is bound to a pre-session cookie;
    // without both, nothing is checked and no session opens.
    let signin_csrf = crate::csrf::signin_csrf("pre-session-token");
    let response = env
        .post(
            "/signin",
            &[
                ("email", "alice@clinic.example"),
                ("password", "Sunny-Orchard-31"),
                ("next", "/sent"),
            ],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "no pre-session cookie");
    assert!(
        !response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("sealpost_session=")
    );
    let response = env
        .post(
            "/signin",
            &[
                ("email", "alice@clinic.example"),
                ("password", "Sunny-Orchard-31"),
                ("csrf", &crate::csrf::signin_csrf("another-token")),
            ],
            Some(SIGNIN_COOKIE),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a token for another pre-session"
    );
    let response = env
        .post(
            "/signin",
            &[
                ("email", "alice@clinic.example"),
                ("password", "wrong one"),
                ("next", "/sent"),
                ("csrf", &signin_csrf),
            ],
            Some(SIGNIN_COOKIE),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(text(response).await.contains("Wrong email address or password."));
    let response = env
        .post(
            "/signin",
            &[
                ("email", "alice@clinic.example"),
                ("password", "Sunny-Orchard-31"),
                ("next", "//evil.com"),
                ("csrf", &signin_csrf),
            ],
            Some(SIGNIN_COOKIE),
        )
        .await;
    assert_eq!(location(&response), "/inbox");
    let response = env
        .post(
            "/signin",
            &[
                ("email", "Alice@Clinic.example"),
                ("password", "Sunny-Orchard-31"),
                ("next", &format!("/m/{id}")),
                ("csrf", &signin_csrf),
            ],
            Some(SIGNIN_COOKIE),
        )
        .await;
    assert_eq!(location(&response), format!("/m/{id}"));
    let cookie = session_cookie(&response);
    assert_eq!(location(&env.get("/", Some(&cookie)).await), "/inbox");
    assert_eq!(location(&env.get("/signin?next=/sent", Some(&cookie)).await), "/sent");
}

#[tokio::test]
async fn public_pages_and_headers() {
    let env = Env::new().await;
    let response = env.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(text(response).await, "ok");
    assert_eq!(location(&env.get("/", None).await), "/signin");
    let response = env.get("/static/app.css", None).await;
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let response = env.get("/signin?next=https://evil.com", None).await;
    let page = text(response).await;
    assert!(
        page.contains(r#"<label for="email">"#) && page.contains(r#"name="viewport""#) && !page.contains("evil.com")
    );
    assert_eq!(env.get("/nowhere", None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(env.get("/password/bogus", None).await.status(), StatusCode::NOT_FOUND);
}

mod lifecycle;
mod lists;
mod practice_delivery;
mod profile;
mod routes;
mod time_zones;
/// Found by the `portal_forms` fuzz target: wrong current passwords on the
/// change-password form lock sign-in, and the next try answered `500`. It
/// answers `429` with the page and says why.
#[tokio::test]
async fn change_password_after_too_many_wrong_current_passwords_is_429_not_500() {
    let env = Env::new().await;
    let (cookie, _) = send_message(&env).await;
    let csrf = csrf_for(token_of(&cookie));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let form = [
            ("csrf", csrf.as_str()),
            ("current", "not-the-password"),
            ("password", "Brand-New-Meadow-42"),
            ("confirm", "Brand-New-Meadow-42"),
        ];
        let response = env.post("/account/password", &form, Some(&cookie)).await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(text(response).await.contains("locked"));
        }
    }
    assert!(!statuses.iter().any(StatusCode::is_server_error), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    // Sign-in for the address is locked now (as after wrong sign-ins).
    assert!(
        env.store
            .auth()
            .check_password("alice@clinic.example", "Sunny-Orchard-31", "test")
            .await
            .is_err_and(|e| matches!(e, store::Error::Locked)),
        "locked"
    );
}
