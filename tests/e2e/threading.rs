//! Reply threading: a reply without the secure marker, sent by Outlook-like
//! clients (lettre) over the submission port or through the relay, stays
//! secure when it names a sealed message in In-Reply-To or References; an
//! outsider naming the conversation is refused; ordinary mail passes. Also the
//! Microsoft 365 tenant check on the relay port.

use lettre::AsyncTransport;
use lettre::address::Envelope;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;

use super::harness::{Instance, browser, files_containing, link_in, logs, set_password, sign_in, submission_client};
use super::secure_send::{ada_sends, canary, secure_message, send_via_relay};

const ADA: &str = "ada@smiles.example";
const PAT: &str = "pat@example.org";

/// The Message-ID of a built message, without brackets.
fn message_id_of(message: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(message)
        .and_then(|m| m.message_id().map(str::to_owned))
        .expect("a Message-ID")
}

/// An unmarked reply, the way a mail client writes it.
fn reply(from: &str, to: &str, own_id: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(to)
        .subject("Re: Lab results")
        .message_id(own_id);
    for (name, value) in headers {
        builder = builder.header(*name, Raw::new(value.clone()));
    }
    builder.text_body(body).write_to_vec().unwrap()
}

/// Ada sends a secure message to `to`; returns the message's Message-ID.
async fn ada_sends_secure(instance: &Instance, to: &str) -> String {
    let original = secure_message(to, &canary(), b"report", Some("patient"));
    let id = message_id_of(&original);
    send_via_relay(instance, ADA, &[to], &original)
        .await
        .expect("accepted with 250");
    id
}

/// `email` becomes an active account with an app password for their mail client.
async fn app_password(instance: &Instance, email: &str) -> String {
    set_password(instance, email, "Patient-Pass-55").await;
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    instance
        .store()
        .auth()
        .create_app_password(&user, "Outlook", "test")
        .await
        .unwrap()
}

async fn submit(
    instance: &Instance,
    user: &str,
    password: &str,
    to: &[&str],
    message: &[u8],
) -> Result<(), lettre::transport::smtp::Error> {
    let envelope = Envelope::new(
        Some(user.parse().unwrap()),
        to.iter().map(|t| t.parse().unwrap()).collect(),
    )
    .unwrap();
    submission_client(instance, user, password)
        .send_raw(&envelope, message)
        .await
        .map(|_| ())
}

