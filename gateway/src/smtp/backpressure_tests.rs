//! Back-pressure over an in-memory session: past the depth MAIL FROM gets
//! `452 4.3.1` and nothing is taken; once the workers catch up, mail is
//! accepted again.

use std::sync::Arc;

use store::jobs::DeliveryOutcome;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::smtp::{ListenerKind, Session, SmtpConfig, SmtpServer};

/// Runs `input` through one relay session from 127.0.0.1; every reply line.
async fn converse(server: &Arc<SmtpServer>, input: &[u8]) -> Vec<String> {
    let (mut client, mut server_end) = tokio::io::duplex(1 << 16);
    let server = Arc::clone(server);
    let task = tokio::spawn(async move {
        let mut session = Session::new(server, "127.0.0.1:4000".parse().unwrap(), ListenerKind::Relay);
        let _ = session.run(&mut server_end).await;
    });
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    while reader.read_line(&mut line).await.unwrap() > 0 {
        lines.push(line.trim_end().to_owned());
        line.clear();
    }
    task.await.unwrap();
    lines
}

const MESSAGE: &[u8] = b"MAIL FROM:<ops@clinic.example>\r\nRCPT TO:<lab@lab.example>\r\nDATA\r\n\
Subject: order\r\n\r\nPlease send gloves.\r\n.\r\n";

#[tokio::test]
async fn past_the_depth_new_mail_waits_with_452_and_is_taken_again_once_drained() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(
        store::StoreConfig {
            database_url: format!("sqlite://{}/db.sqlite", dir.path().display()),
            blobs_url: format!("file://{}/blobs", dir.path().display()),
            data_dir: dir.path().join("data"),
            policy: store::Policy::default(),
        },
        Arc::new(store::SystemClock),
    )
    .await
    .unwrap();
    let config = SmtpConfig {
        max_queue_depth: 2,
        ..SmtpConfig::default()
    };
    // No workers run: what is accepted stays queued.
    let server = SmtpServer::new(Arc::clone(&store), config, None, crate::Wakers::default());
    let mut input = b"EHLO a\r\n".to_vec();
    for _ in 0..3 {
        input.extend_from_slice(MESSAGE);
    }
    input.extend_from_slice(b"QUIT\r\n");
    let lines = converse(&server, &input).await;
    let refusal = lines.iter().find(|l| l.starts_with("452")).cloned().unwrap_or_default();
    assert!(refusal.starts_with("452 4.3.1 "), "{lines:?}");
    let accepted = lines.iter().filter(|l| l.contains("accepted for delivery")).count();
    assert_eq!(accepted, 2, "two taken, the third told to wait: {lines:?}");
    let (queued, _, _) = store.queue().outbound_counts().await.unwrap();
    assert_eq!(queued, 2, "nothing of the refused transaction was stored");

    // The workers catch up: the same server takes mail again.
    for item in store.queue().due_outbound(10).await.unwrap() {
        store
            .queue()
            .outbound_done(&item, &DeliveryOutcome::Delivered)
            .await
            .unwrap();
    }
    let mut input = b"EHLO a\r\n".to_vec();
    input.extend_from_slice(MESSAGE);
    input.extend_from_slice(b"QUIT\r\n");
    let lines = converse(&server, &input).await;
    assert!(!lines.iter().any(|l| l.starts_with("452")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("accepted for delivery")).count(),
        1,
        "{lines:?}"
    );
}
