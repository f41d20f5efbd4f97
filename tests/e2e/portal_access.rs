//! Who may see what in the portal: invitation tokens (wrong, reused, expired) and
//! one user reaching for another's message or attachment.

use super::harness::{Instance, browser, finish_two_step, link_in, register_form};
use super::secure_send::{ada_sends, canary};

/// Registers `to` from the invitation in their newest mail; returns a signed-in client.
async fn register(instance: &Instance, to: &str, mails_before: usize) -> (reqwest::Client, String) {
    let mail = instance.wait_for_mail(to, mails_before + 1).await;
    let invite = link_in(&mail, &format!("{}/m/", instance.config.public_url));
    let http = browser();
    let reply = register_form(&http, instance, &invite, "Some Patient", "201 555 0100").await;
    assert_eq!(reply.status(), 200);
    let set = instance.wait_for_mail(to, mails_before + 2).await;
    let link = link_in(&set, &format!("{}/password/", instance.config.public_url));
    let done = http
        .post(instance.reachable(&link))
        .form(&[("password", "Patient-Pass-1"), ("confirm", "Patient-Pass-1")])
        .send()
        .await
        .unwrap();
    let done = finish_two_step(&http, instance, done).await;
    assert_eq!(done.status(), 200);
    (http, invite.split('?').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_tokens_wrong_reused_and_expired_are_refused() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    ada_sends(&instance, "p1@example.org", &canary, b"a", Some("patient")).await;
    let mail = instance.wait_for_mail("p1@example.org", 1).await;
    let invite = link_in(&mail, &format!("{}/m/", instance.config.public_url));
    let message_url = invite.split('?').next().unwrap().to_owned();
    let http = browser();
    let wrong = http
        .get(instance.reachable(&format!(
            "{message_url}?invite=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    assert!(!wrong.text().await.unwrap().contains(&canary));
    // Without an invitation or a session: sent to sign in, never shown the message.
    let anonymous = http.get(instance.reachable(&message_url)).send().await.unwrap();
    assert!(anonymous.url().path().starts_with("/signin"), "{}", anonymous.url());
    assert!(!anonymous.text().await.unwrap().contains(&canary));

    // Expired: a second recipient waits past the invitation's 30 days.
    ada_sends(&instance, "p2@example.org", &canary, b"b", Some("patient")).await;
    let late = link_in(
        &instance.wait_for_mail("p2@example.org", 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    instance.clock.advance(31 * 86_400);
    let expired = http.get(instance.reachable(&late)).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    let post = register_form(&http, &instance, &late, "Late Patient", "201 555 0101").await;
    assert_eq!(post.status(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_recipient_whose_link_lapsed_gets_a_fresh_one_with_the_next_message() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, "p1@example.org", "one", b"1", Some("patient")).await;
    let invite = link_in(
        &instance.wait_for_mail("p1@example.org", 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    let http = browser();
    register_form(&http, &instance, &invite, "Slow Patient", "201 555 0102").await;
    let lapsed = link_in(
        &instance.wait_for_mail("p1@example.org", 2).await,
        &format!("{}/password/", instance.config.public_url),
    );
    instance.clock.advance(2 * 86_400);
    assert_eq!(
        http.get(instance.reachable(&lapsed)).send().await.unwrap().status(),
        410
    );

    ada_sends(&instance, "p1@example.org", "two", b"2", None).await;
    let fresh = link_in(
        &instance.wait_for_mail("p1@example.org", 3).await,
        &format!("{}/password/", instance.config.public_url),
    );
    let done = http
        .post(instance.reachable(&fresh))
        .form(&[("password", "Patient-Pass-2"), ("confirm", "Patient-Pass-2")])
        .send()
        .await
        .unwrap();
    let done = finish_two_step(&http, &instance, done).await;
    assert_eq!(done.status(), 200);
    assert!(
        done.url().path().starts_with("/m/"),
        "lands on the new message: {}",
        done.url()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_reach_another_users_message_or_attachment() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    ada_sends(&instance, "p1@example.org", &canary, b"mine", Some("patient")).await;
    let (owner, owner_message) = register(&instance, "p1@example.org", 0).await;
    // Setting the password opened the message; a second one arrives unread.
    ada_sends(&instance, "p1@example.org", "second", b"2", None).await;
    instance.wait_for_mail("p1@example.org", 3).await;
    let inbox = owner
        .get(instance.url("/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        inbox.matches(">New<").count(),
        1,
        "exactly the second message is unread"
    );
    assert!(inbox.contains(&canary), "the inbox lists the subject");
    assert_eq!(
        owner
            .get(instance.reachable(&owner_message))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    ada_sends(&instance, "p2@example.org", "other", b"theirs", Some("patient")).await;
    let (intruder, _) = register(&instance, "p2@example.org", 0).await;
    let page = intruder.get(instance.reachable(&owner_message)).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(!page.text().await.unwrap().contains(&canary));
    let file = intruder
        .get(instance.reachable(&format!("{owner_message}/a/0")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 404);
    // Guessing ids and indexes gets the same answer as a missing message.
    let missing = intruder
        .get(instance.url("/m/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let out_of_range = owner
        .get(instance.reachable(&format!("{owner_message}/a/7")))
        .send()
        .await
        .unwrap();
    assert_eq!(out_of_range.status(), 404);
    let inbox = intruder
        .get(instance.url("/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!inbox.contains(&canary));
}
