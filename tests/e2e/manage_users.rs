//! Manage Users: the first user of a practice is its User Manager; they see
//! everyone invited with their registration status, correct an invited
//! person's email and phone, re-invite (old links die), turn two-step off or
//! on per person and deactivate someone who left (after a confirmation box:
//! their session and app passwords end). Everyone else, and other practices'
//! managers, get 404.

use store::accounts::Role;

use super::harness::{Instance, browser, csrf_in, link_in, set_password, sign_in};
use super::secure_send::{ada_sends, canary};

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.split(start).nth(1).and_then(|rest| rest.split(end).next())
}

async fn page(http: &reqwest::Client, instance: &Instance, path: &str) -> (u16, String) {
    let reply = http.get(instance.url(path)).send().await.unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

async fn act(http: &reqwest::Client, instance: &Instance, id: i64, form: &[(&str, &str)]) -> (u16, String) {
    let reply = http
        .post(instance.url(&format!("/practice/users/{id}")))
        .form(form)
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn user_manager_lists_edits_reinvites_and_toggles_two_step() {
    let instance = Instance::start().await;
    let ada = instance.practice_with_doctor().await;
    assert!(ada.user_manager, "the first user of a practice manages its users");
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let (bob, bob_link) = instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    assert!(!bob.user_manager);
    // A colleague invited by a secure message as staff in the practice.
    ada_sends(
        &instance,
        "nurse@example.org",
        &canary(),
        b"x",
        Some("staff_in_practice"),
    )
    .await;
    let first_invite = link_in(
        &instance.wait_for_mail("nurse@example.org", 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    let nurse = instance
        .store()
        .accounts()
        .user_by_email("nurse@example.org")
        .await
        .unwrap()
        .unwrap();

    let http = browser();
    let home = sign_in(
        &http,
        &instance,
        "ada@smiles.example",
        "Doctor-Pass-77",
        "/practice/users",
    )
    .await;
    assert_eq!(home.url().path(), "/practice/users");
    let list = home.text().await.unwrap();
    let csrf = csrf_in(&list);
    assert!(
        list.contains("Fully registered"),
        "Ada signed in with two steps: {list}"
    );
    assert!(list.contains("bob@smiles.example") && list.contains("nurse@example.org"));
    assert_eq!(list.matches("<td>Invited</td>").count(), 2);

    // Edit an invited person's address and phone: a new invitation goes out.
    let (status, done) = act(
        &http,
        &instance,
        bob.id.0,
        &[
            ("csrf", &csrf),
            ("action", "edit"),
            ("email", "robert@smiles.example"),
            ("phone", "+1 201 555 0155"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("new invitation"));
    let mail = instance.wait_for_mail("robert@smiles.example", 1).await;
    let new_link = link_in(&mail, &format!("{}/password/", instance.config.public_url));
    let old = http
        .get(instance.url(&format!("/password/{bob_link}")))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 410, "the earlier link is void");
    assert_eq!(
        http.get(instance.reachable(&new_link)).send().await.unwrap().status(),
        200
    );
    let (status, _) = act(
        &http,
        &instance,
        bob.id.0,
        &[
            ("csrf", &csrf),
            ("action", "edit"),
            ("email", "ada@smiles.example"),
            ("phone", ""),
        ],
    )
    .await;
    assert_eq!(status, 400, "an address someone has");

    // Re-invite: the first invitation link dies, a new one works.
    let (status, _) = act(&http, &instance, nurse.id.0, &[("csrf", &csrf), ("action", "reinvite")]).await;
    assert_eq!(status, 200);
    let second = link_in(
        &instance.wait_for_mail("nurse@example.org", 2).await,
        &format!("{}/m/", instance.config.public_url),
    );
    assert_ne!(first_invite, second);
    let anonymous = browser();
    assert_eq!(
        anonymous
            .get(instance.reachable(&first_invite))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        anonymous
            .get(instance.reachable(&second))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // CSRF is required.
    let (status, _) = act(&http, &instance, nurse.id.0, &[("action", "reinvite")]).await;
    assert_eq!(status, 403);

    // Two-step off for Bob; he then signs in with his password alone.
    let (status, done) = act(
        &http,
        &instance,
        bob.id.0,
        &[("csrf", &csrf), ("action", "two_step"), ("two_step", "off")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(done.contains("is <strong>off</strong>"));
    set_password(&instance, "robert@smiles.example", "Maple-Tree-88").await;
    let bob_http = browser();
    let bob_home =
        super::harness::post_signin(&bob_http, &instance, "robert@smiles.example", "Maple-Tree-88", "/inbox").await;
    assert_eq!(bob_home.url().path(), "/inbox", "no second step for Bob");
    let (_, list) = page(&http, &instance, "/practice/users").await;
    assert!(list.contains("Registered without two-step verification"));

    // Bob is no User Manager: the pages do not exist for him.
    assert_eq!(page(&bob_http, &instance, "/practice/users").await.0, 404);
    assert_eq!(
        page(&bob_http, &instance, &format!("/practice/users/{}", ada.id.0))
            .await
            .0,
        404
    );
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    for action in ["manage.user_edit", "manage.reinvite", "manage.two_step_off"] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_of_another_practice_finds_nobody_here() {
    let instance = Instance::start_with(|c| c.two_step.allow_disable = false).await;
    instance.practice_with_doctor().await;
    let (bob, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    instance
        .store()
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    let (carol, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "carol@other.example",
            "Carol",
            Role::Doctor,
            "other.example",
            true,
            false,
        )
        .await
        .unwrap();
    assert!(carol.user_manager, "first user of her own practice");
    set_password(&instance, "carol@other.example", "Sunny-Harbor-42").await;
    let http = browser();
    let home = sign_in(
        &http,
        &instance,
        "carol@other.example",
        "Sunny-Harbor-42",
        "/practice/users",
    )
    .await;
    let list = home.text().await.unwrap();
    assert!(!list.contains("bob@smiles.example") && !list.contains("ada@smiles.example"));
    let csrf = csrf_in(&list);
    assert_eq!(
        page(&http, &instance, &format!("/practice/users/{}", bob.id.0)).await.0,
        404
    );
    for form in [
        vec![("csrf", csrf.as_str()), ("action", "reinvite")],
        vec![("csrf", csrf.as_str()), ("action", "two_step"), ("two_step", "off")],
        vec![
            ("csrf", csrf.as_str()),
            ("action", "edit"),
            ("email", "x@evil.example"),
            ("phone", ""),
        ],
        vec![("csrf", csrf.as_str()), ("action", "deactivate"), ("confirm", "yes")],
    ] {
        assert_eq!(act(&http, &instance, bob.id.0, &form).await.0, 404);
    }
    assert_eq!(
        instance.store().accounts().user(bob.id).await.unwrap().email,
        "bob@smiles.example"
    );
    // Policy forbids turning two-step off, even for one's own users.
    let carol = instance.store().accounts().user(carol.id).await.unwrap();
    let err = instance
        .store()
        .accounts()
        .set_user_two_step(&carol, carol.id, false, "test")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("policy"), "{err}");
    assert!(between(&list, "<h1>", "</h1>").is_some_and(|h| h == "Manage users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_manager_deactivates_a_departed_staff_member() {
    let instance = Instance::start().await;
    let ada = instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let (bob, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            Role::Staff,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, "bob@smiles.example", "Maple-Tree-88").await;
    let bob_http = browser();
    sign_in(&bob_http, &instance, "bob@smiles.example", "Maple-Tree-88", "/inbox").await;
    assert_eq!(page(&bob_http, &instance, "/inbox").await.0, 200);
    let bob = instance.store().accounts().user(bob.id).await.unwrap();
    let app_password = instance
        .store()
        .auth()
        .create_app_password(&bob, "Thunderbird", "test")
        .await
        .unwrap();

    let http = browser();
    let home = sign_in(
        &http,
        &instance,
        "ada@smiles.example",
        "Doctor-Pass-77",
        "/practice/users",
    )
    .await;
    let csrf = csrf_in(&home.text().await.unwrap());
    let (_, own) = page(&http, &instance, &format!("/practice/users/{}", ada.id.0)).await;
    assert!(!own.contains("value=\"deactivate\""), "no button on one's own page");
    let (status, _) = act(
        &http,
        &instance,
        ada.id.0,
        &[("csrf", &csrf), ("action", "deactivate"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 400, "nobody deactivates themselves");
    let (_, bobs) = page(&http, &instance, &format!("/practice/users/{}", bob.id.0)).await;
    assert!(bobs.contains("value=\"deactivate\""), "{bobs}");

    // Without the confirmation box ticked, nothing happens.
    let (status, body) = act(&http, &instance, bob.id.0, &[("csrf", &csrf), ("action", "deactivate")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Tick the box"), "{body}");
    assert_eq!(page(&bob_http, &instance, "/inbox").await.0, 200, "still signed in");

    let (status, body) = act(
        &http,
        &instance,
        bob.id.0,
        &[("csrf", &csrf), ("action", "deactivate"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Status: <strong>Deactivated</strong>"), "{body}");
    assert!(!body.contains("value=\"deactivate\""), "{body}");
    let after = bob_http.get(instance.url("/inbox")).send().await.unwrap();
    assert_ne!(after.url().path(), "/inbox", "Bob's session ended");
    assert!(
        instance
            .store()
            .auth()
            .check_mail_client("bob@smiles.example", &app_password, "test")
            .await
            .is_err(),
        "Bob's app password is revoked"
    );
    // He cannot sign in, and "Forgot your password?" mails him nothing.
    let again =
        super::harness::post_signin(&browser(), &instance, "bob@smiles.example", "Maple-Tree-88", "/inbox").await;
    assert_ne!(again.url().path(), "/inbox");
    instance
        .store()
        .auth()
        .request_password_reset("bob@smiles.example", "test")
        .await
        .unwrap();
    let (_, list) = page(&http, &instance, "/practice/users").await;
    assert!(list.contains("<td>Deactivated</td>"), "{list}");
    // Nothing else changes about him here; a second deactivation neither.
    for form in [
        vec![("csrf", csrf.as_str()), ("action", "two_step"), ("two_step", "off")],
        vec![("csrf", csrf.as_str()), ("action", "reinvite")],
        vec![("csrf", csrf.as_str()), ("action", "deactivate"), ("confirm", "yes")],
    ] {
        let (status, body) = act(&http, &instance, bob.id.0, &form).await;
        assert_eq!(status, 400, "{form:?}");
        assert!(body.contains("only your IT admin can reactivate"), "{body}");
    }
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    assert!(audit.iter().any(|(_, a, _)| a == "user.deactivate"));
    assert!(!audit.iter().any(|(_, a, _)| a == "password.reset_request"));
}
