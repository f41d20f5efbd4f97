//! Connection limits, idle timeouts, restarts that lose nothing, and the message
//! lifecycle (expiry shreds).

use std::time::Duration;

use super::harness::{Instance, RawSmtp, browser, files_containing, link_in};
use super::secure_send::{ada_sends, canary, secure_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_idle_timeout() {
    let instance = Instance::start_with(|c| {
        c.smtp.max_connections = 1;
        c.smtp.command_timeout = 1;
    })
    .await;
    let mut first = RawSmtp::connect(instance.relay()).await;
    first.cmd("EHLO one", "250").await;
    let mut second = tokio::net::TcpStream::connect(instance.relay()).await.unwrap();
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut second, &mut reply)
        .await
        .unwrap();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    // The first client falls silent: the server says so and hangs up.
    let timeout = tokio::time::timeout(Duration::from_secs(10), first.read_reply())
        .await
        .unwrap();
    assert!(timeout.starts_with("421 4.4.2"), "{timeout}");
    // Its slot is free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = RawSmtp::connect(instance.relay()).await;
    third.cmd("NOOP", "250").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_shredded() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    ada_sends(&instance, "pat@example.org", &canary, b"bytes", Some("patient")).await;
    let mail = instance.wait_for_mail("pat@example.org", 1).await;
    let message_url = link_in(&mail, &format!("{}/m/", instance.config.public_url))
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let id = message_url.rsplit('/').next().unwrap().to_owned();
    let blobs = instance.config.data_dir.join("blobs/messages").join(&id);
    assert!(blobs.exists());

    instance.clock.advance(31 * 86_400);
    assert_eq!(instance.store().mail().purge_expired().await.unwrap(), 1);
    assert!(!blobs.exists(), "blobs are deleted");
    let audit = instance.store().audit_log().recent_audit(5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, action, object)| action == "message.expire" && object.contains(&id))
    );
    // The invitation leads nowhere now.
    let page = browser()
        .get(instance.reachable(&link_in(&mail, &format!("{}/m/", instance.config.public_url))))
        .send()
        .await
        .unwrap();
    assert!(page.status() == 404 || page.status() == 410, "{}", page.status());
    assert!(files_containing(instance.dir.path(), canary.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_mail_survives_a_restart() {
    let instance = Instance::start().await;
    let doctor = instance.practice_with_doctor().await;
    let stopped = instance.stop().await;

    // As if the process died right after answering 250: one secure message spooled
    // and recorded but not sealed, one ordinary message queued but not delivered,
    // and one spool file half-written (never acknowledged).
    let store = sealpost::app::open_store(&stopped.config, stopped.clock.clone())
        .await
        .unwrap();
    let canary = canary();
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer
        .write(&secure_message("pat@example.org", &canary, b"scan", Some("patient")))
        .await
        .unwrap();
    let spooled = writer.finish().await.unwrap();
    store
        .queue()
        .accept_secure(&spooled, "ada@smiles.example", &["pat@example.org".into()], doctor.id)
        .await
        .unwrap();
    let mut plain = store.queue().spool_writer().await.unwrap();
    plain
        .write(b"From: ada@smiles.example\r\nSubject: hello\r\n\r\nhi\r\n")
        .await
        .unwrap();
    let plain = plain.finish().await.unwrap();
    store
        .queue()
        .accept_plain(&plain, "ada@smiles.example", &["friend@example.com".into()])
        .await
        .unwrap();
    let mut partial = store.queue().spool_writer().await.unwrap();
    partial.write(b"From: half").await.unwrap();
    std::mem::forget(partial);
    store.close().await;
    drop(store);

    let instance = stopped.start().await;
    let notification = instance.wait_for_mail("pat@example.org", 1).await;
    assert!(!String::from_utf8_lossy(&notification).contains(&canary));
    instance.wait_for_mail("friend@example.com", 1).await;
    let leftovers: Vec<_> = std::fs::read_dir(instance.config.data_dir.join("spool/in"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "spool should be empty after sealing and delivery: {leftovers:?}"
    );
}

/// An admin command opens the store while the server runs (`sealpost user add`,
/// `practice list`, …). It must leave the spool alone: a message the server is
/// receiving at that moment is still answered 250 and sealed, not 451.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_command_leaves_a_live_servers_spool_alone() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let to = "pat@example.org";
    let mut smtp = RawSmtp::connect(instance.relay()).await;
    smtp.cmd("EHLO mta.smiles.example", "250").await;
    smtp.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
    smtp.cmd(&format!("RCPT TO:<{to}>"), "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(
        format!(
            "From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: {to}\r\nX-Sealpost-Secure: 1\r\n\
X-Sealpost-Role: {to} patient\r\nSubject: Results\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    smtp.send(&vec![b'a'; 256 * 1024]).await;
    // The message is being written to the spool now.
    let spool = instance.config.data_dir.join("spool/in");
    let mut partial = Vec::new();
    for _ in 0..100 {
        partial = std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
            .collect();
        if !partial.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(partial.len(), 1, "the message in flight has its spool file");

    // What every admin command does first.
    let admin = sealpost::app::open_store(&instance.config, instance.clock.clone())
        .await
        .unwrap();
    admin.close().await;
    drop(admin);
    assert!(
        partial[0].path().exists(),
        "the admin command removed the spool file in flight"
    );

    smtp.send(b"\r\n.\r\n").await;
    let reply = smtp.read_reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    instance.wait_for_mail(to, 1).await;
}
