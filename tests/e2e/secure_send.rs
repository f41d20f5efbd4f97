//! The whole path of one secure message: relay → sealed store → notification →
//! registration → set password → reading and downloading; and that the canary
//! string in it is nowhere in clear afterwards.

use lettre::address::Envelope;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;

use super::harness::{
    Instance, browser, csrf_in, files_containing, finish_two_step, link_in, logs, postgres_tables_containing,
    register_form, sign_in,
};

pub fn canary() -> String {
    format!("CANARY{}", store::crypto::random_hex(8))
}

/// A secure message from Dr Ada to `to`, with a PDF-ish attachment.
pub fn secure_message(to: &str, canary: &str, attachment: &[u8], role: Option<&str>) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(("Dr Ada Lovelace", "ada@smiles.example"))
        .to(to)
        .subject(format!("[secure] Lab results {canary}"))
        .header("X-Sealpost-Notice", Raw::new("Your appointment follow-up"))
        .text_body(format!("Hello, your results: {canary}.\nSee the attached report."))
        .attachment("application/pdf", format!("report-{canary}.pdf"), attachment.to_vec());
    if let Some(role) = role {
        builder = builder.header("X-Sealpost-Role", Raw::new(format!("{to} {role}")));
    }
    builder
        .header("X-Sealpost-Secure", Raw::new("1"))
        .write_to_vec()
        .unwrap()
}

pub async fn send_via_relay(
    instance: &Instance,
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Result<(), lettre::transport::smtp::Error> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(instance.relay().port())
        .tls(Tls::None)
        .build();
    let envelope = Envelope::new(
        Some(from.parse().unwrap()),
        to.iter().map(|t| t.parse().unwrap()).collect(),
    )
    .unwrap();
    transport.send_raw(&envelope, message).await.map(|_| ())
}

