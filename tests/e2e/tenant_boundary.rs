//! The practice boundary (DESIGN.md, "Who is trusted with what"): nothing one
//! practice sends, sets or clicks changes another practice's people or
//! invitations; recipients see what a normal mail system shows them (never Bcc,
//! never `X-Sealpost-*`); expiry and hiding end access at once; the contacts
//! API and the add-in's key answer sending accounts only. Relay sources:
//! `relay_sources.rs` and `relay_accounts.rs`.

use std::process::Command;

use lettre::AsyncTransport;
use lettre::address::Envelope;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use store::accounts::Role;

use super::harness::{Instance, browser, csrf_in, link_in, set_password, sign_in, submission_client};
use super::secure_send::{canary, send_via_relay};

pub(super) const ADA: &str = "ada@smiles.example";
pub(super) const CAROL: &str = "carol@other.example";

/// A secure message from `from` to `to` (all in To), with roles for the add-in's header.
pub(super) fn secure(from: &str, to: &[&str], roles: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(to.to_vec())
        .subject("Results")
        .header("X-Sealpost-Secure", Raw::new("1"));
    if !roles.is_empty() {
        let header = roles
            .iter()
            .map(|(a, r)| format!("{a} {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        builder = builder.header("X-Sealpost-Role", Raw::new(header));
    }
    builder.text_body(body).write_to_vec().unwrap()
}

/// Sends over the submission port as `user` (an app password), envelope to `to`.
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

/// A second practice, Other Clinic (other.example), with its paid doctor Carol.
pub(super) async fn other_practice(instance: &Instance) -> store::accounts::User {
    instance
        .store()
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    instance
        .store()
        .accounts()
        .add_practice_user(CAROL, "Dr Carol", Role::Doctor, "other.example", true, false)
        .await
        .unwrap()
        .0
}

async fn app_password_of(instance: &Instance, email: &str) -> String {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    instance
        .store()
        .auth()
        .create_app_password(&user, "Outlook", "test")
        .await
        .unwrap()
}

/// An app password of Bob, unpaid staff of Smiles Dental.
async fn unpaid_staff_app_password(instance: &Instance) -> String {
    let store = instance.store();
    let (bob, _) = store
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
    store.auth().create_app_password(&bob, "Outlook", "test").await.unwrap()
}

/// Waits until `email`'s messages (any state) number `count`.
async fn wait_recipient_of(instance: &Instance, email: &str, count: usize) -> store::accounts::User {
    for _ in 0..300 {
        if let Some(user) = instance.store().accounts().user_by_email(email).await.unwrap()
            && instance.store().queue().pending_spool().await.unwrap().is_empty()
            && instance.outbox_for(email).len() >= count
        {
            return user;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{email} was never written to {count} time(s)");
}

/// Ada (User Manager of Smiles Dental) signed in to Manage Users; the page's CSRF token.
async fn ada_manages(instance: &Instance) -> (reqwest::Client, String) {
    set_password(instance, ADA, "Doctor-Pass-77").await;
    let http = browser();
    let page = sign_in(&http, instance, ADA, "Doctor-Pass-77", "/practice/users").await;
    assert_eq!(page.url().path(), "/practice/users");
    let csrf = csrf_in(&page.text().await.unwrap());
    (http, csrf)
}

async fn manage(
    http: &reqwest::Client,
    instance: &Instance,
    id: store::ids::UserId,
    form: &[(&str, &str)],
) -> (u16, String) {
    let reply = http
        .post(instance.url(&format!("/practice/users/{}", id.0)))
        .form(form)
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// Issue 8 #1, step by step: practice B writes to a patient who has not
/// registered; practice A writes to the same address with the in-practice role
/// header; A's User Manager edits the address to one A controls. The patient
/// must stay out of A's practice, and the edit must fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_practice_cannot_take_over_an_invited_recipient() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    other_practice(&instance).await;
    let ada_pw = app_password_of(&instance, ADA).await;
    let carol_pw = app_password_of(&instance, CAROL).await;
    let pat = "pat@example.org";

    // B (Other Clinic) writes to the patient.
    let b_canary = canary();
    submit(
        &instance,
        CAROL,
        &carol_pw,
        &[pat],
        &secure(CAROL, &[pat], &[(pat, "patient")], &format!("HIV results {b_canary}")),
    )
    .await
    .expect("B's message is accepted");
    let b_invite = instance.wait_for_mail(pat, 1).await;
    // A (Smiles Dental) writes to the same address, claiming a doctor in A.
    submit(
        &instance,
        ADA,
        &ada_pw,
        &[pat],
        &secure(ADA, &[pat], &[(pat, "doctor_in_practice")], "hello"),
    )
    .await
    .expect("A's message is accepted");
    let person = wait_recipient_of(&instance, pat, 2).await;
    assert_eq!(person.practice_id, None, "the role header moved B's recipient into A");
    assert_eq!(
        person.role,
        Role::Patient,
        "the role header changed B's recipient's role"
    );

    // A's User Manager tries to change the address and re-invite: not A's person.
    let (http, csrf) = ada_manages(&instance).await;
    // Setting Ada's password from a link revoked her app passwords: a new one.
    let ada_pw = app_password_of(&instance, ADA).await;
    let list = http
        .get(instance.url("/practice/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(pat), "B's recipient is listed in A's Manage Users");
    let (status, body) = manage(
        &http,
        &instance,
        person.id,
        &[
            ("csrf", csrf.as_str()),
            ("action", "edit"),
            ("email", "attacker@evil.example"),
            ("phone", ""),
        ],
    )
    .await;
    assert_eq!(status, 404, "A's manager edited B's recipient: {body}");
    let (status, _) = manage(
        &http,
        &instance,
        person.id,
        &[("csrf", csrf.as_str()), ("action", "reinvite")],
    )
    .await;
    assert_eq!(status, 404);
    let after = instance.store().accounts().user(person.id).await.unwrap();
    assert_eq!(after.email, pat);
    assert!(instance.outbox_for("attacker@evil.example").is_empty());
    // B's invitation still works for the patient.
    let link = link_in(&b_invite, &format!("{}/m/", instance.config.public_url));
    assert_eq!(
        browser().get(instance.reachable(&link)).send().await.unwrap().status(),
        200
    );

    // Also when B has not chosen the role yet (its message waits for it): A's
    // header does not make the person A's.
    let pat2 = "pat2@example.org";
    submit(&instance, CAROL, &carol_pw, &[pat2], &secure(CAROL, &[pat2], &[], "x"))
        .await
        .unwrap();
    for _ in 0..300 {
        if instance.store().queue().pending_spool().await.unwrap().is_empty()
            && instance.store().accounts().user_by_email(pat2).await.unwrap().is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    submit(
        &instance,
        ADA,
        &ada_pw,
        &[pat2],
        &secure(ADA, &[pat2], &[(pat2, "staff_in_practice")], "y"),
    )
    .await
    .unwrap();
    let person2 = wait_recipient_of(&instance, pat2, 1).await;
    assert_eq!(
        person2.practice_id, None,
        "an unanswered role question let A claim B's recipient"
    );
    assert_eq!(person2.role, Role::Unknown);
}

/// Issue 8 #1, the User Manager's side: a person A invited into A, who also has
/// a message from B waiting, is not A's to edit or re-invite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_cannot_move_another_practices_pending_invitation() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    other_practice(&instance).await;
    let ada_pw = app_password_of(&instance, ADA).await;
    let carol_pw = app_password_of(&instance, CAROL).await;
    let nurse = "nurse@example.org";
    submit(
        &instance,
        ADA,
        &ada_pw,
        &[nurse],
        &secure(ADA, &[nurse], &[(nurse, "staff_in_practice")], "welcome"),
    )
    .await
    .unwrap();
    let joined = wait_recipient_of(&instance, nurse, 1).await;
    assert!(joined.practice_id.is_some(), "A's own invitation makes her A's staff");
    submit(
        &instance,
        CAROL,
        &carol_pw,
        &[nurse],
        &secure(CAROL, &[nurse], &[(nurse, "staff_other_practice")], "referral"),
    )
    .await
    .unwrap();
    wait_recipient_of(&instance, nurse, 2).await;
    let (http, csrf) = ada_manages(&instance).await;
    let (status, body) = manage(
        &http,
        &instance,
        joined.id,
        &[
            ("csrf", csrf.as_str()),
            ("action", "edit"),
            ("email", "someone@evil.example"),
            ("phone", ""),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("outside your practice"), "{body}");
    let (status, _) = manage(
        &http,
        &instance,
        joined.id,
        &[("csrf", csrf.as_str()), ("action", "reinvite")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(instance.store().accounts().user(joined.id).await.unwrap().email, nurse);
    assert_eq!(instance.outbox_for(nurse).len(), 2, "no new invitation went out");
}

/// imaplib: signs in, prints RFC822.SIZE and writes the first INBOX message.
const IMAP_FETCH: &str = r#"
import imaplib, ssl, sys
port, user, password, out = sys.argv[1:5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
typ, data = m.select("INBOX")
print("inbox", data[0].decode())
typ, data = m.uid("FETCH", "1:*", "(RFC822.SIZE BODY.PEEK[])")
meta, body = data[0]
open(out, "wb").write(body)
print("fetch", meta.decode())
m.logout()
"#;

/// Issue 8 #4: a Bcc recipient and the add-in's role header never reach the
/// other recipients (IMAP FETCH with a real client, and the portal page), and
/// a free account's reply goes only to the people shown on the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn bcc_recipients_and_roles_stay_hidden_and_out_of_reach() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let (p1, p2) = ("p1@example.org", "hiv-clinic-p2@example.org");
    let body_canary = canary();
    let message = MessageBuilder::new()
        .from(("Dr Ada Lovelace", ADA))
        .to(p1)
        .bcc(p2)
        .subject("Your results")
        .message_id("results-1@smiles.example")
        .header("X-Sealpost-Secure", Raw::new("1"))
        .header("X-Sealpost-Role", Raw::new(format!("{p1} patient, {p2} patient")))
        .header("X-Sealpost-Notice", Raw::new("Follow-up"))
        .text_body(format!("Results {body_canary}"))
        .write_to_vec()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&message).contains("Bcc: "),
        "the test sends a Bcc header"
    );
    send_via_relay(&instance, ADA, &[p1, p2], &message)
        .await
        .expect("accepted");
    let invite = instance.wait_for_mail(p1, 1).await;
    instance.wait_for_mail(p2, 1).await;

    // p1 reads it over IMAP with imaplib.
    set_password(&instance, p1, "Patient-Pass-55").await;
    let p1_pw = app_password_of(&instance, p1).await;
    let out = instance.dir.path().join("p1.eml");
    let args = vec![
        instance.running.addresses.imap_tls.port().to_string(),
        p1.to_owned(),
        p1_pw.clone(),
        out.display().to_string(),
    ];
    let text = tokio::task::spawn_blocking(move || {
        let output = Command::new("python3")
            .arg("-c")
            .arg(IMAP_FETCH)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "imaplib: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap();
    let fetched = std::fs::read(&out).unwrap();
    let shown = String::from_utf8_lossy(&fetched);
    assert!(text.contains("inbox 1"), "{text}");
    assert!(shown.contains(&body_canary) && shown.contains(p1), "{shown}");
    assert!(
        !shown.to_ascii_lowercase().contains("x-sealpost"),
        "an X-Sealpost header is served: {shown}"
    );
    assert!(!shown.contains(p2), "the Bcc recipient is served to p1: {shown}");
    assert!(!shown.contains("Bcc:"), "{shown}");
    assert!(
        text.contains(&format!("RFC822.SIZE {}", fetched.len())),
        "the size announced is the size served: {text}"
    );

    // Nor does the portal show p1 anything of p2.
    let http = browser();
    sign_in(&http, &instance, p1, "Patient-Pass-55", "/inbox").await;
    let link = link_in(&invite, &format!("{}/m/", instance.config.public_url));
    let page = http
        .get(instance.reachable(&link).split('?').next().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&body_canary), "p1 reads the message");
    assert!(!page.contains(p2), "the portal shows p1 the Bcc recipient");

    // p1 (a free account) may reply to the sender, but not to the Bcc recipient.
    let reply = |from: &str, to: &[&str], n: u32| {
        MessageBuilder::new()
            .from(from)
            .to(to.to_vec())
            .subject("Re: Your results")
            .message_id(format!("reply-{n}@example.org"))
            .header("In-Reply-To", Raw::new("<results-1@smiles.example>"))
            .text_body("thanks")
            .write_to_vec()
            .unwrap()
    };
    let refused = submit(&instance, p1, &p1_pw, &[ADA, p2], &reply(p1, &[ADA, p2], 1))
        .await
        .expect_err("a reply to a Bcc recipient is refused");
    assert!(refused.to_string().contains("5.7.1"), "{refused}");
    submit(&instance, p1, &p1_pw, &[p2], &reply(p1, &[p2], 2))
        .await
        .expect_err("a reply only to a Bcc recipient is refused");
    submit(&instance, p1, &p1_pw, &[ADA], &reply(p1, &[ADA], 3))
        .await
        .expect("a reply to the sender goes");
    // The Bcc recipient may answer the sender too.
    set_password(&instance, p2, "Patient-Pass-56").await;
    let p2_pw = app_password_of(&instance, p2).await;
    submit(&instance, p2, &p2_pw, &[ADA], &reply(p2, &[ADA], 4))
        .await
        .expect("the Bcc recipient replies to the sender");
}

/// Suspected in issue 8: expiry and hiding end access at once, in the portal
/// and for IMAP's FETCH, not at the next hourly purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_hidden_messages_stop_opening_at_once() {
    let instance = Instance::start_with(|c| c.two_step.required = false).await;
    let ada = instance.practice_with_doctor().await;
    let pat = "pat@example.org";
    for n in 0..2 {
        send_via_relay(
            &instance,
            ADA,
            &[pat],
            &secure(ADA, &[pat], &[(pat, "patient")], &format!("message {n}")),
        )
        .await
        .unwrap();
        instance.wait_for_mail(pat, n + 1).await;
    }
    set_password(&instance, ADA, "Doctor-Pass-77").await;
    set_password(&instance, pat, "Patient-Pass-55").await;
    let patient = instance.store().accounts().user_by_email(pat).await.unwrap().unwrap();
    let ada = instance.store().accounts().user(ada.id).await.unwrap();
    let inbox = instance.store().mail().inbox(&patient, 10).await.unwrap();
    let (hidden, other) = (inbox[0].id.clone(), inbox[1].id.clone());

    // The patient hides one (an IMAP expunge in INBOX): its URL stops opening.
    let http = browser();
    sign_in(&http, &instance, pat, "Patient-Pass-55", "/inbox").await;
    let status = |id: &store::ids::MessageId| {
        let http = http.clone();
        let url = instance.url(&format!("/m/{id}"));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(&hidden).await, 200);
    instance
        .store()
        .mail()
        .mailbox_expunge(&patient, store::mailbox::MailboxName::Inbox, &hidden, "test")
        .await
        .unwrap();
    // It no longer opens: its reader is told they deleted it (issue 12), 410.
    assert_eq!(status(&hidden).await, 410, "a hidden message still opens by URL");
    assert!(
        instance
            .store()
            .mail()
            .open_original(&patient, &hidden, "imap", false)
            .await
            .is_err()
    );
    assert_eq!(status(&other).await, 200);

    // Past its expiry, before any purge: gone for the recipient and the sender.
    instance.clock.advance(31 * 86_400);
    let again = browser();
    sign_in(&again, &instance, pat, "Patient-Pass-55", "/inbox").await;
    // Neither reads it; each is told it was deleted, and when (issue 12), 410.
    let reply = again.get(instance.url(&format!("/m/{other}"))).send().await.unwrap();
    assert_eq!(reply.status(), 410, "the recipient reads an expired message");
    let sender = browser();
    sign_in(&sender, &instance, ADA, "Doctor-Pass-77", "/sent").await;
    let reply = sender.get(instance.url(&format!("/m/{other}"))).send().await.unwrap();
    assert_eq!(reply.status(), 410, "the sender reads an expired message");
    assert!(reply.text().await.unwrap().contains("This message was deleted on"));
    assert!(
        instance
            .store()
            .mail()
            .open_message(&ada, &other, "test")
            .await
            .is_err()
    );
    assert!(
        instance
            .store()
            .mail()
            .open_original(&ada, &other, "imap", false)
            .await
            .is_err()
    );
}

/// Suspected in issue 8: `/api/contacts` answers only accounts that may send
/// secure mail (paid practice staff), not unpaid doctors and staff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_api_serves_only_paid_practice_staff() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let bob_pw = unpaid_staff_app_password(&instance).await;
    let ada_pw = app_password_of(&instance, ADA).await;
    let ask = |user: &'static str, password: String| {
        let url = instance.url("/api/contacts?addresses=pat@example.org");
        async move {
            browser()
                .get(url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        ask("bob@smiles.example", bob_pw).await,
        403,
        "an unpaid staff member was answered"
    );
    assert_eq!(ask(ADA, ada_pw).await, 200);
}

/// imaplib: tries to sign in; prints the outcome.
const IMAP_LOGIN: &str = r#"
import imaplib, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
try:
    m.login(user, password); print("login-ok")
except imaplib.IMAP4.error as e:
    print("login-failed", e)
"#;

/// Suspected in issue 8: the add-in kept an app password (SMTP and IMAP) in
/// Office's roaming settings. It now trades it once for its own key, which the
/// contacts API accepts and SMTP and IMAP refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_addin_key_opens_the_contacts_api_and_nothing_else() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let ada_pw = app_password_of(&instance, ADA).await;
    let exchange = |user: &'static str, password: String| {
        let url = instance.url("/api/addin-key");
        async move {
            let reply = browser()
                .post(url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            let body: serde_json::Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap_or_default();
            (status, body["key"].as_str().unwrap_or_default().to_owned())
        }
    };
    let contacts = |key: String| {
        let url = instance.url("/api/contacts?addresses=pat@example.org");
        async move {
            browser()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (status, key) = exchange(ADA, ada_pw.clone()).await;
    assert_eq!(status, 200);
    assert!(key.starts_with("spk_") && key.len() > 40, "{key}");
    assert_eq!(contacts(key.clone()).await, 200);
    assert_eq!(contacts("spk_not-a-key".to_owned()).await, 401);
    assert_eq!(exchange(ADA, "wrong-password".to_owned()).await.0, 401);

    // The key is no mail password: SMTP submission and IMAP refuse it.
    let refused = submit(&instance, ADA, &key, &[ADA], &secure(ADA, &[ADA], &[], "x")).await;
    assert!(refused.is_err(), "SMTP accepted the add-in key");
    let args = vec![
        instance.running.addresses.imap_tls.port().to_string(),
        ADA.to_owned(),
        key.clone(),
    ];
    let text = tokio::task::spawn_blocking(move || {
        let output = Command::new("python3")
            .arg("-c")
            .arg(IMAP_LOGIN)
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(text.contains("login-failed"), "IMAP accepted the add-in key: {text}");

    // A new key replaces the old; unpaid staff get none.
    let (_, newer) = exchange(ADA, ada_pw).await;
    assert_eq!(contacts(key).await, 401, "the replaced key still works");
    assert_eq!(contacts(newer).await, 200);
    let bob_pw = unpaid_staff_app_password(&instance).await;
    assert_eq!(exchange("bob@smiles.example", bob_pw).await.0, 403);
}
