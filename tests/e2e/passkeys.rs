//! Passkeys: added and used in Chromium with its virtual authenticator, and the
//! refusals at the HTTP level (a replayed answer, a missing CSRF token).

use super::browser::{pat_is_registered, pat_vars, run_flow, texted_code};
use super::harness::{Instance, browser, csrf_in, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_passkey_added_then_signs_in_alone_even_when_password_locked() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    let output = run_flow("passkey", &pat_vars(&instance, &canary), async |what| {
        if what == "code" {
            return texted_code(&instance).await;
        }
        assert_eq!(what, "lock_account");
        // Failed password guesses from elsewhere lock the account; the passkey
        // still works (documented in README: passkeys are not guessable).
        for _ in 0..10 {
            match instance
                .store()
                .auth()
                .check_password("pat@example.org", "Wrong-Guess-1", "198.51.100.7")
                .await
            {
                Err(store::Error::Locked) => return String::new(),
                Err(store::Error::AuthFailed) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the account did not lock");
    })
    .await;
    let texts_before_passkey = output.lines().filter(|l| *l == "ask code").count();
    assert_eq!(texts_before_passkey, 1, "one code, for the password sign-in only");
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    for action in [
        "passkey.add",
        "signin.passkey",
        "signin.passkey_failure",
        "account.lock",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
    // The password stays locked: a passkey sign-in does not unlock it.
    assert!(matches!(
        instance
            .store()
            .auth()
            .check_password("pat@example.org", "Correct-Horse-42", "198.51.100.8")
            .await,
        Err(store::Error::Locked)
    ));

    // Replaying the browser's genuine answer in a new ceremony is refused.
    let assertion = output
        .lines()
        .find_map(|l| l.strip_prefix("assertion "))
        .expect("the flow printed the passkey answer");
    let http = browser();
    let start = http
        .post(instance.url("/signin/passkey/start"))
        .header("content-type", "application/json")
        .body(serde_json::json!({}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    let replay = http
        .post(instance.url("/signin/passkey/finish"))
        .header("content-type", "application/json")
        .body(assertion.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "a replayed passkey answer was accepted");
    let opens_session = replay.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str().unwrap().starts_with("sealpost_session=") && !c.to_str().unwrap().starts_with("sealpost_session=;")
    });
    assert!(!opens_session, "a replay got a session cookie");
    let inbox = http.get(instance.url("/inbox")).send().await.unwrap();
    assert!(
        !inbox.text().await.unwrap().contains(&canary),
        "the replay opened a session"
    );
    // Without any ceremony (no cookie) it is refused too.
    let bare = browser()
        .post(instance.url("/signin/passkey/finish"))
        .header("content-type", "application/json")
        .body(assertion.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_registration_needs_the_sessions_csrf_token() {
    let instance = Instance::start().await;
    pat_is_registered(&instance).await;
    let http = browser();
    let signed_in = sign_in(&http, &instance, "pat@example.org", "Correct-Horse-42", "/inbox").await;
    assert_eq!(signed_in.status(), 200);
    assert_eq!(signed_in.url().path(), "/inbox");
    let page = http.get(instance.url("/account/passkeys")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_in(&page.text().await.unwrap());
    let forged = http
        .post(instance.url("/account/passkeys/register/start"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "csrf": "0".repeat(64) }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let genuine = http
        .post(instance.url("/account/passkeys/register/start"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "csrf": csrf }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(genuine.status(), 200);
    let options: serde_json::Value = serde_json::from_str(&genuine.text().await.unwrap()).unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    // Signed out, the endpoint does not hand out options.
    let anonymous = browser()
        .post(instance.url("/account/passkeys/register/start"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "csrf": csrf }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.url().path(), "/signin", "sent to sign in");
    assert!(!anonymous.text().await.unwrap().contains("publicKey"));
}
