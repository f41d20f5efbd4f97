//! A message whose HTML nests 60,000 `<div>`s (660 KB), opened twice at once
//! (issue 9, finding 4): the portal does not hand it to the sanitiser (whose
//! cost grows with the square of the depth) but says it is too complex and
//! shows the text part, and SMTP, IMAP and the portal keep answering.

use std::time::{Duration, Instant};

use super::harness::{Instance, RawSmtp, browser, sign_in};
use super::imap::setup;
use super::imap_robustness::plant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_deep_html_is_not_sanitised_and_every_listener_answers() {
    let instance = Instance::start().await;
    let (_, _bob_pw) = setup(&instance).await;
    let html = format!(
        "<html><body>{}Deep hello{}</body></html>",
        "<div>".repeat(60_000),
        "</div>".repeat(60_000)
    );
    assert!(html.len() > 660_000, "{}", html.len());
    let mail = format!(
        "From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: bob@smiles.example\r\nSubject: layout\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words for Bob.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
    );
    let id = plant(&instance, mail.as_bytes()).await;

    let http = browser();
    let inbox = sign_in(&http, &instance, "bob@smiles.example", "Staff-Pass-77", "/inbox").await;
    assert_eq!(inbox.status(), 200);
    let page_url = instance.url(&format!("/m/{id}"));
    let started = Instant::now();
    let open = || {
        let http = http.clone();
        let url = page_url.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    // Twice at once, and meanwhile the other listeners.
    let others = async {
        let bound = Duration::from_secs(10);
        let mut smtp = tokio::time::timeout(bound, RawSmtp::connect(instance.relay()))
            .await
            .expect("SMTP greets in time");
        smtp.cmd("QUIT", "221").await;
        let signin = tokio::time::timeout(bound, browser().get(instance.url("/signin")).send())
            .await
            .expect("portal answers in time")
            .unwrap();
        assert_eq!(signin.status(), 200);
        let mut imap = tokio::time::timeout(bound, tokio::net::TcpStream::connect(instance.running.addresses.imap))
            .await
            .expect("IMAP accepts in time")
            .unwrap();
        let mut greeting = [0u8; 4];
        tokio::time::timeout(bound, tokio::io::AsyncReadExt::read_exact(&mut imap, &mut greeting))
            .await
            .expect("IMAP greets in time")
            .unwrap();
        assert_eq!(&greeting, b"* OK");
    };
    let (first, second, ()) = tokio::join!(open(), open(), others);
    let elapsed = started.elapsed();
    for page in [&first, &second] {
        assert!(
            page.contains("too complex to show here"),
            "{}",
            &page[..page.len().min(2000)]
        );
        assert!(page.contains("Plain words for Bob."));
        assert!(!page.contains("Deep hello"), "the deep HTML is not shown");
    }
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}
