//! The connection pool against the recording SMTP server of `test_server`:
//! 50 messages over 3 connections, RSET, PIPELINING on and off, cuts before and
//! after the end of data, kept connections the server closed, refusals, the
//! idle timeout, an unreadable body, a hostile server's endless reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::pool::{Pool, PoolSettings};
use super::test_server::{Behaviour, Server, acceptor, body, message, pool, send, wait_until};
use super::{Failure, Smarthost, SmarthostTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_messages_share_three_connections_and_each_arrives_once() {
    let server = Server::start(Behaviour {
        pipelining: true,
        ..Behaviour::default()
    })
    .await;
    let pool = pool(3);
    let server = Arc::new(server);
    // 50 tasks at once, as several delivery workers would send.
    let sends = (0..50).map(|n| {
        let (pool, server) = (Arc::clone(&pool), Arc::clone(&server));
        tokio::spawn(async move { send(&pool, &server, &format!("r{n}@rcpt.test"), &message(n)).await })
    });
    let results = futures::future::join_all(sends).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Ok(())))),
        "every message is taken"
    );
    let sessions = server.sessions();
    assert!(sessions.len() <= 3, "{} connections for a pool of 3", sessions.len());
    assert_eq!(pool.connections_opened(&server.peer()), sessions.len() as u64);
    let expected: Vec<String> = (0..50).map(message).collect();
    assert_eq!(server.messages(), expected, "each message exactly once, dots intact");
    for session in &sessions {
        // Every transaction after a session's first starts with RSET.
        let mails = session.commands.iter().filter(|c| c.starts_with("MAIL")).count();
        let rsets = session.commands.iter().filter(|c| *c == "RSET").count();
        assert_eq!(rsets, mails - 1, "{:?}", session.commands);
        let first_mail = session.commands.iter().position(|c| c.starts_with("MAIL")).unwrap();
        assert!(
            session.commands[first_mail + 1..]
                .iter()
                .all(|c| !c.starts_with("EHLO"))
        );
        assert_eq!(session.commands.iter().filter(|c| c.starts_with("EHLO")).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_is_used_when_offered() {
    let server = Server::start(Behaviour {
        pipelining: true,
        probe: true,
        ..Behaviour::default()
    })
    .await;
    let pool = pool(1);
    for n in 0..2 {
        send(&pool, &server, "pat@rcpt.test", &message(n)).await.unwrap();
    }
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].early, [true; 4],
        "RCPT and DATA came before the replies to MAIL and RCPT"
    );
    let verbs: Vec<&str> = sessions[0].commands.iter().map(|c| &c[..4]).collect();
    assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA"]);
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let server = Server::start(Behaviour {
        probe: true,
        ..Behaviour::default()
    })
    .await;
    let pool = pool(1);
    for n in 0..2 {
        send(&pool, &server, "pat@rcpt.test", &message(n)).await.unwrap();
    }
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].early, [false; 4], "no command before the previous reply");
    assert_eq!(server.messages(), [message(0), message(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_session_is_replaced_and_the_message_arrives_once() {
    for pipelining in [true, false] {
        for kept in [true, false] {
            let server = Server::start(Behaviour {
                pipelining,
                drop_at_data: AtomicBool::new(true),
                ..Behaviour::default()
            })
            .await;
            let pool = pool(2);
            if kept {
                send(&pool, &server, "a@rcpt.test", &message(1)).await.unwrap();
            }
            // Cut on a kept connection, or on a fresh one: sent again at once.
            send(&pool, &server, "cut@rcpt.test", &message(2)).await.unwrap();
            send(&pool, &server, "c@rcpt.test", &message(3)).await.unwrap();
            let expected: Vec<String> = [1, 2, 3].into_iter().skip(usize::from(!kept)).map(message).collect();
            assert_eq!(server.messages(), expected);
            assert_eq!(server.sessions().len(), 2, "one connection cut, one to replace it");
            wait_until("the cut connection is gone", || server.sessions()[0].closed).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_while_the_data_streams_is_replaced_and_the_message_arrives_whole() {
    let server = Server::start(Behaviour {
        pipelining: true,
        drop_in_data: AtomicBool::new(true),
        ..Behaviour::default()
    })
    .await;
    let pool = pool(1);
    // Larger than the socket buffers, so the cut is seen before the end of data.
    let line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
    let big = format!("Subject: big\r\n\r\nDROP-IN-DATA\r\n{}", line.repeat(256 * 1024));
    send(&pool, &server, "pat@rcpt.test", &big).await.unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0] == big,
        "arrived whole ({} of {} bytes)",
        messages[0].len(),
        big.len()
    );
    assert_eq!(server.sessions().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_final_reply_after_the_data_is_a_temporary_failure_retried_later() {
    let server = Server::start(Behaviour {
        pipelining: true,
        drop_after_dot: AtomicBool::new(true),
        ..Behaviour::default()
    })
    .await;
    let pool = pool(2);
    let text = "Subject: x\r\n\r\nDROP-AFTER-DOT\r\n";
    let failure = send(&pool, &server, "a@rcpt.test", text).await.unwrap_err();
    assert!(
        matches!(&failure, Failure::Temporary(e) if e.contains("closed the connection")),
        "the queue retries it later"
    );
    assert_eq!(server.messages().len(), 1, "not sent again at once");
    // The queue's retry: at least once, so the server now has it twice.
    send(&pool, &server, "a@rcpt.test", text).await.unwrap();
    assert_eq!(server.messages(), [text, text]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_closed_is_replaced() {
    for pipelining in [true, false] {
        let server = Server::start(Behaviour {
            pipelining,
            close_after_each: true,
            ..Behaviour::default()
        })
        .await;
        let pool = pool(1);
        for n in 0..3 {
            send(&pool, &server, "pat@rcpt.test", &message(n)).await.unwrap();
        }
        assert_eq!(server.messages(), [message(0), message(1), message(2)]);
        assert_eq!(server.sessions().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_recipients_fail_as_before_and_keep_the_connection() {
    for pipelining in [true, false] {
        let server = Server::start(Behaviour {
            pipelining,
            refuse: HashMap::from([
                ("gone@rcpt.test".to_owned(), "550 5.1.1 no such user"),
                ("full@rcpt.test".to_owned(), "452 4.2.2 mailbox full"),
            ]),
            ..Behaviour::default()
        })
        .await;
        let pool = pool(1);
        send(&pool, &server, "pat@rcpt.test", &message(0)).await.unwrap();
        let gone = send(&pool, &server, "gone@rcpt.test", &message(1)).await.unwrap_err();
        assert!(
            matches!(&gone, Failure::Permanent(e) if e.contains("550 5.1.1")),
            "bounced"
        );
        let full = send(&pool, &server, "full@rcpt.test", &message(2)).await.unwrap_err();
        assert!(
            matches!(&full, Failure::Temporary(e) if e.contains("452 4.2.2")),
            "retried"
        );
        send(&pool, &server, "pat@rcpt.test", &message(3)).await.unwrap();
        assert_eq!(server.messages(), [message(0), message(3)]);
        assert_eq!(server.sessions().len(), 1, "a refusal keeps the connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_with_quit_after_the_timeout() {
    let server = Server::start(Behaviour::default()).await;
    let pool = Pool::new(PoolSettings {
        max_connections_per_destination: 2,
        idle_timeout: Duration::from_millis(200),
    });
    send(&pool, &server, "pat@rcpt.test", &message(0)).await.unwrap();
    wait_until("the idle connection is closed", || server.sessions()[0].closed).await;
    assert!(server.sessions()[0].quit, "closed politely");
    assert_eq!(pool.idle_connections(&server.peer()), 0);
    send(&pool, &server, "pat@rcpt.test", &message(1)).await.unwrap();
    assert_eq!(server.sessions().len(), 2);
    assert_eq!(server.messages(), [message(0), message(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_body_is_never_sent_cut_short() {
    let server = Server::start(Behaviour {
        pipelining: true,
        ..Behaviour::default()
    })
    .await;
    let pool = pool(1);
    let failure = pool
        .send(
            &server.peer(),
            "gateway.test",
            "from@sender.test",
            "pat@rcpt.test",
            || async {
                let chunks = [
                    Ok(b"Subject: half\r\n".to_vec()),
                    Err(Failure::Temporary("cannot read".into())),
                ];
                Ok(futures::stream::iter(chunks).boxed())
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&failure, Failure::Temporary(e) if e == "cannot read"));
    send(&pool, &server, "pat@rcpt.test", &message(1)).await.unwrap();
    assert_eq!(server.messages(), [message(1)], "the half message was discarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_ends_its_reply_is_a_temporary_failure_not_a_memory_sink() {
    // One endless line, then endless continuation lines: neither is held whole.
    for endless in [b"x".repeat(1 << 20), b"250-more\r\n".repeat(1 << 17)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(b"220-").await;
            let _ = stream.write_all(&endless).await;
        });
        let peer = Smarthost {
            host: "127.0.0.1".into(),
            port,
            tls: SmarthostTls::None,
            username: None,
            password: None,
            accept_invalid_certs: false,
            connect_to: Vec::new(),
            tls_config: None,
        };
        let failure = pool(1)
            .send(&peer, "gateway.test", "from@sender.test", "pat@rcpt.test", || async {
                Ok(body(message(0)))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&failure, Failure::Temporary(e) if e.contains("longer than allowed")),
            "{failure:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_auth_happen_once_per_connection() {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("\0gateway@relay.test\0Relay-Pass-99");
    let server = Server::start(Behaviour {
        pipelining: true,
        tls: Some(acceptor()),
        auth: Some(token.clone()),
        ..Behaviour::default()
    })
    .await;
    let peer = Smarthost {
        tls: SmarthostTls::StartTls,
        username: Some("gateway@relay.test".into()),
        password: Some("Relay-Pass-99".into()),
        accept_invalid_certs: true,
        connect_to: Vec::new(),
        tls_config: None,
        ..server.peer()
    };
    let pool = pool(1);
    for n in 0..3 {
        let sent = pool.send(
            &peer,
            "gateway.test",
            "from@sender.test",
            "pat@rcpt.test",
            || async move { Ok(body(message(n))) },
        );
        sent.await.unwrap();
    }
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].secured);
    let verbs: Vec<&str> = sessions[0]
        .commands
        .iter()
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        verbs,
        [
            "EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "RSET", "MAIL",
            "RCPT", "DATA"
        ]
    );
    assert_eq!(server.messages(), [message(0), message(1), message(2)]);

    // STARTTLS is required: a server without it gets nothing.
    let plain = Server::start(Behaviour::default()).await;
    let failure = pool
        .send(
            &Smarthost {
                port: plain.port,
                ..peer.clone()
            },
            "gateway.test",
            "f@s.test",
            "p@r.test",
            || async { Ok(body(message(9))) },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Temporary(e) if e.contains("does not offer STARTTLS")),
        "{failure:?}"
    );
    assert!(plain.messages().is_empty());
}
