//! App passwords: made in the portal, shown once, accepted by SMTP AUTH on the
//! submission port, and refused once revoked.

use lettre::AsyncTransport;
use lettre::address::Envelope;

use super::harness::{Instance, browser, csrf_in, set_password, sign_in, submission_client};
use super::secure_send::{canary, secure_message};

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.split(start).nth(1).and_then(|rest| rest.split(end).next())
}

async fn send(instance: &Instance, password: &str, message: &[u8]) -> Result<(), lettre::transport::smtp::Error> {
    let client = submission_client(instance, "ada@smiles.example", password);
    let envelope = Envelope::new(
        Some("ada@smiles.example".parse().unwrap()),
        vec!["pat@example.org".parse().unwrap()],
    )
    .unwrap();
    client.send_raw(&envelope, message).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_password_from_the_portal_sends_mail_until_revoked() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let http = browser();
    let page = sign_in(
        &http,
        &instance,
        "ada@smiles.example",
        "Doctor-Pass-77",
        "/account/app-passwords",
    )
    .await
    .text()
    .await
    .unwrap();
    let csrf = csrf_in(&page);
    let made = http
        .post(instance.url("/account/app-passwords"))
        .form(&[("label", "Outlook on my PC"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let password = between(&made, "<code>", "</code>")
        .expect("the new password is shown")
        .to_owned();
    assert_eq!(password.len(), 34, "{password}");
    // Shown once: the list does not show it again.
    let listed = http
        .get(instance.url("/account/app-passwords"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("Outlook on my PC") && !listed.contains(&password));

    let canary = canary();
    send(
        &instance,
        &password,
        &secure_message("pat@example.org", &canary, b"x", Some("patient")),
    )
    .await
    .expect("AUTH with the app password");
    instance.wait_for_mail("pat@example.org", 1).await;
    let audit = instance.store().audit_log().recent_audit(30).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "signin.app_password"));
    assert!(
        http.get(instance.url("/account/app-passwords"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("last used")
    );

    let id = between(&listed, "/account/app-passwords/", "/revoke")
        .expect("a revoke form")
        .to_owned();
    let missing = http
        .post(instance.url("/account/app-passwords/999999/revoke"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let forged = http
        .post(instance.url(&format!("/account/app-passwords/{id}/revoke")))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let revoked = http
        .post(instance.url(&format!("/account/app-passwords/{id}/revoke")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let error = send(&instance, &password, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("535") || error.is_permanent(), "{error}");
}
