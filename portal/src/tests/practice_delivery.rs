//! The practice's secure-delivery page (`/practice/delivery`): only its User
//! Manager sees it and changes it, the change needs the session's CSRF token,
//! and it is in the audit log; it is off until turned on.

use axum::http::StatusCode;
use store::accounts::Role;

use super::{Env, location, session_cookie, text, token_of};
use crate::csrf::csrf_for;

/// A user of clinic.example with a password, and their session cookie.
async fn session(env: &Env, email: &str, manager: bool) -> (store::accounts::User, String) {
    let (user, token) = env
        .store
        .accounts()
        .add_practice_user(email, "Someone", Role::Staff, "clinic.example", true, manager)
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
    (user, session_cookie(&response))
}

#[tokio::test]
async fn only_the_user_manager_turns_direct_delivery_on_with_the_csrf_token_and_it_is_audited() {
    let env = Env::new().await;
    env.store
        .accounts()
        .add_practice("Bright Smiles Dental", "clinic.example")
        .await
        .unwrap();
    let (manager, um) = session(&env, "um@clinic.example", true).await;
    let (staff, bob) = session(&env, "bob@clinic.example", false).await;
    let practice = manager.practice_id.unwrap();
    assert!(
        !env.store.accounts().practice_direct_delivery(practice).await.unwrap(),
        "off by default"
    );

    // Staff: neither the page nor the form exist for them.
    assert_eq!(
        env.get("/practice/delivery", Some(&bob)).await.status(),
        StatusCode::NOT_FOUND
    );
    let response = env
        .post(
            "/practice/delivery",
            &[("csrf", &csrf_for(token_of(&bob))), ("direct", "on")],
            Some(&bob),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // And the store refuses them too, whatever the caller.
    assert!(
        env.store
            .accounts()
            .set_practice_direct_delivery(&staff, true, "test")
            .await
            .is_err()
    );
    // Signed out: sent to sign in.
    let response = env.get("/practice/delivery", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/signin"), "{}", location(&response));

    let page = text(env.get("/practice/delivery", Some(&um)).await).await;
    assert!(
        page.contains("Deliver secure mail directly to partners over verified TLS"),
        "{page}"
    );
    assert!(page.contains(r#"value="off" checked"#), "off is chosen: {page}");

    // The User Manager's session without its token: refused, nothing changes.
    let response = env.post("/practice/delivery", &[("direct", "on")], Some(&um)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = env
        .post(
            "/practice/delivery",
            &[("csrf", &csrf_for(token_of(&bob))), ("direct", "on")],
            Some(&um),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "another session's token");
    assert!(!env.store.accounts().practice_direct_delivery(practice).await.unwrap());

    let csrf = csrf_for(token_of(&um));
    let response = env
        .post("/practice/delivery", &[("csrf", &csrf), ("direct", "maybe")], Some(&um))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = env
        .post("/practice/delivery", &[("csrf", &csrf), ("direct", "on")], Some(&um))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/practice/delivery");
    assert!(env.store.accounts().practice_direct_delivery(practice).await.unwrap());
    let page = text(env.get("/practice/delivery", Some(&um)).await).await;
    assert!(page.contains(r#"value="on" checked"#), "{page}");

    let audit = env.store.audit_log().recent_audit(5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|(actor, action, object)| actor == &format!("user:{}", manager.id)
                && action == "practice.direct_delivery"
                && object == &format!("practice:{}/on", practice.0)),
        "{audit:?}"
    );
    // Staff's refused attempt wrote nothing.
    assert!(
        !audit
            .iter()
            .any(|(actor, action, _)| actor == &format!("user:{}", staff.id) && action == "practice.direct_delivery"),
        "{audit:?}"
    );
}
