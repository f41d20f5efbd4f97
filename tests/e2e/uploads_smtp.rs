//! The attachment rules on mail arriving over SMTP (the same as portal
//! uploads): a secure message with a type not accepted, or with more
//! attachment bytes than a message may carry, gets a 5xx with an enhanced
//! status code naming the file, and nothing of it is kept; at the size limit
//! exactly it is accepted.

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;

use super::harness::Instance;
use super::secure_send::send_via_relay;

fn secure_with(file_name: &str, bytes: Vec<u8>, secure: bool) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(("Dr Ada Lovelace", "ada@smiles.example"))
        .to("pat@example.org")
        .subject(if secure { "[secure] Your files" } else { "Your files" })
        .text_body("Here are the files we talked about.")
        .attachment("application/octet-stream", file_name.to_owned(), bytes);
    if secure {
        builder = builder
            .header("X-Sealpost-Secure", Raw::new("1"))
            .header("X-Sealpost-Role", Raw::new("pat@example.org patient"));
    }
    builder.write_to_vec().unwrap()
}

async fn send(instance: &Instance, message: &[u8]) -> Result<(), lettre::transport::smtp::Error> {
    send_via_relay(instance, "ada@smiles.example", &["pat@example.org"], message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_refuses_attachments_the_rules_refuse_naming_the_file() {
    let instance = Instance::start_with(|config| config.uploads.max_message_size = "100000".into()).await;
    instance.practice_with_doctor().await;

    let exe = send(&instance, &secure_with("setup.exe", b"MZ".to_vec(), true))
        .await
        .unwrap_err();
    let text = exe.to_string();
    assert!(exe.is_permanent(), "{text}");
    assert!(
        text.contains("5.6.1") && text.contains("setup.exe") && text.contains(".exe"),
        "{text}"
    );
    assert!(
        text.contains(".pdf") && text.contains(".zip"),
        "the accepted list: {text}"
    );

    let over = send(&instance, &secure_with("scan.pdf", vec![7u8; 100_001], true))
        .await
        .unwrap_err();
    let text = over.to_string();
    assert!(over.is_permanent(), "{text}");
    assert!(text.contains("5.3.4") && text.contains("scan.pdf"), "{text}");
    assert!(
        instance.store().queue().pending_spool().await.unwrap().is_empty(),
        "nothing kept"
    );

    // At the limit exactly, and the same types in ordinary (not secure) mail,
    // which passes through unchanged: accepted.
    send(&instance, &secure_with("scan.pdf", vec![7u8; 100_000], true))
        .await
        .expect("250 at the limit");
    send(&instance, &secure_with("setup.exe", b"MZ".to_vec(), false))
        .await
        .expect("plain mail passes");
}