/// Dr Ada sends a secure message to `to` through the relay; it must be accepted.
pub async fn ada_sends(instance: &Instance, to: &str, canary: &str, attachment: &[u8], role: Option<&str>) {
    send_via_relay(
        instance,
        "ada@smiles.example",
        &[to],
        &secure_message(to, canary, attachment, role),
    )
    .await
    .expect("accepted with 250");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_message_reaches_a_new_patient_and_stays_sealed() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    let attachment: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .chain(canary.bytes())
        .collect();
    let message = secure_message("pat@example.org", &canary, &attachment, Some("patient"));
    send_via_relay(&instance, "ada@smiles.example", &["pat@example.org"], &message)
        .await
        .expect("accepted with 250");

    // The notification: generic subject, the sender's note, one link, no PHI.
    let notification = instance.wait_for_mail("pat@example.org", 1).await;
    let text = String::from_utf8_lossy(&notification).into_owned();
    assert!(!text.contains(&canary), "the notification leaks the canary");
    assert!(
        !text.to_ascii_lowercase().contains("x-sealpost"),
        "marker headers left the gateway"
    );
    let parsed = mail_parser::MessageParser::default().parse(&notification).unwrap();
    assert_eq!(parsed.subject(), Some("Secure message from Dr Ada Lovelace"));
    assert!(parsed.body_text(0).unwrap().contains("Your appointment follow-up"));
    // Decoded, neither part carries the sealed subject or body.
    let html_part = parsed.body_html(0).expect("an HTML part").into_owned();
    assert!(html_part.contains("Your appointment follow-up"), "{html_part}");
    for part in [parsed.body_text(0).unwrap().into_owned(), html_part] {
        assert!(!part.contains(&canary) && !part.contains("Lab results"), "{part}");
    }
    let invite = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    assert!(invite.contains("?invite="), "{invite}");

    // Registration form for a patient, then the set-password email.
    let http = browser();
    let page = http.get(instance.reachable(&invite)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("full_name") && html.contains("phone"),
        "registration form expected"
    );
    assert!(!html.contains(&canary), "message content shown before sign-in");
    let registered = register_form(&http, &instance, &invite, "Pat Example", "+12015550199").await;
    assert_eq!(registered.status(), 200);
    assert!(registered.text().await.unwrap().to_lowercase().contains("email"));
    // The invitation is spent.
    let again = http.get(instance.reachable(&invite)).send().await.unwrap();
    assert_eq!(again.status(), 410);

    let set_password_mail = instance.wait_for_mail("pat@example.org", 2).await;
    let set_link = link_in(&set_password_mail, &format!("{}/password/", instance.config.public_url));
    let signed_in = http
        .post(instance.reachable(&set_link))
        .form(&[("password", "Correct-Horse-42"), ("confirm", "Correct-Horse-42")])
        .send()
        .await
        .unwrap();
    let signed_in = finish_two_step(&http, &instance, signed_in).await;
    assert_eq!(signed_in.status(), 200);
    let message_page = signed_in.text().await.unwrap();
    assert!(
        message_page.contains(&canary),
        "the signed-in recipient sees the message"
    );
    assert!(message_page.contains("Dr Ada Lovelace"));

    // The attachment downloads byte-identical.
    let message_url = invite.split('?').next().unwrap().to_owned();
    let download = http
        .get(instance.reachable(&format!("{message_url}/a/0")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.unwrap();
    assert!(
        bytes.as_ref() == attachment.as_slice(),
        "attachment differs: {} vs {} bytes",
        bytes.len(),
        attachment.len()
    );

    // The views and the download are audited, and the chain holds.
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    for action in [
        "message.seal",
        "account.register",
        "password.set",
        "message.view",
        "attachment.download",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
    assert!(instance.store().audit_log().verify_audit().await.unwrap().is_ok());

    // Nothing in clear: database (with WAL), blobs, spool, outbox, logs.
    let leaked = files_containing(instance.dir.path(), canary.as_bytes());
    assert!(leaked.is_empty(), "canary in clear in {leaked:?}");
    assert!(!logs().contains(&canary), "canary in the logs");
    let tables = postgres_tables_containing(&instance, &canary).await;
    assert!(tables.is_empty(), "canary in clear in PostgreSQL tables {tables:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_contact_without_role_waits_for_the_sender_to_choose() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    // Give the doctor a password so she can use the portal.
    let doctor = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let token = instance
        .store()
        .auth()
        .issue_token(store::accounts::TokenPurpose::SetPassword, doctor.id, None, 3600)
        .await
        .unwrap();
    instance
        .store()
        .auth()
        .set_password(&token, "Doctor-Pass-77", "test")
        .await
        .unwrap();

    let canary = canary();
    let message = secure_message("newdoc@other.example", &canary, b"x-ray", None);
    send_via_relay(&instance, "ada@smiles.example", &["newdoc@other.example"], &message)
        .await
        .unwrap();
    // The sender is asked for the role; the recipient hears nothing yet.
    let ask = instance.wait_for_mail("ada@smiles.example", 1).await;
    assert!(!String::from_utf8_lossy(&ask).contains(&canary));
    let roles_link = link_in(&ask, &format!("{}/m/", instance.config.public_url));
    assert!(roles_link.ends_with("/roles"), "{roles_link}");
    assert!(instance.outbox_for("newdoc@other.example").is_empty());

    let http = browser();
    let signin = sign_in(&http, &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(signin.status(), 200);
    let page = http
        .get(instance.reachable(&roles_link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let recipient = instance
        .store()
        .accounts()
        .user_by_email("newdoc@other.example")
        .await
        .unwrap()
        .unwrap();
    let field = format!("role_{}", recipient.id);
    assert!(page.contains(&field), "role field expected in the page");
    let csrf = csrf_in(&page);
    let chosen = http
        .post(instance.reachable(&roles_link))
        .form(&[(field.as_str(), "doctor_other_practice"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(chosen.status().is_success(), "{}", chosen.status());
    let invitation = instance.wait_for_mail("newdoc@other.example", 1).await;
    assert!(link_in(&invitation, &format!("{}/m/", instance.config.public_url)).contains("?invite="));
    // The choice is remembered: the next message needs no question.
    let again = secure_message("newdoc@other.example", &canary, b"more", None);
    send_via_relay(&instance, "ada@smiles.example", &["newdoc@other.example"], &again)
        .await
        .unwrap();
    instance.wait_for_mail("newdoc@other.example", 2).await;
    assert_eq!(instance.outbox_for("ada@smiles.example").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_mail_passes_through_unchanged_but_for_markers() {
    let instance = Instance::start().await;
    let message = b"From: someone@smiles.example\r\nTo: vendor@example.com\r\nSubject: Lunch order\r\nX-Sealpost-Notice: stray\r\n\r\nTwo sandwiches.\r\n";
    send_via_relay(&instance, "someone@smiles.example", &["vendor@example.com"], message)
        .await
        .unwrap();
    let delivered = instance.wait_for_mail("vendor@example.com", 1).await;
    let text = String::from_utf8_lossy(&delivered);
    assert!(
        text.contains("Subject: Lunch order\r\n") && text.contains("\r\n\r\nTwo sandwiches.\r\n"),
        "{text}"
    );
    assert!(!text.contains("X-Sealpost"), "{text}");
    assert!(text.contains("Received: from"), "a trace header is added");
}
