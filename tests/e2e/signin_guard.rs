//! Guessing passwords does not pay: five wrong ones lock the account until a
//! password reset, and one address that fails too often is throttled on every
//! door (portal and SMTP AUTH). A session id planted before sign-in (session
//! fixation) is never the one signed in.

use lettre::AsyncTransport;
use lettre::address::Envelope;

use super::harness::{Instance, browser, link_in, set_password, submission_client};

async fn sign_in(http: &reqwest::Client, instance: &Instance, email: &str, password: &str) -> (u16, String) {
    let reply = super::harness::post_signin(http, instance, email, password, "/inbox").await;
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account_until_a_reset() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let http = browser();
    for attempt in 1..=5 {
        let (status, _) = sign_in(&http, &instance, "ada@smiles.example", &format!("guess-{attempt}")).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, page) = sign_in(&http, &instance, "ada@smiles.example", "Doctor-Pass-77").await;
    assert_eq!(status, 403, "the right password no longer opens a locked account");
    assert!(page.contains("locked"), "the page says why");

    // "Forgot your password?" sends a link; an unknown address gets the same answer.
    let unknown = http
        .post(instance.url("/forgot"))
        .form(&[("email", "nobody@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    let unknown_page = unknown.text().await.unwrap();
    let reply = http
        .post(instance.url("/forgot"))
        .form(&[("email", "ada@smiles.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.text().await.unwrap(),
        unknown_page,
        "no difference between known and unknown addresses"
    );
    let mail = instance.wait_for_mail("ada@smiles.example", 1).await;
    let link = link_in(&mail, &format!("{}/password/", instance.config.public_url));
    assert!(instance.outbox_for("nobody@example.org").is_empty());
    let reset = http
        .post(instance.reachable(&link))
        .form(&[("password", "New-Doctor-Pass-88"), ("confirm", "New-Doctor-Pass-88")])
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);

    let fresh = browser();
    assert_eq!(
        sign_in(&fresh, &instance, "ada@smiles.example", "Doctor-Pass-77")
            .await
            .0,
        401,
        "the old password is gone"
    );
    assert_eq!(
        sign_in(&fresh, &instance, "ada@smiles.example", "New-Doctor-Pass-88")
            .await
            .0,
        200,
        "unlocked by the reset"
    );
    let audit = instance.store().audit_log().recent_audit(60).await.unwrap();
    for action in [
        "account.lock",
        "signin.locked",
        "password.reset_request",
        "password.set",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_failing_too_often_is_throttled_on_every_door() {
    let instance = Instance::start_with(|_| {}).await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let http = browser();
    let limit = instance.store().policy().client_failure_limit;
    for attempt in 0..limit {
        let (status, _) = sign_in(&http, &instance, &format!("guess{attempt}@example.org"), "password1").await;
        assert_eq!(status, 401);
    }
    let (status, page) = sign_in(&http, &instance, "ada@smiles.example", "Doctor-Pass-77").await;
    assert_eq!(status, 429, "throttled even with the right password");
    assert!(page.contains("wait"));

    // The submission port shares the budget: AUTH from the same address is refused.
    let client = submission_client(&instance, "ada@smiles.example", "Doctor-Pass-77");
    let envelope = Envelope::new(
        Some("ada@smiles.example".parse().unwrap()),
        vec!["pat@example.org".parse().unwrap()],
    )
    .unwrap();
    let error = client
        .send_raw(&envelope, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Too many failed"), "{error}");

    // Fifteen minutes later the address may try again.
    instance.clock.advance(15 * 60 + 1);
    assert_eq!(
        sign_in(&browser(), &instance, "ada@smiles.example", "Doctor-Pass-77")
            .await
            .0,
        200
    );
}

/// The `sealpost_session` value a cookie jar holds for the portal.
fn session_cookie(jar: &reqwest::cookie::Jar, url: &reqwest::Url) -> Option<String> {
    use reqwest::cookie::CookieStore as _;
    let header = jar.cookies(url)?;
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|pair| pair.strip_prefix("sealpost_session="))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_id_is_never_the_one_signed_in() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let portal: reqwest::Url = instance.url("/").parse().unwrap();

    // An attacker plants a session id of their choosing in Ada's browser.
    let planted = "f".repeat(43);
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&format!("sealpost_session={planted}; Path=/; Secure"), &portal);
    let http = reqwest::Client::builder()
        .cookie_provider(std::sync::Arc::clone(&jar))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    // A second tab's sign-in form, opened before signing in (used below).
    let tab = http.get(instance.url("/signin")).send().await.unwrap();
    let tab_csrf = super::harness::csrf_in(&tab.text().await.unwrap());
    let inbox = super::harness::sign_in(&http, &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(inbox.url().path(), "/inbox", "Ada is signed in");
    let first = session_cookie(&jar, &portal).expect("a session cookie");
    assert_ne!(first, planted, "signing in issues a new session id");

    // The planted id opens nothing.
    let attacker = browser();
    let page = attacker
        .get(instance.url("/inbox"))
        .header("cookie", format!("sealpost_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().path(), "/signin", "the planted id is not signed in");

    // Signing in again (from the other tab) rotates the id, and the old one
    // stops working.
    let again = http
        .post(instance.url("/signin"))
        .form(&[
            ("email", "ada@smiles.example"),
            ("password", "Doctor-Pass-77"),
            ("next", "/inbox"),
            ("csrf", tab_csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let again = super::harness::finish_two_step(&http, &instance, again).await;
    assert_eq!(again.url().path(), "/inbox");
    let second = session_cookie(&jar, &portal).expect("a session cookie");
    assert_ne!(second, first, "each sign-in issues a new session id");
    let stale = attacker
        .get(instance.url("/inbox"))
        .header("cookie", format!("sealpost_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.url().path(),
        "/signin",
        "the previous session ended at the new sign-in"
    );
}
