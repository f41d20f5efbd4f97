//! Replies to the notification email (issue 11, item 5): through the real relay
//! into the outbox, the notification says that replying to the email is not
//! secure, links to the secure reply for its message, and carries the Reply-To
//! its practice configured; the invitation too; neither holds PHI.

use std::collections::BTreeMap;

use store::accounts::Role;

use super::harness::{Instance, link_in, set_password};
use super::secure_send::{ada_sends, canary};

const WARNING: &str = "Please do not reply to this email: a reply by email is not secure.";

fn reply_to(mail: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(mail).unwrap();
    parsed
        .reply_to()
        .and_then(|r| r.first())
        .and_then(|a| a.address())
        .map(str::to_owned)
}

fn parts(mail: &[u8]) -> (String, String) {
    let parsed = mail_parser::MessageParser::default().parse(mail).unwrap();
    (
        parsed.body_text(0).unwrap().into_owned(),
        parsed.body_html(0).unwrap().into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_warns_links_the_secure_reply_and_replies_to_the_practice_s_address() {
    let instance = Instance::start_with(|config| {
        config.outbound.notification_reply_to = Some("no-reply@example-dental.com".to_owned());
        config.outbound.practice_reply_to =
            BTreeMap::from([("smiles.example".to_owned(), "frontdesk@smiles.example".to_owned())]);
    })
    .await;
    instance.practice_with_doctor().await;
    // Bob can sign in: he gets a notification. Pat is new: an invitation.
    instance
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
    set_password(&instance, "bob@smiles.example", "Correct-Horse-42").await;
    let public = instance.config.public_url.clone();

    let secret = canary();
    ada_sends(&instance, "bob@smiles.example", &secret, b"%PDF-1.4", None).await;
    let notification = instance.wait_for_mail("bob@smiles.example", 1).await;
    assert_eq!(reply_to(&notification).as_deref(), Some("frontdesk@smiles.example"));
    let read = link_in(&notification, &format!("{public}/m/"));
    let id = read.rsplit('/').next().unwrap().to_owned();
    let reply = link_in(&notification, &format!("{public}/compose?reply="));
    assert_eq!(reply, format!("{public}/compose?reply={id}"));
    let (text, html) = parts(&notification);
    assert!(text.contains(WARNING), "{text}");
    assert!(
        html.contains(WARNING) && html.contains(&format!("href=\"{reply}\"")),
        "{html}"
    );
    let raw = String::from_utf8_lossy(&notification);
    assert!(
        !raw.contains(&secret) && !raw.contains("Lab results"),
        "PHI in the notification"
    );

    let secret = canary();
    ada_sends(&instance, "pat@example.org", &secret, b"%PDF-1.4", Some("patient")).await;
    let invitation = instance.wait_for_mail("pat@example.org", 1).await;
    assert_eq!(reply_to(&invitation).as_deref(), Some("frontdesk@smiles.example"));
    let (text, html) = parts(&invitation);
    assert!(text.contains(WARNING) && html.contains(WARNING), "{text}");
    let raw = String::from_utf8_lossy(&invitation);
    assert!(
        !raw.contains(&secret) && !raw.contains("Lab results"),
        "PHI in the invitation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_practice_address_the_default_reply_to_and_without_any_none() {
    let instance = Instance::start_with(|config| {
        config.outbound.notification_reply_to = Some("no-reply@example-dental.com".to_owned());
    })
    .await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, "pat@example.org", &canary(), b"x", Some("patient")).await;
    let mail = instance.wait_for_mail("pat@example.org", 1).await;
    assert_eq!(reply_to(&mail).as_deref(), Some("no-reply@example-dental.com"));

    let unset = Instance::start().await;
    unset.practice_with_doctor().await;
    ada_sends(&unset, "pat@example.org", &canary(), b"x", Some("patient")).await;
    let mail = unset.wait_for_mail("pat@example.org", 1).await;
    assert_eq!(reply_to(&mail), None);
    assert!(
        parts(&mail).0.contains(WARNING),
        "the warning does not depend on the address"
    );
}
