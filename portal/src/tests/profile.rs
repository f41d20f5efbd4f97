//! The profile (details, phones in E.164, a doctor's NPI, the email change
//! confirmed by the new address) and recovery that strands nobody (honest
//! "Forgot your password?", "Send me a new link" on a used link, the password
//! rules listed up front), with the attacker's requests next to them.

use axum::http::StatusCode;
use store::accounts::Role;
use store::jobs::JobKind;

use super::{Env, send_message, text, token_of};
use crate::csrf::csrf_for;

/// The kinds of the pending mail jobs for `email`'s account; marks all jobs done.
async fn jobs_for(env: &Env, email: &str) -> Vec<(JobKind, String)> {
    let mut found = Vec::new();
    for job in env.store.queue().pending_jobs(100).await.unwrap() {
        let user = env.store.accounts().user(job.user_id).await.unwrap();
        if user.email == email {
            let ctx = env.store.queue().job_context(&job).await.unwrap();
            found.push((job.kind, format!("{} {}", ctx.recipient.email, ctx.link)));
        }
        env.store.queue().skip_job(job.id).await.unwrap();
    }
    found
}

#[tokio::test]
async fn details_are_checked_field_by_field_and_phones_kept_in_e164() {
    let env = Env::new().await;
    let (cookie, _) = send_message(&env).await;
    let csrf = csrf_for(token_of(&cookie));
    let page = text(env.get("/account/profile", Some(&cookie)).await).await;
    assert!(page.contains(r#"href="/account/messaging""#), "the Messaging tab");
    assert!(page.contains("Bright Smiles Dental"), "the practice is shown");
    assert!(page.contains(r#"name="npi""#), "a doctor is asked for the NPI");

    let form = |phone: &'static str, landline: &'static str, npi: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("full_name", "Dr Alice Example".to_owned()),
            ("phone", phone.to_owned()),
            ("landline", landline.to_owned()),
            ("npi", npi.to_owned()),
            ("specialty", "Endodontics".to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let env = &env;
        let cookie = cookie.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.post("/account/profile/details", &fields, Some(&cookie)).await
        }
    };
    let refused = post(form("12345", "call me", "1234567890")).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = text(refused).await;
    for id in ["phone-error", "landline-error", "npi-error"] {
        assert!(page.contains(&format!(r#"id="{id}""#)), "{id}");
    }
    assert!(page.contains(r#"value="12345""#), "what was typed stays");
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.full_name, "Dr Alice", "nothing saved");

    let saved = post(form("(201) 555-0123", "+44 20 7946 0000", "1234567893")).await;
    assert_eq!(saved.status(), StatusCode::OK);
    let page = text(saved).await;
    assert!(page.contains("Your details are saved."));
    assert!(page.contains(r#"value="(201) 555-0123""#), "national format");
    assert!(
        page.contains(r#"value="+44 20 7946 0000""#),
        "another country: international"
    );
    assert!(page.contains("Root canal treatment"), "the specialty's procedures");
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.full_name, "Dr Alice Example");
    assert_eq!(alice.phone, "+12015550123");
    assert_eq!(alice.profile.landline.as_deref(), Some("+442079460000"));
    assert_eq!(alice.profile.npi.as_deref(), Some("1234567893"));
    assert_eq!(alice.profile.specialty.as_deref(), Some("Endodontics"));
    assert!(alice.profile.procedures.iter().any(|p| p == "Root canal treatment"));

    // The attacker's requests: no CSRF token, no session.
    let fields = [("full_name", "Mallory"), ("phone", "+12015550100")];
    let forged = env.post("/account/profile/details", &fields, Some(&cookie)).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let anonymous = env.post("/account/profile/details", &fields, None).await;
    assert!(anonymous.status().is_redirection() || anonymous.status() == StatusCode::FORBIDDEN);
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.full_name, "Dr Alice Example");
}

#[tokio::test]
async fn an_email_change_waits_for_the_new_address_and_tells_the_old_one() {
    let env = Env::new().await;
    let (cookie, _) = send_message(&env).await;
    let csrf = csrf_for(token_of(&cookie));
    let _ = jobs_for(&env, "alice@clinic.example").await;
    let ask = |email: &'static str| {
        let (env, cookie, csrf) = (&env, cookie.clone(), csrf.clone());
        async move {
            env.post(
                "/account/profile/email",
                &[("csrf", csrf.as_str()), ("email", email)],
                Some(&cookie),
            )
            .await
        }
    };
    // Another account's address is refused next to the field; so is nonsense.
    let taken = ask("pat@example.com").await;
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    assert!(text(taken).await.contains(r#"id="new_email-error""#));
    assert_eq!(ask("not an address").await.status(), StatusCode::BAD_REQUEST);

    let asked = ask("Alice.New@Clinic.example").await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(text(asked).await.contains("We sent a link to"));
    let jobs = jobs_for(&env, "alice@clinic.example").await;
    let confirm = jobs
        .iter()
        .find(|(kind, _)| *kind == JobKind::ConfirmEmail)
        .map(|(_, to)| to.clone())
        .expect("a confirmation mail");
    assert!(confirm.starts_with("alice.new@clinic.example /email/"), "{confirm}");
    assert!(
        jobs.iter()
            .any(|(kind, to)| *kind == JobKind::EmailChangeNotice && to.starts_with("alice@clinic.example ")),
        "the old address is told: {jobs:?}"
    );
    let link = confirm.split_once(' ').unwrap().1.to_owned();
    // Until the link is followed nothing changes; a second ask is held back.
    let again = ask("alice.new@clinic.example").await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(text(again).await.contains("did not send another"));
    assert!(
        env.store
            .accounts()
            .user_by_email("alice@clinic.example")
            .await
            .unwrap()
            .is_some()
    );

    // Opening the link shows a button (a scanner's GET changes nothing).
    let form = env.get(&link, None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert!(text(form).await.contains("Use this address"));
    assert!(
        env.store
            .accounts()
            .user_by_email("alice.new@clinic.example")
            .await
            .unwrap()
            .is_none()
    );
    let done = env.post(&link, &[], None).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(text(done).await.contains("alice.new@clinic.example"));
    let alice = env
        .store
        .accounts()
        .user_by_email("alice.new@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.role, Role::Doctor);
    assert!(
        env.store
            .accounts()
            .user_by_email("alice@clinic.example")
            .await
            .unwrap()
            .is_none()
    );
    // Once only; a made-up token is nothing.
    assert_eq!(env.post(&link, &[], None).await.status(), StatusCode::GONE);
    assert_eq!(env.get("/email/nonsense", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forgot_password_says_when_a_link_went_out_for_every_address() {
    let env = Env::new().await;
    send_message(&env).await;
    for email in ["alice@clinic.example", "nobody@nowhere.example"] {
        let first = env.post("/forgot", &[("email", email)], None).await;
        assert_eq!(first.status(), StatusCode::OK, "{email}");
        let first = text(first).await;
        assert!(first.contains("we sent it a link to set a new password at"), "{first}");
        let second = env.post("/forgot", &[("email", email)], None).await;
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS, "{email}");
        let second = text(second).await;
        assert!(
            second.contains("did not send another") && second.contains("after"),
            "{second}"
        );
    }
    let jobs = jobs_for(&env, "alice@clinic.example").await;
    let resets = jobs.iter().filter(|(kind, _)| *kind == JobKind::SetPassword).count();
    assert_eq!(resets, 1, "one mail, not two: {jobs:?}");
}

#[tokio::test]
async fn a_used_set_password_link_offers_a_new_one_and_lists_the_rules() {
    let env = Env::new().await;
    env.store
        .accounts()
        .add_practice("Clinic", "clinic.example")
        .await
        .unwrap();
    let (_, token) = env
        .store
        .accounts()
        .add_practice_user("bob@clinic.example", "Bob", Role::Staff, "clinic.example", false, false)
        .await
        .unwrap();
    let link = format!("/password/{token}");
    let page = text(env.get(&link, None).await).await;
    assert!(page.contains("Not your email address") && page.contains("At least 8 characters"));
    let set = [("password", "Sunny-Orchard-31"), ("confirm", "Sunny-Orchard-31")];
    assert_eq!(env.post(&link, &set, None).await.status(), StatusCode::SEE_OTHER);

    let used = env.get(&link, None).await;
    assert_eq!(used.status(), StatusCode::GONE);
    let page = text(used).await;
    assert!(page.contains("already been used") && page.contains("Send me a new link"));
    assert!(!page.contains("ask the sender"));
    let _ = jobs_for(&env, "bob@clinic.example").await;

    let renewed = env.post("/link/renew", &[("token", token.as_str())], None).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert!(text(renewed).await.contains("b\u{2022}\u{2022}\u{2022}@clinic.example"));
    let jobs = jobs_for(&env, "bob@clinic.example").await;
    assert!(jobs.iter().any(|(kind, _)| *kind == JobKind::SetPassword), "{jobs:?}");
    let held = env.post("/link/renew", &[("token", token.as_str())], None).await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        jobs_for(&env, "bob@clinic.example").await.is_empty(),
        "nothing more sent"
    );
    // A made-up token sends nothing to anyone.
    let junk = env.post("/link/renew", &[("token", "nonsense")], None).await;
    assert_eq!(junk.status(), StatusCode::NOT_FOUND);
}

async fn post_practice(env: &Env, cookie: &str, fields: &[(&str, &str)]) -> axum::http::Response<axum::body::Body> {
    let csrf = csrf_for(token_of(cookie));
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    env.post("/account/profile/practice", &all, Some(cookie)).await
}

#[tokio::test]
async fn only_the_user_manager_changes_the_practice() {
    let env = Env::new().await;
    let (cookie, _) = send_message(&env).await; // Dr Alice manages the practice's users
    let page = text(env.get("/account/profile", Some(&cookie)).await).await;
    assert!(page.contains(r#"id="practice-form""#));
    let bad = post_practice(
        &env,
        &cookie,
        &[("practice_name", "Bright Smiles"), ("practice_phone", "12345")],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(text(bad).await.contains("not a phone number"));
    let saved = post_practice(
        &env,
        &cookie,
        &[
            ("practice_name", "Bright Smiles Dental Care"),
            ("practice_website", "www.brightsmiles.example"),
            ("practice_phone", "(201) 555-0100"),
            ("practice_address", "1 Main Street, Springfield"),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let page = text(saved).await;
    assert!(page.contains("(201) 555-0100") && page.contains("1 Main Street, Springfield"));
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let practice = alice.practice_id.unwrap();
    let info = env.store.accounts().practice_info(practice).await.unwrap();
    assert_eq!(info.phone.as_deref(), Some("+12015550100"));
    assert_eq!(
        env.store.accounts().practice(practice).await.unwrap().name,
        "Bright Smiles Dental Care"
    );

    // Bob, staff without the role, sees it and can't change it.
    let (_, token) = env
        .store
        .accounts()
        .add_practice_user("bob@clinic.example", "Bob", Role::Staff, "clinic.example", false, false)
        .await
        .unwrap();
    let set = [("password", "Sunny-Orchard-32"), ("confirm", "Sunny-Orchard-32")];
    let bob = super::session_cookie(&env.post(&format!("/password/{token}"), &set, None).await);
    let page = text(env.get("/account/profile", Some(&bob)).await).await;
    assert!(page.contains("Bright Smiles Dental Care") && !page.contains(r#"id="practice-form""#));
    let refused = post_practice(&env, &bob, &[("practice_name", "Bob's Practice")]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        env.store.accounts().practice(practice).await.unwrap().name,
        "Bright Smiles Dental Care"
    );
}
