//! Sign-in hardening (issue 8): the second step can't be brute-forced (a few
//! wrong codes void the pending sign-in or reset link; the throttle and the lock
//! apply), a new password ends every other session, link and (on a reset) app
//! password, known and unknown addresses get the same answers and the same
//! work at every door, lockouts are temporary and grow, one failure budget per
//! client address across portal, SMTP and IMAP, login CSRF, and codes are not
//! texted to premium numbers. Mail clients' sessions: `auth_mail_clients.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use lettre::address::Envelope;
use store::Clock as _;
use store::accounts::two_step::{Channel, CodePurpose};

use super::harness::{Instance, browser, csrf_in, link_in, post_signin, set_password, sign_in, submission_client};

pub(super) const ADA: &str = "ada@smiles.example";
pub(super) const PASSWORD: &str = "Doctor-Pass-77";
const NOBODY: &str = "nobody@smiles.example";

fn totp_code(secret: &str, at: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    totp_rs::Builder::new()
        .with_secret(secret.as_bytes().to_vec())
        .build()
        .unwrap()
        .generate(at.unsigned_abs())
        .to_string()
}

/// Ada, with an authenticator app set up; returns its secret. The clock then
/// moves on a step, so the next code is fresh.
async fn ada_with_app(instance: &Instance) -> String {
    instance.practice_with_doctor().await;
    set_password(instance, ADA, PASSWORD).await;
    let http = browser();
    let page = post_signin(&http, instance, ADA, PASSWORD, "/inbox")
        .await
        .text()
        .await
        .unwrap();
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
    let secret = setup
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let done = submit_totp(&http, instance, &csrf, &totp_code(&secret, instance.clock.now())).await;
    assert_eq!(done.url().path(), "/inbox", "the app is set up");
    instance.clock.advance(30);
    secret
}

async fn submit_totp(http: &reqwest::Client, instance: &Instance, csrf: &str, code: &str) -> reqwest::Response {
    http.post(instance.url("/signin/verify"))
        .form(&[("csrf", csrf), ("next", "/inbox"), ("method", "totp"), ("code", code)])
        .send()
        .await
        .unwrap()
}

