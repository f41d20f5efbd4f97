//! Session tests over an in-memory duplex: reply codes for command sequences.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{ListenerKind, Session, SmtpConfig, SmtpServer};

async fn store() -> (tempfile::TempDir, Arc<store::Store>) {
    let dir = tempfile::tempdir().unwrap();
    let config = store::StoreConfig {
        database_url: format!("sqlite://{}/db.sqlite", dir.path().display()),
        blobs_url: format!("file://{}/blobs", dir.path().display()),
        data_dir: dir.path().join("data"),
        policy: store::Policy::default(),
    };
    let store = store::Store::open(config, Arc::new(store::SystemClock)).await.unwrap();
    (dir, store)
}

/// Runs `lines` through a session on `kind` from `peer`; returns every reply line.
async fn converse(kind: ListenerKind, peer: &str, input: &[u8]) -> Vec<String> {
    let (_dir, store) = store().await;
    let server = SmtpServer::new(store, SmtpConfig::default(), None, crate::Wakers::default());
    let (mut client, mut server_end) = tokio::io::duplex(1 << 16);
    let peer = peer.parse().unwrap();
    let task = tokio::spawn(async move {
        let mut session = Session::new(server, peer, kind);
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

fn codes(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

#[tokio::test]
async fn pipelined_commands_get_replies_in_order() {
    let lines = converse(
        ListenerKind::Relay,
        "127.0.0.1:4000",
        b"EHLO a\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<z@w.example>\r\nRSET\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(codes(&lines), ["250", "250", "250", "250", "221"]);
}

#[tokio::test]
async fn sequence_errors_and_unknown_commands() {
    let lines = converse(ListenerKind::Relay, "127.0.0.1:4000", b"MAIL FROM:<x@y.example>\r\nEHLO a\r\nRCPT TO:<z@w.example>\r\nDATA\r\nFOO\r\nBDAT 10 LAST\r\nSTARTTLS\r\nQUIT\r\n").await;
    assert_eq!(codes(&lines), ["503", "250", "503", "503", "500", "502", "502", "221"]);
}

#[tokio::test]
async fn untrusted_peer_cannot_relay_and_submission_needs_auth() {
    let relay = converse(
        ListenerKind::Relay,
        "192.0.2.7:4000",
        b"EHLO a\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<z@w.example>\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(codes(&relay), ["250", "250", "550", "221"]);
    let submission = converse(
        ListenerKind::Submission,
        "127.0.0.1:4000",
        b"EHLO a\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<x@y.example>\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(codes(&submission), ["250", "538", "530", "221"]);
}

/// Stopping while a message is being received: the message is finished and
/// answered `250`, then the session gets `421 4.3.2`; the client's next
/// command (already sent) is not run.
#[tokio::test]
async fn shutdown_lets_the_message_in_flight_finish_then_says_421() {
    let (_dir, store) = store().await;
    let server = SmtpServer::new(store, SmtpConfig::default(), None, crate::Wakers::default());
    let (trigger, shutdown) = crate::shutdown::channel();
    let (mut client, mut server_end) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move {
        let mut session = Session::new(server, "127.0.0.1:4000".parse().unwrap(), ListenerKind::Relay);
        session.shutdown = Some(shutdown);
        let _ = session.run(&mut server_end).await;
    });
    client
        .write_all(
            b"EHLO a\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<z@w.example>\r\nDATA\r\nSubject: hi\r\n\r\nfirst half\r\n",
        )
        .await
        .unwrap();
    let mut reader = BufReader::new(client);
    let mut lines = Vec::new();
    let mut line = String::new();
    while !line.starts_with("354") {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        lines.push(line.trim_end().to_owned());
    }
    // Stop, then send the rest of the message and one more command.
    trigger.request();
    let stopped = tokio::spawn(trigger.stop(std::time::Duration::from_mins(1)));
    reader
        .get_mut()
        .write_all(b"second half\r\n.\r\nNOOP\r\n")
        .await
        .unwrap();
    line.clear();
    while reader.read_line(&mut line).await.unwrap() > 0 {
        lines.push(line.trim_end().to_owned());
        line.clear();
    }
    task.await.unwrap();
    assert!(stopped.await.unwrap(), "the session let go of its shutdown handle");
    assert_eq!(codes(&lines), ["250", "250", "250", "354", "250", "421"], "{lines:?}");
    assert!(lines.last().unwrap().starts_with("421 4.3.2 "), "{lines:?}");
}
