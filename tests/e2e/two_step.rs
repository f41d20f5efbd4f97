//! Two-step verification through the portal and the mail door: codes by text
//! and voice (wrong, reused, expired, too many tries), authenticator apps
//! (valid, invalid, replayed step), "remember this device" for 30 days, a
//! stolen pending sign-in, CSRF, the phone step of a password reset, and app
//! passwords as the only way in for mail apps.

use lettre::AsyncTransport;
use lettre::address::Envelope;
use store::Clock as _;
use store::accounts::two_step::{Channel, CodePurpose};

use super::harness::{
    Instance, TEST_PHONE, browser, csrf_in, latest_code, link_in, set_password, sign_in, sms_sent, submission_client,
};

const ADA: &str = "ada@smiles.example";
const PASSWORD: &str = "Doctor-Pass-77";

async fn ada(instance: &Instance) {
    instance.practice_with_doctor().await;
    set_password(instance, ADA, PASSWORD).await;
}

/// Posts the password; returns the (followed) response.
async fn password_step(http: &reqwest::Client, instance: &Instance) -> reqwest::Response {
    super::harness::post_signin(http, instance, ADA, PASSWORD, "/inbox").await
}

/// Signs the browser out (its remembered-device cookie stays).
async fn sign_out(http: &reqwest::Client, instance: &Instance) {
    let inbox = http
        .get(instance.url("/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = http
        .post(instance.url("/signout"))
        .form(&[("csrf", csrf_in(&inbox))])
        .send()
        .await
        .unwrap();
    assert_eq!(out.url().path(), "/signin");
}

async fn submit_code(
    http: &reqwest::Client,
    instance: &Instance,
    csrf: &str,
    code: &str,
    remember: bool,
) -> reqwest::Response {
    let mut form = vec![("csrf", csrf), ("next", "/inbox"), ("method", "phone"), ("code", code)];
    if remember {
        form.push(("remember", "1"));
    }
    http.post(instance.url("/signin/verify"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn inbox_path(http: &reqwest::Client, instance: &Instance) -> String {
    http.get(instance.url("/inbox"))
        .send()
        .await
        .unwrap()
        .url()
        .path()
        .to_owned()
}

fn other_than(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_codes_wrong_reused_expired_and_exhausted_are_refused() {
    let instance = Instance::start().await;
    ada(&instance).await;
    // First sign-in: the password alone opens nothing; Ada sets up her phone.
    let http = browser();
    let page = password_step(&http, &instance).await;
    assert_eq!(page.url().path(), "/signin/verify");
    assert_eq!(
        inbox_path(&http, &instance).await,
        "/signin",
        "no session before the code"
    );
    let done = sign_in(&http, &instance, ADA, PASSWORD, "/inbox").await;
    assert_eq!(done.url().path(), "/inbox", "enrolled and signed in");

    // Next sign-in on a new device: a code is texted at once.
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    assert!(page.contains("ending in 00"), "{page}");
    let csrf = csrf_in(&page);
    let code = latest_code(&instance, Some(TEST_PHONE)).await;
    let wrong = submit_code(&http, &instance, &csrf, other_than(&code), false).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(inbox_path(&http, &instance).await, "/signin");
    // Without the CSRF field the right code is refused (and not spent).
    let forged = submit_code(&http, &instance, "", &code, false).await;
    assert_eq!(forged.status(), 403);
    let ok = submit_code(&http, &instance, &csrf, &code, false).await;
    assert_eq!(ok.url().path(), "/inbox");
    assert_eq!(ok.status(), 200);

    // Reuse: the same code does not finish another sign-in.
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    let csrf = csrf_in(&page);
    let fresh = latest_code(&instance, Some(TEST_PHONE)).await;
    let reused = submit_code(&http, &instance, &csrf, &code, false).await;
    assert_eq!(reused.status(), 401, "a used code");

    // Too many tries: 5 wrong codes void the code and the pending sign-in;
    // even the right one is refused, and the person starts over.
    for _ in 0..3 {
        let wrong = submit_code(&http, &instance, &csrf, other_than(&fresh), false).await;
        assert_eq!(wrong.status(), 401);
    }
    let fifth = submit_code(&http, &instance, &csrf, other_than(&fresh), false).await;
    assert_eq!(fifth.status(), 401);
    assert!(fifth.text().await.unwrap().contains("sign in again"));
    let exhausted = submit_code(&http, &instance, &csrf, &fresh, false).await;
    assert_eq!(exhausted.url().path(), "/signin", "void after 5 tries");
    assert_eq!(inbox_path(&http, &instance).await, "/signin");

    // A voice call instead: a new code by phone call.
    instance.clock.advance(15 * 60);
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    let csrf = csrf_in(&page);
    let called = http
        .post(instance.url("/signin/verify/send"))
        .form(&[("csrf", csrf.as_str()), ("next", "/inbox"), ("channel", "voice")])
        .send()
        .await
        .unwrap();
    assert!(called.text().await.unwrap().contains("We are calling"));
    let voice = latest_code(&instance, Some(TEST_PHONE)).await;
    assert_eq!(sms_sent(&instance).last().unwrap().1, "voice");
    assert_eq!(
        submit_code(&http, &instance, &csrf, &voice, false).await.url().path(),
        "/inbox"
    );

    // Expired: a code older than 10 minutes fails.
    let user = instance.store().accounts().user_by_email(ADA).await.unwrap().unwrap();
    instance.clock.advance(15 * 60);
    instance
        .store()
        .auth()
        .send_code(&user, CodePurpose::SignIn, Channel::Sms, None, "test")
        .await
        .unwrap();
    let late = latest_code(&instance, Some(TEST_PHONE)).await;
    instance.clock.advance(10 * 60 + 1);
    assert!(
        instance
            .store()
            .auth()
            .verify_code(&user, CodePurpose::SignIn, &late, "test")
            .await
            .is_err()
    );

    // Codes are stored hashed: the database holds none of them in clear.
    let leaked = super::harness::files_containing(&instance.config.data_dir, late.as_bytes());
    assert!(
        leaked
            .iter()
            .all(|p| p.starts_with(instance.config.data_dir.join("outbox-sms"))),
        "{leaked:?}"
    );
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    for action in [
        "two_step.enrolled",
        "two_step.code_sent",
        "two_step.success",
        "two_step.failure",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_pending_sign_in_without_the_code_opens_nothing() {
    let instance = Instance::start().await;
    ada(&instance).await;
    let raw = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (signin_cookie, csrf) = super::harness::signin_csrf(&instance).await;
    let reply = raw
        .post(instance.url("/signin"))
        .header("cookie", signin_cookie)
        .form(&[
            ("email", ADA),
            ("password", PASSWORD),
            ("next", "/inbox"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 303);
    assert!(
        reply.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/signin/verify")
    );
    let cookies: Vec<String> = reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        !cookies.iter().any(|c| c.starts_with("sealpost_session=")),
        "no session yet"
    );
    let pending = cookies
        .iter()
        .find(|c| c.starts_with("sealpost_pending="))
        .expect("a pending cookie");
    assert!(pending.contains("HttpOnly") && pending.contains("Secure") && pending.contains("Max-Age=600"));
    let token = pending
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sealpost_pending=");
    for cookie in [format!("sealpost_pending={token}"), format!("sealpost_session={token}")] {
        let inbox = raw
            .get(instance.url("/inbox"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(inbox.status(), 303, "{cookie}");
        assert!(inbox.headers()["location"].to_str().unwrap().starts_with("/signin"));
        let app_passwords = raw
            .get(instance.url("/account/app-passwords"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(app_passwords.status(), 303);
    }
    // Ten minutes later the pending sign-in is gone.
    instance.clock.advance(10 * 60 + 1);
    let verify = raw
        .get(instance.url("/signin/verify"))
        .header("cookie", format!("sealpost_pending={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 303);
    assert!(verify.headers()["location"].to_str().unwrap().starts_with("/signin"));
}

fn totp_code(secret: &str, at: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    totp_rs::Builder::new()
        .with_secret(secret.as_bytes().to_vec())
        .build()
        .unwrap()
        .generate(at.unsigned_abs())
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_app_codes_valid_invalid_and_replayed() {
    let instance = Instance::start().await;
    ada(&instance).await;
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    let csrf = csrf_in(&page);
    let setup = http
        .post(instance.url("/signin/verify/app"))
        .form(&[("csrf", csrf.as_str()), ("next", "/inbox")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(setup.contains("<svg") && setup.contains("otpauth://totp/Sealpost:ada@smiles.example?secret="));
    let secret = setup
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let totp = |at: i64| totp_code(&secret, at);
    let post = |code: String| {
        let http = http.clone();
        let csrf = csrf.clone();
        let url = instance.url("/signin/verify");
        async move {
            http.post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("next", "/inbox"),
                    ("method", "totp"),
                    ("code", &code),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let now = instance.clock.now();
    assert_eq!(post(totp(now - 300)).await.status(), 401, "a code from 5 minutes ago");
    assert_eq!(post(totp(now)).await.url().path(), "/inbox");

    // Signing in again within the same 30 s: the same code is a replay.
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    assert!(page.contains("authenticator app"));
    let csrf = csrf_in(&page);
    let again = |code: String| {
        let http = http.clone();
        let csrf = csrf.clone();
        let url = instance.url("/signin/verify");
        async move {
            http.post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("next", "/inbox"),
                    ("method", "totp"),
                    ("code", &code),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(again(totp(now)).await.status(), 401, "a time step is accepted once");
    instance.clock.advance(30);
    assert_eq!(
        again(totp(now + 30)).await.url().path(),
        "/inbox",
        "the next step works"
    );
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(audit.iter().any(|(_, a, o)| a == "two_step.enrolled" && o == "totp"));
    assert!(audit.iter().any(|(_, a, o)| a == "two_step.failure" && o == "totp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_device_skips_the_step_for_thirty_days() {
    let instance = Instance::start().await;
    ada(&instance).await;
    sign_in(&browser(), &instance, ADA, PASSWORD, "/inbox").await; // sets up the phone
    let http = browser();
    let page = password_step(&http, &instance).await.text().await.unwrap();
    let code = latest_code(&instance, Some(TEST_PHONE)).await;
    let done = submit_code(&http, &instance, &csrf_in(&page), &code, true).await;
    assert_eq!(done.url().path(), "/inbox");

    // The same browser signs out and in again: straight to the inbox.
    sign_out(&http, &instance).await;
    let again = password_step(&http, &instance).await;
    assert_eq!(again.url().path(), "/inbox", "remembered");
    // Another browser is still asked.
    assert_eq!(
        password_step(&browser(), &instance).await.url().path(),
        "/signin/verify"
    );

    // 31 days later the device is forgotten.
    instance.clock.advance(31 * 86_400);
    assert_eq!(password_step(&http, &instance).await.url().path(), "/signin/verify");
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(audit.iter().any(|(_, a, _)| a == "two_step.device_remembered"));

    // A new password forgets remembered devices at once.
    instance.clock.advance(15 * 60);
    let page = password_step(&http, &instance).await.text().await.unwrap();
    let code = latest_code(&instance, Some(TEST_PHONE)).await;
    submit_code(&http, &instance, &csrf_in(&page), &code, true).await;
    sign_out(&http, &instance).await;
    assert_eq!(password_step(&http, &instance).await.url().path(), "/inbox");
    set_password(&instance, ADA, "Another-Pass-55").await;
    let after = super::harness::post_signin(&http, &instance, ADA, "Another-Pass-55", "/inbox").await;
    assert_eq!(after.url().path(), "/signin/verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_needs_the_email_link_and_the_phone_code() {
    let instance = Instance::start().await;
    ada(&instance).await;
    sign_in(&browser(), &instance, ADA, PASSWORD, "/inbox").await; // sets up the phone
    let http = browser();
    http.post(instance.url("/forgot"))
        .form(&[("email", ADA)])
        .send()
        .await
        .unwrap();
    let mail = instance.wait_for_mail(ADA, 1).await;
    let link = instance.reachable(&link_in(&mail, &format!("{}/password/", instance.config.public_url)));
    let page = http.get(&link).send().await.unwrap().text().await.unwrap();
    // The reset needs the phone code: it offers to send it before asking for it.
    assert!(page.contains("Text me a code"), "the reset offers the phone code");
    assert!(!page.contains("name=\"code\""), "asked for before it was sent");
    let post = |code: &'static str| {
        http.post(&link)
            .form(&[
                ("password", "Reset-Meadow-61"),
                ("confirm", "Reset-Meadow-61"),
                ("code", code),
            ])
            .send()
    };
    let without = post("").await.unwrap();
    assert_eq!(without.status(), 400);
    assert!(without.text().await.unwrap().contains("enter the code"));
    let wrong = post("000001").await.unwrap();
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("not right"));
    let sent = http
        .post(format!("{link}/code"))
        .form(&[("channel", "sms")])
        .send()
        .await
        .unwrap();
    let sent = sent.text().await.unwrap();
    assert!(sent.contains("We sent you a 6-digit code") && sent.contains("name=\"code\""));
    let code = latest_code(&instance, Some(TEST_PHONE)).await;
    let done = http
        .post(&link)
        .form(&[
            ("password", "Reset-Meadow-61"),
            ("confirm", "Reset-Meadow-61"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.url().path(), "/inbox", "signed in after link + code");
    // The old password is gone; the link is spent.
    assert_eq!(http.get(&link).send().await.unwrap().status(), 410);
    assert!(
        instance
            .store()
            .auth()
            .check_password(ADA, PASSWORD, "test")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_apps_need_an_app_password_when_two_step_is_on() {
    let instance = Instance::start().await;
    ada(&instance).await;
    let envelope = Envelope::new(Some(ADA.parse().unwrap()), vec!["pat@example.org".parse().unwrap()]).unwrap();
    let message = super::secure_send::secure_message("pat@example.org", "x", b"x", Some("patient"));
    let refused = submission_client(&instance, ADA, PASSWORD)
        .send_raw(&envelope, &message)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("535") || refused.is_permanent(),
        "{refused}"
    );
    let audit = instance.store().audit_log().recent_audit(10).await.unwrap();
    assert!(audit.iter().any(|(_, _, o)| o == "account_password_needs_app_password"));

    let user = instance.store().accounts().user_by_email(ADA).await.unwrap().unwrap();
    let app = instance
        .store()
        .auth()
        .create_app_password(&user, "Outlook", "test")
        .await
        .unwrap();
    submission_client(&instance, ADA, &app)
        .send_raw(&envelope, &message)
        .await
        .expect("an app password works");
}