fn assert_sealed_everywhere(instance: &Instance, canary: &str) {
    let leaked = files_containing(instance.dir.path(), canary.as_bytes());
    assert!(leaked.is_empty(), "reply canary in clear in {leaked:?}");
    assert!(!logs().contains(canary), "reply canary in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_without_the_marker_stay_secure_both_ways() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, "Doctor-Pass-77").await;
    let original_id = ada_sends_secure(&instance, PAT).await;
    instance.wait_for_mail(PAT, 1).await;

    // The patient (a free account) answers from a mail client over the
    // submission port: no marker, In-Reply-To and References name the original.
    let pat_password = app_password(&instance, PAT).await;
    let pat_canary = canary();
    let pat_reply_id = "reply-1.pat@example.org";
    let message = reply(
        PAT,
        ADA,
        pat_reply_id,
        &[
            ("In-Reply-To", format!("<{original_id}>")),
            ("References", format!("<{original_id}>")),
        ],
        &format!("Thanks, my answer is {pat_canary}.\r\n"),
    );
    submit(&instance, PAT, &pat_password, &[ADA], &message)
        .await
        .expect("a reply in the conversation is accepted");

    // Ada gets a notification, not the reply.
    let notification = instance.wait_for_mail(ADA, 1).await;
    let text = String::from_utf8_lossy(&notification).into_owned();
    assert!(!text.contains(&pat_canary), "the notification leaks the reply");
    assert!(text.contains("sent you a secure message"), "{text}");
    assert_sealed_everywhere(&instance, &pat_canary);

    // ...and reads it in the portal: in her inbox, then opened.
    let http = browser();
    let inbox = sign_in(&http, &instance, ADA, "Doctor-Pass-77", "/inbox")
        .await
        .text()
        .await
        .unwrap();
    assert!(inbox.contains(PAT), "the reply is in the inbox");
    let link = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    let page = http
        .get(instance.reachable(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&pat_canary), "Ada reads the reply in the portal");

    // Ada answers through the practice's relay, also without the marker, and
    // her client sets only References (root, then the patient's reply).
    let ada_canary = canary();
    let message = reply(
        ADA,
        PAT,
        "reply-2.ada@smiles.example",
        &[("References", format!("<{original_id}>\r\n <{pat_reply_id}>"))],
        &format!("See you Tuesday, {ada_canary}.\r\n"),
    );
    send_via_relay(&instance, ADA, &[PAT], &message)
        .await
        .expect("accepted");
    let second = instance.wait_for_mail(PAT, 2).await;
    assert!(!String::from_utf8_lossy(&second).contains(&ada_canary));
    assert_sealed_everywhere(&instance, &ada_canary);
    let patient = instance.store().accounts().user_by_email(PAT).await.unwrap().unwrap();
    assert_eq!(instance.store().mail().inbox(&patient, 10).await.unwrap().len(), 2);
    // Participants needed no role question.
    assert_eq!(instance.outbox_for(ADA).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_naming_a_secure_conversation_are_refused() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let original_id = ada_sends_secure(&instance, PAT).await;
    instance.wait_for_mail(PAT, 1).await;
    let thread = [("In-Reply-To", format!("<{original_id}>"))];

    // Mallory has an account (she was written to once) but is not in this
    // conversation.
    ada_sends(&instance, "mallory@example.net", &canary(), b"x", Some("patient")).await;
    instance.wait_for_mail("mallory@example.net", 1).await;
    let mallory_password = app_password(&instance, "mallory@example.net").await;
    let leak = canary();
    let message = reply("mallory@example.net", ADA, "m1@example.net", &thread, &leak);
    let error = submit(&instance, "mallory@example.net", &mallory_password, &[ADA], &message)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(error.is_permanent() && text.contains("5.7.1"), "{text}");
    assert!(text.contains("not part of"), "{text}");

    // The patient may reply, but not pull a stranger into the conversation.
    let pat_password = app_password(&instance, PAT).await;
    let message = reply(PAT, "stranger@example.com", "p1@example.org", &thread, &leak);
    let error = submit(&instance, PAT, &pat_password, &[ADA, "stranger@example.com"], &message)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(error.is_permanent() && text.contains("5.7.1"), "{text}");
    assert!(text.contains("stranger@example.com"), "{text}");

    // Through the relay, an address that is not in the conversation is refused too.
    let message = reply("bob@smiles.example", PAT, "b1@smiles.example", &thread, &leak);
    let error = send_via_relay(&instance, "bob@smiles.example", &[PAT], &message)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("5.7.1"), "{error}");

    assert!(instance.outbox_for("stranger@example.com").is_empty());
    assert_eq!(instance.outbox_for(PAT).len(), 1, "nothing more reached the patient");
    assert!(files_containing(instance.dir.path(), leak.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_mail_over_submission_passes_through() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends_secure(&instance, PAT).await;
    let password = app_password(&instance, ADA).await;
    // No marker, and a reply to a message the gateway never sealed.
    let message = reply(
        ADA,
        "vendor@example.com",
        "lunch@smiles.example",
        &[("In-Reply-To", "<menu-42@vendor.example.com>".to_owned())],
        "Two sandwiches, please.\r\n",
    );
    submit(&instance, ADA, &password, &["vendor@example.com"], &message)
        .await
        .expect("ordinary mail is accepted");
    let delivered = instance.wait_for_mail("vendor@example.com", 1).await;
    let text = String::from_utf8_lossy(&delivered);
    assert!(text.contains("Two sandwiches, please."), "{text}");
    assert!(text.contains("In-Reply-To: <menu-42@vendor.example.com>"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_is_no_open_relay_for_free_accounts_or_other_senders() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends_secure(&instance, PAT).await;
    instance.wait_for_mail(PAT, 1).await;

    // The patient's free account may reply in its conversations, not send
    // ordinary mail to anyone through the gateway.
    let pat_password = app_password(&instance, PAT).await;
    let message = reply(PAT, "friend@example.com", "spam-1@example.org", &[], "Cheap pills\r\n");
    let error = submit(&instance, PAT, &pat_password, &["friend@example.com"], &message)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(error.is_permanent() && text.contains("5.7.1"), "{text}");
    assert!(text.contains("only replies"), "{text}");

    // A paid practice user sends ordinary mail only as herself.
    let ada_password = app_password(&instance, ADA).await;
    let message = reply(
        "ceo@smiles.example",
        "vendor@example.com",
        "x1@smiles.example",
        &[],
        "Pay this invoice\r\n",
    );
    let error = submit(&instance, ADA, &ada_password, &["vendor@example.com"], &message)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(error.is_permanent() && text.contains("5.7.1"), "{text}");
    assert!(text.contains("not yours"), "{text}");

    assert!(instance.outbox_for("friend@example.com").is_empty());
    assert!(instance.outbox_for("vendor@example.com").is_empty());
}

/// An ordinary message as Exchange Online would relay it from `tenant`.
fn from_tenant(tenants: &[&str]) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(ADA)
        .to("vendor@example.com")
        .subject("Order");
    for tenant in tenants {
        builder = builder.header("X-MS-Exchange-CrossTenant-Id", Raw::new(*tenant));
    }
    builder.text_body("One box of gloves.\r\n").write_to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_tenant_id_admits_only_that_tenant() {
    const OURS: &str = "335836de-42ef-43a2-b145-348c2ee9ca5b";
    const THEIRS: &str = "f7a17af6-1c5c-4a36-aa8b-f5be247aa4ba";
    let instance = Instance::start_with(|config| {
        config.smtp.relay_tenant_id = Some(OURS.to_ascii_uppercase());
    })
    .await;
    let to = ["vendor@example.com"];
    send_via_relay(&instance, ADA, &to, &from_tenant(&[OURS]))
        .await
        .expect("our tenant relays");
    for (tenants, case) in [
        (&[THEIRS][..], "another tenant"),
        (&[][..], "no tenant header"),
        (&[OURS, THEIRS][..], "a forged second header"),
    ] {
        let error = send_via_relay(&instance, ADA, &to, &from_tenant(tenants))
            .await
            .expect_err(case);
        let text = error.to_string();
        assert!(error.is_permanent() && text.contains("5.7.1"), "{case}: {text}");
        assert!(text.contains("X-MS-Exchange-CrossTenant-Id"), "{case}: {text}");
    }
    instance.wait_for_mail("vendor@example.com", 1).await;
    assert_eq!(instance.outbox_for("vendor@example.com").len(), 1);

    // Without the setting nothing changes: no header needed.
    let open = Instance::start().await;
    send_via_relay(&open, ADA, &to, &from_tenant(&[]))
        .await
        .expect("no tenant check configured");
}
