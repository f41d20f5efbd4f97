//! What the SMTP listeners refuse, with which reply: relaying, oversize mail,
//! unknown and unpaid senders, missing AUTH; and that malformed MIME and
//! smuggling attempts damage nothing.

use std::time::Duration;

use super::harness::{Instance, RawSmtp};
use super::secure_send::{canary, secure_message, send_via_relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_clients_cannot_relay() {
    let instance = Instance::start_with(|c| c.smtp.relay_trusted_networks = vec!["10.0.0.0/8".into()]).await;
    let mut smtp = RawSmtp::connect(instance.relay()).await;
    smtp.cmd("EHLO outsider.example", "250").await;
    smtp.cmd("MAIL FROM:<spam@outsider.example>", "250").await;
    let reply = smtp.cmd("RCPT TO:<victim@example.com>", "550").await;
    assert!(reply.contains("5.7.1"), "{reply}");
    smtp.cmd("DATA", "554").await;
    // The submission port wants TLS and AUTH before any mail.
    let mut submission = RawSmtp::connect(instance.submission()).await;
    let ehlo = submission.cmd("EHLO client", "250").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "AUTH must not be offered before TLS: {ehlo}"
    );
    submission.cmd("AUTH PLAIN AGFAYg==", "538").await;
    submission.cmd("MAIL FROM:<ada@smiles.example>", "530").await;
    let (queued, sent, _) = instance.store().queue().outbound_counts().await.unwrap();
    assert_eq!(queued + sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_too_many_recipients_are_refused() {
    let instance = Instance::start_with(|c| {
        c.smtp.max_message_size = "20KB".into();
        c.smtp.max_recipients = 2;
    })
    .await;
    let mut smtp = RawSmtp::connect(instance.relay()).await;
    let ehlo = smtp.cmd("EHLO mta.smiles.example", "250").await;
    for ext in [
        "SIZE 20000",
        "PIPELINING",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "STARTTLS",
    ] {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}: {ehlo}");
    }
    let declared = smtp.cmd("MAIL FROM:<a@smiles.example> SIZE=50000", "552").await;
    assert!(declared.contains("5.3.4"), "{declared}");
    smtp.cmd("MAIL FROM:<a@smiles.example>", "250").await;
    smtp.cmd("RCPT TO:<one@example.com>", "250").await;
    smtp.cmd("RCPT TO:<two@example.com>", "250").await;
    let third = smtp.cmd("RCPT TO:<three@example.com>", "452").await;
    assert!(third.contains("4.5.3"), "{third}");
    smtp.cmd("DATA", "354").await;
    let line = "x".repeat(998);
    for _ in 0..60 {
        smtp.send(format!("{line}\r\n").as_bytes()).await;
    }
    smtp.send(b".\r\n").await;
    let reply = smtp.read_reply().await;
    assert!(reply.starts_with("552") && reply.contains("5.3.4"), "{reply}");
    // The session is still usable, and nothing was queued.
    smtp.cmd("NOOP", "250").await;
    let (queued, sent, _) = instance.store().queue().outbound_counts().await.unwrap();
    assert_eq!(queued + sent, 0);
    let long = smtp.cmd(&format!("NOOP {}", "y".repeat(5000)), "500").await;
    assert!(long.contains("5.5.2"), "{long}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_mail_from_unknown_or_unpaid_senders_is_refused_with_a_reason() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Front Desk",
            store::accounts::Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    let canary = canary();
    let stranger = secure_message("pat@example.org", &canary, b"x", Some("patient"))
        .into_iter()
        .collect::<Vec<u8>>();
    let stranger = String::from_utf8_lossy(&stranger)
        .replace("ada@smiles.example", "eve@nowhere.example")
        .into_bytes();
    let error = send_via_relay(&instance, "eve@nowhere.example", &["pat@example.org"], &stranger)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(error.is_permanent() && text.contains("not a Sealpost user"), "{text}");
    let unpaid = String::from_utf8_lossy(&secure_message("pat@example.org", &canary, b"x", None))
        .replace("ada@smiles.example", "bob@smiles.example");
    let error = send_via_relay(&instance, "bob@smiles.example", &["pat@example.org"], unpaid.as_bytes())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("paid"), "{error}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(instance.outbox_for("pat@example.org").is_empty());
    assert!(instance.store().queue().pending_spool().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mime_is_sealed_without_a_crash() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let broken: &[&[u8]] = &[
        b"From: ada@smiles.example\r\nSubject: [secure] broken\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\nX-Sealpost-Role: p1@example.org patient\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno closing boundary\r\n--b\r\nContent-Type: application/pdf; name=\"../../etc/passwd.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64###\r\n",
        b"From: ada@smiles.example\r\nSubject: [secure] junk\r\nContent-Type: multipart/alternative\r\nX-Sealpost-Role: p1@example.org patient\r\nGarbage header line without colon\r\n\r\n\xff\xfe\x00binary\r\n",
        b"From: ada@smiles.example\r\nSubject: [secure] no body\r\nX-Sealpost-Role: p1@example.org patient\r\n",
    ];
    for (i, message) in broken.iter().enumerate() {
        send_via_relay(&instance, "ada@smiles.example", &["p1@example.org"], message)
            .await
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    instance.wait_for_mail("p1@example.org", broken.len()).await;
    assert!(instance.store().queue().pending_spool().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_end_of_data_is_not_honoured() {
    let instance = Instance::start().await;
    let mut smtp = RawSmtp::connect(instance.relay()).await;
    smtp.cmd("EHLO mta", "250").await;
    smtp.cmd("MAIL FROM:<a@smiles.example>", "250").await;
    smtp.cmd("RCPT TO:<b@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    // Bare-LF and LF-dot-CRLF "ends" followed by a smuggled transaction.
    smtp.send(b"Subject: one\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\r\nsmuggled\r\n.\n\r\n.\r\n").await;
    let reply = smtp.read_reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    smtp.cmd("QUIT", "221").await;
    let delivered = instance.wait_for_mail("b@example.com", 1).await;
    let text = String::from_utf8_lossy(&delivered).into_owned();
    assert!(
        text.contains("smuggled"),
        "the smuggled part stays inside the one message"
    );
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LFs were normalised: {text:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        instance.outbox_for("victim@example.com").is_empty(),
        "smuggled transaction was executed"
    );
}
