//! The message lists a page at a time: bounds on `page` and `limit`, and the
//! "Newer" / "Older" links leading through every message once.

use axum::http::StatusCode;

use super::{Env, MESSAGE, send_message, text};

/// The message ids a list page links to, in order.
fn ids(page: &str) -> Vec<String> {
    page.split("<a href=\"/m/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// An attribute value as the browser reads it (askama escapes `&`).
fn unescape(html: &str) -> String {
    html.replace("&#38;", "&").replace("&amp;", "&")
}

#[tokio::test]
async fn sent_list_pages_through_every_message_once() {
    let env = Env::new().await;
    let (cookie, first) = send_message(&env).await;
    let alice = env
        .store
        .accounts()
        .user_by_email("alice@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let mut sent = vec![first];
    for _ in 0..2 {
        let mut writer = env.store.queue().spool_writer().await.unwrap();
        writer.write(MESSAGE.as_bytes()).await.unwrap();
        let spooled = writer.finish().await.unwrap();
        let rcpt = ["pat@example.com".to_owned()];
        env.store
            .queue()
            .accept_secure(&spooled, "alice@clinic.example", &rcpt, alice.id)
            .await
            .unwrap();
        env.store.mail().seal_spooled(&spooled.id).await.unwrap();
        sent.push(spooled.id.to_string());
    }

    let all = text(env.get("/sent", Some(&cookie)).await).await;
    assert_eq!(ids(&all).len(), 3);
    assert!(!all.contains("Older messages") && !all.contains("Newer messages"));

    let mut seen = Vec::new();
    let mut next = Some("/sent?limit=2".to_owned());
    let mut pages = 0;
    while let Some(uri) = next.take() {
        let response = env.get(&uri, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let page = text(response).await;
        seen.extend(ids(&page));
        pages += 1;
        assert_eq!(page.contains("Newer messages"), pages > 1, "{uri}");
        next = page
            .split("<a href=\"")
            .filter_map(|rest| rest.split_once('"'))
            .find(|(_, after)| after.starts_with(" rel=\"next\""))
            .map(|(link, _)| unescape(link));
    }
    assert_eq!(pages, 2);
    seen.sort();
    sent.sort();
    assert_eq!(seen, sent, "each message once");

    let beyond = text(env.get("/sent?page=9&limit=2", Some(&cookie)).await).await;
    assert!(beyond.contains("There are no more messages.") && unescape(&beyond).contains("/sent?page=8&limit=2"));
    for bad in ["/sent?page=0", "/sent?page=x", "/inbox?limit=201", "/inbox?limit=-5"] {
        let response = env.get(bad, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(text(response).await.contains("must be a whole number"), "{bad}");
    }
}