/// A code from the app that is certainly wrong now.
fn wrong_code(secret: &str, now: i64) -> String {
    let right: Vec<String> = [-30, 0, 30].iter().map(|d| totp_code(secret, now + d)).collect();
    (0..10)
        .map(|n| format!("{:06}", 111_111 * n))
        .find(|c| !right.contains(c))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_app_codes_void_the_pending_sign_in_and_the_throttle_applies() {
    let instance = Instance::start().await;
    let secret = ada_with_app(&instance).await;
    let now = instance.clock.now();
    let http = browser();
    let page = post_signin(&http, &instance, ADA, PASSWORD, "/inbox")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("authenticator app"));
    let csrf = csrf_in(&page);
    for attempt in 1..=4 {
        let wrong = submit_totp(&http, &instance, &csrf, &wrong_code(&secret, now)).await;
        assert_eq!(wrong.status(), 401, "attempt {attempt}");
        assert_eq!(wrong.url().path(), "/signin/verify");
    }
    let fifth = submit_totp(&http, &instance, &csrf, &wrong_code(&secret, now)).await;
    assert_eq!(fifth.status(), 401);
    assert!(
        fifth.text().await.unwrap().contains("sign in again"),
        "the fifth wrong code voids it"
    );
    // The right code on the same pending sign-in no longer signs in, even when
    // the browser kept the pending cookie.
    let right = submit_totp(&http, &instance, &csrf, &totp_code(&secret, now)).await;
    assert_ne!(right.url().path(), "/inbox");
    assert_eq!(inbox_path(&http, &instance).await, "/signin", "not signed in");

    // Starting over from the password works...
    let http = browser();
    let page = post_signin(&http, &instance, ADA, PASSWORD, "/inbox")
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&page);
    // ...but not while the client address is throttled: the second step checks it too.
    for n in 0..instance.store().policy().client_failure_limit {
        let _ = instance
            .store()
            .auth()
            .check_password(&format!("guess{n}@example.org"), "password1", "127.0.0.1")
            .await;
    }
    let throttled = submit_totp(&http, &instance, &csrf, &totp_code(&secret, now)).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(inbox_path(&http, &instance).await, "/signin");
    instance.clock.advance(15 * 60 + 1);
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    assert!(audit.iter().any(|(_, a, _)| a == "two_step.token_void"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_wrong_app_codes_in_a_row_lock_the_second_step_for_a_while() {
    let instance = Instance::start().await;
    let secret = ada_with_app(&instance).await;
    let now = instance.clock.now();
    // Two pending sign-ins, five wrong codes each (from two addresses, under
    // the throttle): the second step locks.
    for client in ["198.51.100.1", "198.51.100.2"] {
        let store = instance.store();
        let store::accounts::SignIn::SecondStep { pending, .. } =
            store.auth().begin_sign_in(ADA, PASSWORD, None, client).await.unwrap()
        else {
            panic!("a second step is due");
        };
        for _ in 0..5 {
            let _ = store
                .auth()
                .finish_sign_in(
                    &pending,
                    store::accounts::two_step::Method::Totp,
                    &wrong_code(&secret, now),
                    false,
                    client,
                )
                .await;
        }
    }
    let store = instance.store();
    let store::accounts::SignIn::SecondStep { pending, .. } = store
        .auth()
        .begin_sign_in(ADA, PASSWORD, None, "198.51.100.3")
        .await
        .unwrap()
    else {
        panic!("a second step is due");
    };
    let method = store::accounts::two_step::Method::Totp;
    assert!(matches!(
        store
            .auth()
            .finish_sign_in(&pending, method, &totp_code(&secret, now), false, "198.51.100.3")
            .await,
        Err(store::Error::Locked)
    ));
    // The lock is temporary: 15 minutes later the right code works.
    instance.clock.advance(15 * 60 + 1);
    let later = instance.clock.now();
    let store::accounts::SignIn::SecondStep { pending, .. } = store
        .auth()
        .begin_sign_in(ADA, PASSWORD, None, "198.51.100.3")
        .await
        .unwrap()
    else {
        panic!("a second step is due");
    };
    store
        .auth()
        .finish_sign_in(&pending, method, &totp_code(&secret, later), false, "198.51.100.3")
        .await
        .expect("unlocked after 15 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_void_a_reset_link() {
    let instance = Instance::start().await;
    let secret = ada_with_app(&instance).await;
    let http = browser();
    http.post(instance.url("/forgot"))
        .form(&[("email", ADA)])
        .send()
        .await
        .unwrap();
    let mail = instance.wait_for_mail(ADA, 1).await;
    let link = instance.reachable(&link_in(&mail, &format!("{}/password/", instance.config.public_url)));
    let now = instance.clock.now();
    let post = |code: String| {
        let http = http.clone();
        let link = link.clone();
        async move {
            http.post(&link)
                .form(&[
                    ("password", "Reset-Meadow-61"),
                    ("confirm", "Reset-Meadow-61"),
                    ("code", code.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for attempt in 1..=4 {
        let wrong = post(wrong_code(&secret, now)).await;
        assert_eq!(wrong.status(), 400, "attempt {attempt}");
        assert!(wrong.text().await.unwrap().contains("not right"));
    }
    // The fifth voids the link: the page offers a new one (to the same address).
    let fifth = post(wrong_code(&secret, now)).await;
    assert_eq!(fifth.status(), 410);
    assert!(fifth.text().await.unwrap().contains("Send me a new link"));
    let right = post(totp_code(&secret, now)).await;
    assert_ne!(
        right.url().path(),
        "/inbox",
        "the right code no longer works on this link"
    );
    assert!(right.status().is_client_error());
    let store = instance.store();
    assert!(
        store
            .auth()
            .check_password(ADA, "Reset-Meadow-61", "test")
            .await
            .is_err()
    );
    store
        .auth()
        .check_password(ADA, PASSWORD, "test")
        .await
        .expect("the password is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_other_sessions_links_and_app_passwords() {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    let store = instance.store();
    let ada = store.accounts().user_by_email(ADA).await.unwrap().unwrap();
    let laptop = browser();
    let phone = browser();
    assert_eq!(
        sign_in(&laptop, &instance, ADA, PASSWORD, "/inbox").await.url().path(),
        "/inbox"
    );
    assert_eq!(
        sign_in(&phone, &instance, ADA, PASSWORD, "/inbox").await.url().path(),
        "/inbox"
    );
    let outlook = store.auth().create_app_password(&ada, "Outlook", "test").await.unwrap();
    let reset_link = store
        .auth()
        .issue_token(store::accounts::TokenPurpose::SetPassword, ada.id, None, 86_400)
        .await
        .unwrap();

    // A change on the laptop, keeping app passwords.
    let page = laptop
        .get(instance.url("/account/password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"revoke_app_passwords\""), "the page offers it");
    let change = |http: &reqwest::Client, csrf: String, current: &'static str, new: &'static str, revoke: bool| {
        let mut form = vec![
            ("csrf", csrf),
            ("current", current.to_owned()),
            ("password", new.to_owned()),
            ("confirm", new.to_owned()),
        ];
        if revoke {
            form.push(("revoke_app_passwords", "1".to_owned()));
        }
        http.post(instance.url("/account/password")).form(&form).send()
    };
    let done = change(&laptop, csrf_in(&page), PASSWORD, "Fresh-Meadow-12", false)
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(inbox_path(&laptop, &instance).await, "/inbox", "this session goes on");
    assert_eq!(
        inbox_path(&phone, &instance).await,
        "/signin",
        "every other session ended"
    );
    assert!(
        store
            .auth()
            .set_password(&reset_link, "Other-Meadow-34", "test")
            .await
            .is_err(),
        "an unused reset link ended"
    );
    store
        .auth()
        .check_mail_client(ADA, &outlook, "test")
        .await
        .expect("app passwords stay unless asked");

    // Again, revoking app passwords this time.
    let page = laptop
        .get(instance.url("/account/password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    change(&laptop, csrf_in(&page), "Fresh-Meadow-12", "Third-Meadow-56", true)
        .await
        .unwrap();
    assert!(
        store.auth().check_mail_client(ADA, &outlook, "test").await.is_err(),
        "revoked"
    );

    // A reset from a link revokes them always, and ends every session.
    let thunderbird = store
        .auth()
        .create_app_password(&ada, "Thunderbird", "test")
        .await
        .unwrap();
    let addin_key = store.auth().issue_addin_key(&ada, "test").await.unwrap();
    let link = store
        .auth()
        .issue_token(store::accounts::TokenPurpose::SetPassword, ada.id, None, 86_400)
        .await
        .unwrap();
    store
        .auth()
        .set_password(&link, "Reset-Meadow-78", "test")
        .await
        .unwrap();
    assert_eq!(inbox_path(&laptop, &instance).await, "/signin");
    assert!(store.auth().check_mail_client(ADA, &thunderbird, "test").await.is_err());
    assert!(store.auth().app_passwords(&ada).await.unwrap().is_empty());
    assert!(
        store.auth().addin_key_user(&addin_key).await.is_err(),
        "the add-in key went with them"
    );
}

/// The sign-in page for `email`, with the address itself taken out.
async fn signin_answer(instance: &Instance, email: &str, password: &str) -> (u16, String) {
    let reply = post_signin(&browser(), instance, email, password, "/inbox").await;
    let status = reply.status().as_u16();
    let page = reply.text().await.unwrap().replace(email, "ADDRESS");
    let page = page.split("name=\"csrf\" value=\"").next().unwrap().to_owned();
    (status, page)
}

/// The reply to AUTH PLAIN on the submission port, and how long it took.
async fn smtp_auth(instance: &Instance, email: &str, password: &str) -> (String, Duration) {
    let envelope = Envelope::new(Some(ADA.parse().unwrap()), vec!["pat@example.org".parse().unwrap()]).unwrap();
    let started = Instant::now();
    let error = submission_client(instance, email, password)
        .send_raw(&envelope, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    (error.to_string(), started.elapsed())
}

async fn contacts_answer(instance: &Instance, email: &str, password: &str) -> (u16, String) {
    let reply = browser()
        .get(instance.url("/api/contacts?addresses=pat@example.org"))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_addresses_get_the_same_answers_and_the_same_work() {
    // Ada has two-step on (mail apps need app passwords): the fast path that
    // skipped the password hash for her is where timing told her apart.
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    let store = instance.store();
    assert!(
        store
            .auth()
            .two_step(store.accounts().user_by_email(ADA).await.unwrap().unwrap().id)
            .await
            .unwrap()
            .on
    );

    // Every door runs exactly one password hash check, account or not.
    let checks = || store.auth().password_checks();
    let mut ada_times = Vec::new();
    let mut nobody_times = Vec::new();
    for round in 0..3 {
        let before = checks();
        let (ada_reply, ada_took) = smtp_auth(&instance, ADA, &format!("Wrong-{round}")).await;
        assert_eq!(checks() - before, 1, "SMTP AUTH for a two-step user runs argon2");
        let before = checks();
        let (nobody_reply, nobody_took) = smtp_auth(&instance, NOBODY, &format!("Wrong-{round}")).await;
        assert_eq!(checks() - before, 1, "SMTP AUTH for no account runs argon2");
        assert_eq!(ada_reply, nobody_reply);
        ada_times.push(ada_took);
        nobody_times.push(nobody_took);
    }
    eprintln!(
        "SMTP AUTH median: two-step user {:?}, unknown address {:?}",
        median(ada_times),
        median(nobody_times)
    );
    let before = checks();
    let ada_api = contacts_answer(&instance, ADA, "Wrong-9").await;
    let nobody_api = contacts_answer(&instance, NOBODY, "Wrong-9").await;
    assert_eq!(checks() - before, 2);
    assert_eq!(ada_api, nobody_api);
    let before = checks();
    let ada_page = signin_answer(&instance, ADA, "Wrong-8").await;
    let nobody_page = signin_answer(&instance, NOBODY, "Wrong-8").await;
    assert_eq!(checks() - before, 2);
    assert_eq!(ada_page, nobody_page);
    assert_eq!(ada_page.0, 401);

    // Each address has now failed 5 times: both are locked, with the same
    // words, and the warning before it was the same too.
    for email in [ADA, NOBODY] {
        let (status, page) = signin_answer(&instance, email, PASSWORD).await;
        assert_eq!(status, 403, "{email}");
        assert!(page.contains("locked"));
    }
    assert_eq!(
        signin_answer(&instance, ADA, PASSWORD).await,
        signin_answer(&instance, NOBODY, PASSWORD).await
    );
    // IMAP LOGIN answers alike too (here: locked) — one budget per client
    // address, so from other addresses.
    let (ada_imap, nobody_imap) = (
        store
            .auth()
            .check_mail_client(ADA, PASSWORD, "imap:192.0.2.1")
            .await
            .unwrap_err()
            .to_string(),
        store
            .auth()
            .check_mail_client(NOBODY, PASSWORD, "imap:192.0.2.1")
            .await
            .unwrap_err()
            .to_string(),
    );
    assert_eq!(ada_imap, nobody_imap);

    // The lockout is temporary (15 minutes), and grows while lockouts follow
    // one another (30 minutes the next time).
    instance.clock.advance(15 * 60 + 1);
    for n in 0..5 {
        let wrong = store
            .auth()
            .check_password(ADA, &format!("Wrong-{n}"), "192.0.2.3")
            .await;
        assert!(
            matches!(wrong, Err(store::Error::AuthFailed)),
            "unlocked after 15 minutes: {wrong:?}"
        );
    }
    instance.clock.advance(15 * 60 + 1);
    assert!(matches!(
        store.auth().check_password(ADA, PASSWORD, "192.0.2.4").await,
        Err(store::Error::Locked)
    ));
    instance.clock.advance(15 * 60);
    store
        .auth()
        .check_password(ADA, PASSWORD, "192.0.2.4")
        .await
        .expect("unlocked after 30 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_tries_before_a_lockout_are_warned_alike() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    for attempt in 1..=4 {
        let ada = signin_answer(&instance, ADA, "Wrong-1").await;
        let nobody = signin_answer(&instance, NOBODY, "Wrong-1").await;
        assert_eq!(ada, nobody, "attempt {attempt}");
        let warned = ada.1.contains("will lock sign-in");
        assert_eq!(warned, attempt >= 3, "attempt {attempt}: warned only on the last tries");
    }
}

/// imaplib: `count` failed LOGINs (each to another unknown address).
const FAILING_LOGINS: &str = r#"
import imaplib, ssl, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
for n in range(count):
    try:
        m.login("guess%d@example.org" % n, "password1")
    except imaplib.IMAP4.error as e:
        print("refused", e)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_over_imap_count_toward_the_portal_throttle() {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    let limit = instance.store().policy().client_failure_limit;
    let port = instance.running.addresses.imap_tls.port();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(FAILING_LOGINS)
            .args([port.to_string(), limit.to_string()])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("refused").count(),
        usize::try_from(limit).unwrap(),
        "{stdout}"
    );
    // From the same address, the portal now refuses even the right password.
    let reply = post_signin(&browser(), &instance, ADA, PASSWORD, "/inbox").await;
    assert_eq!(reply.status(), 429, "one budget per client address");
    assert!(reply.text().await.unwrap().contains("wait"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_form_posted_from_another_site_is_refused() {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    // Another site's page posts the form with its own account (no pre-session
    // cookie: SameSite keeps it out of a cross-site POST; and no valid token).
    let http = browser();
    let forged = http
        .post(instance.url("/signin"))
        .form(&[
            ("email", ADA),
            ("password", PASSWORD),
            ("next", "/inbox"),
            ("csrf", "0".repeat(64).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("sign in again"));
    assert_eq!(inbox_path(&http, &instance).await, "/signin", "no session opened");
    // The page just served set the pre-session cookie: a real sign-in works.
    assert_eq!(
        post_signin(&http, &instance, ADA, PASSWORD, "/inbox")
            .await
            .url()
            .path(),
        "/inbox"
    );
    let cookie = browser().get(instance.url("/signin")).send().await.unwrap();
    let set = cookie.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("__Host-sealpost_signin=") && set.contains("SameSite=Lax") && set.contains("HttpOnly"),
        "{set}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_not_sent_to_premium_numbers_and_each_number_is_capped() {
    let instance = Instance::start_with(|config| {
        config.two_step.codes_per_number_per_hour = 3;
        config.two_step.enrol_codes_per_hour = 5;
        config.two_step.denied_prefixes = vec!["882".into()];
    })
    .await;
    let ada = instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    // Through the set-up page: a premium number is refused with a clear reason.
    let http = browser();
    let page = post_signin(&http, &instance, ADA, PASSWORD, "/inbox")
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&page);
    for premium in ["+1 900 555 0100", "+44 909 879 0000", "+882 1234 5678"] {
        let refused = http
            .post(instance.url("/signin/verify/send"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("next", "/inbox"),
                ("phone", premium),
                ("channel", "voice"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(refused.contains("premium-rate"), "{premium}");
    }
    assert!(super::harness::sms_sent(&instance).is_empty(), "nothing was sent");

    // One number: at most 3 codes an hour, whoever asks.
    let store = instance.store();
    let mut users = vec![ada];
    for n in 0..2 {
        let (user, _) = store
            .accounts()
            .add_practice_user(
                &format!("staff{n}@smiles.example"),
                "Staff",
                store::accounts::Role::Staff,
                "smiles.example",
                true,
                false,
            )
            .await
            .unwrap();
        users.push(user);
    }
    let send = async |user: &store::accounts::User, phone: &str| {
        store
            .auth()
            .send_code(user, CodePurpose::Enrol, Channel::Sms, Some(phone), "test")
            .await
    };
    for user in &users {
        send(user, "+1 555 010 0199").await.unwrap();
    }
    let capped = send(&users[0], "(555) 010-0199").await.unwrap_err();
    assert!(
        capped.to_string().contains("This number"),
        "the same number in another spelling: {capped}"
    );
    // New numbers in all: at most 5 an hour (3 sent so far).
    send(&users[1], "+1 555 010 0101").await.unwrap();
    send(&users[2], "+1 555 010 0102").await.unwrap();
    let paused = send(&users[0], "+1 555 010 0103").await.unwrap_err();
    assert!(paused.to_string().contains("paused codes to new numbers"), "{paused}");
    instance.clock.advance(3601);
    send(&users[0], "+1 555 010 0103").await.expect("an hour later");
}
