//! Which time zone pages use: the profile's, else the browser's cookie (only
//! a zone the tz database knows), else the server's; and the profile form.

use axum::http::StatusCode;

use super::{Env, send_message, text, token_of};
use crate::csrf::csrf_for;
use crate::time::server_zone;

#[tokio::test]
async fn profile_then_browser_then_server_and_bad_values_are_refused() {
    let env = Env::new().await;
    let (cookie, _) = send_message(&env).await;
    let page = |extra: &'static str| {
        let cookie = format!("{cookie}{extra}");
        let env = &env;
        async move {
            text(env.get("/account/profile", Some(&cookie)).await)
                .await
                .replace("&#39;", "'")
        }
    };
    let server = page("").await;
    assert!(server.contains("the server's time zone") && server.contains(server_zone().name()));
    let browser = page("; sealpost_tz=Asia/Tokyo").await;
    assert!(browser.contains("your browser's time zone, <strong>Asia/Tokyo</strong>"));
    for bad in [
        "; sealpost_tz=../../etc/passwd",
        "; sealpost_tz=Mars/Base",
        "; sealpost_tz=%3Cb%3E",
    ] {
        assert!(page(bad).await.contains("the server's time zone"), "{bad}");
    }
    // The sent list's times follow the browser's zone, named.
    let sent = text(
        env.get("/sent", Some(&format!("{cookie}; sealpost_tz=Asia/Tokyo")))
            .await,
    )
    .await;
    assert!(sent.contains(" JST</time>") && sent.contains("+09:00\""), "{sent}");

    let csrf = csrf_for(token_of(&cookie));
    let refused = env
        .post(
            "/account/profile",
            &[("csrf", &csrf), ("time_zone", "Mars/Base")],
            Some(&cookie),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(text(refused).await.contains("Please choose a time zone from the list."));
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.profile.time_zone, None);

    let saved = env
        .post(
            "/account/profile",
            &[("csrf", &csrf), ("time_zone", "America/Chicago")],
            Some(&cookie),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(text(saved).await.contains("Saved."));
    // The profile's zone wins over the browser's.
    let chosen = page("; sealpost_tz=Asia/Tokyo").await;
    assert!(chosen.contains("the time zone you chose, <strong>America/Chicago</strong>"));
    let sent = text(
        env.get("/sent", Some(&format!("{cookie}; sealpost_tz=Asia/Tokyo")))
            .await,
    )
    .await;
    assert!(sent.contains(" CST</time>"), "{sent}");
    // Cleared: the browser's again.
    env.post("/account/profile", &[("csrf", &csrf), ("time_zone", "")], Some(&cookie))
        .await;
    assert!(
        page("; sealpost_tz=Asia/Tokyo")
            .await
            .contains("<strong>Asia/Tokyo</strong>")
    );
}
