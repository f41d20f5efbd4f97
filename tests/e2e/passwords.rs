//! The password policy through the portal: weak and common passwords are refused
//! with a reason, recent ones may not be reused, a signed-in user can change
//! theirs, and after 90 days sign-in asks for a new one before anything else.

use super::harness::{Instance, browser, csrf_in, finish_two_step, set_password, sign_in};

async fn signed_in(instance: &Instance, password: &str) -> (reqwest::Client, String) {
    let http = browser();
    let page = sign_in(&http, instance, "ada@smiles.example", password, "/account/password").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = csrf_in(&html);
    (http, csrf)
}

async fn change(http: &reqwest::Client, instance: &Instance, csrf: &str, current: &str, new: &str) -> (u16, String) {
    let reply = http
        .post(instance.url("/account/password"))
        .form(&[
            ("current", current),
            ("password", new),
            ("confirm", new),
            ("csrf", csrf),
        ])
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_common_and_reused_passwords_are_refused_and_change_works() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let (http, csrf) = signed_in(&instance, "Doctor-Pass-77").await;

    let (status, page) = change(&http, &instance, &csrf, "Doctor-Pass-77", "lowercaseonly").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("also needs an upper-case letter, a digit and a symbol"),
        "{page}"
    );
    let (status, page) = change(&http, &instance, &csrf, "Doctor-Pass-77", "Password1!").await;
    assert_eq!(status, 400);
    assert!(page.contains("most common"));
    let (status, page) = change(&http, &instance, &csrf, "Doctor-Pass-77", "Doctor-Pass-77").await;
    assert_eq!(status, 400);
    assert!(page.contains("used this password before"));
    let (status, page) = change(&http, &instance, &csrf, "not-my-password", "Fresh-Meadow-12").await;
    assert_eq!(status, 400);
    assert!(page.contains("current password is not right"));
    let (status, _) = change(&http, &instance, "forged", "Doctor-Pass-77", "Fresh-Meadow-12").await;
    assert_eq!(status, 403, "CSRF token required");

    let (status, page) = change(&http, &instance, &csrf, "Doctor-Pass-77", "Fresh-Meadow-12").await;
    assert_eq!(status, 200);
    assert!(page.contains("Your password is changed"));
    // Going back to the previous password is reuse too.
    let (status, _) = change(&http, &instance, &csrf, "Fresh-Meadow-12", "Doctor-Pass-77").await;
    assert_eq!(status, 400);
    let audit = instance.store().audit_log().recent_audit(30).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "password.change"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_ninety_days_sign_in_asks_for_a_new_password_first() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    instance.clock.advance(91 * 86_400);
    let http = browser();
    let page = super::harness::post_signin(&http, &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert!(
        page.url().path().starts_with("/password/"),
        "sent to choose a new password: {}",
        page.url()
    );
    let form_url = page.url().clone();
    assert!(page.text().await.unwrap().contains("more than 90 days old"));
    assert_eq!(
        http.get(instance.url("/inbox")).send().await.unwrap().url().path(),
        "/signin",
        "no session yet"
    );
    let done = http
        .post(form_url)
        .form(&[("password", "Autumn-River-58"), ("confirm", "Autumn-River-58")])
        .send()
        .await
        .unwrap();
    let done = finish_two_step(&http, &instance, done).await;
    assert_eq!(done.status(), 200);
    assert_eq!(done.url().path(), "/inbox");
}
