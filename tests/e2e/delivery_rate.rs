//! Per-destination rate limits against a real receiving MTA (smtp-sink): with
//! `outbound.rate_limits` at two a minute for partner.example, three mails to
//! it go two now and the third once the minute is over (the test moves the
//! clock) — postponed, not failed, and not counted as an attempt — while
//! another domain is not held up.

use super::delivery_mx::{MESSAGE, ZONE, mx_instance, wait_until};
use super::mx_peers::{Knot, Sink, free_port};
use super::secure_send::send_via_relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_message_in_a_minute_to_a_limited_domain_waits_for_the_next() {
    let knot = Knot::start("example.", ZONE).await;
    let port = free_port(&["127.0.0.2", "127.0.0.4"]);
    let partner = Sink::start("127.0.0.2", port, &[]).await;
    let v4 = Sink::start("127.0.0.4", port, &[]).await;
    let instance = mx_instance(&knot, port, |c| {
        c.outbound.rate_limits.insert("partner.example".into(), 2);
    })
    .await;
    let to = [
        "a@partner.example",
        "b@partner.example",
        "c@partner.example",
        "d@v4only.example",
        "e@v4only.example",
        "f@v4only.example",
    ];
    send_via_relay(&instance, "staff@smiles.example", &to, MESSAGE)
        .await
        .unwrap();
    assert_eq!(v4.wait_for(3).await.len(), 3, "an unlimited domain gets all three");
    assert_eq!(partner.wait_for(2).await.len(), 2);
    let store = std::sync::Arc::clone(instance.store());
    wait_until("five are recorded as sent", async || {
        store.queue().outbound_counts().await.unwrap() == (1, 5, 0)
    })
    .await;
    // The third waits for the next minute: not failed, no attempt counted.
    let waiting = store.queue().list_outbound(false, 10).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert!(waiting[0].rcpt_to.ends_with("@partner.example"));
    assert_eq!(waiting[0].attempts, 0, "{waiting:?}");
    assert_eq!(waiting[0].last_error, None);
    assert_eq!(waiting[0].next_attempt_at, store.now() + 60);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(partner.mails().len(), 2, "still waiting while the clock stands");

    instance.clock.advance(60);
    assert_eq!(partner.wait_for(3).await.len(), 3);
    wait_until("all six are recorded as sent", async || {
        store.queue().outbound_counts().await.unwrap() == (0, 6, 0)
    })
    .await;
    let mut rcpts: Vec<String> = partner
        .mails()
        .iter()
        .filter_map(|mail| mail.lines().find(|l| l.starts_with("X-Rcpt-Args: ")).map(str::to_owned))
        .collect();
    rcpts.sort();
    assert_eq!(rcpts.len(), 3, "each once: {rcpts:?}");
    rcpts.dedup();
    assert_eq!(rcpts.len(), 3, "each once: {rcpts:?}");
}
