//! The connection pool against a small SMTP server that records every session
//! (commands, messages taken, whether commands came before their replies were
//! due) and can misbehave on cue: drop a connection in the middle of the data or
//! after it, close kept connections, refuse recipients, leave PIPELINING out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::pool::{Pool, PoolSettings};
use super::{Body, Failure, Smarthost, SmarthostTls};

#[derive(Debug, Default, Clone)]
struct Session {
    commands: Vec<String>,
    /// Bodies taken (end of data seen), dot-unstuffed.
    messages: Vec<String>,
    /// For each MAIL and RCPT: whether the next command was already there
    /// before this one's reply went out (only when `probe` is on).
    early: Vec<bool>,
    quit: bool,
    closed: bool,
}

#[derive(Default)]
struct Behaviour {
    pipelining: bool,
    /// Wait a moment before each MAIL/RCPT reply to see if more arrives.
    probe: bool,
    /// Recipient → the reply to its RCPT.
    refuse: HashMap<String, &'static str>,
    /// Once: a DATA for `cut@rcpt.test` gets its connection cut instead of 354.
    drop_at_data: AtomicBool,
    /// Once: a body containing `DROP-IN-DATA` gets its connection cut mid-data.
    drop_in_data: AtomicBool,
    /// Once: a body containing `DROP-AFTER-DOT` is taken, then the connection
    /// is cut before the reply.
    drop_after_dot: AtomicBool,
    /// After each message, say 421 and close (as a server that times out idle
    /// clients would, later).
    close_after_each: bool,
}

struct Server {
    port: u16,
    sessions: Arc<Mutex<Vec<Arc<Mutex<Session>>>>>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions: Arc<Mutex<Vec<Arc<Mutex<Session>>>>> = Arc::default();
        let behaviour = Arc::new(behaviour);
        let all = Arc::clone(&sessions);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = Arc::new(Mutex::new(Session::default()));
                all.lock().unwrap().push(Arc::clone(&session));
                let behaviour = Arc::clone(&behaviour);
                tokio::spawn(async move {
                    let _ = serve(stream, &behaviour, &session).await;
                    session.lock().unwrap().closed = true;
                });
            }
        });
        Self { port, sessions }
    }

    fn peer(&self) -> Smarthost {
        Smarthost {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmarthostTls::None,
            username: None,
            password: None,
            accept_invalid_certs: false,
        }
    }

    fn sessions(&self) -> Vec<Session> {
        let sessions = self.sessions.lock().unwrap();
        sessions.iter().map(|s| s.lock().unwrap().clone()).collect()
    }

    fn messages(&self) -> Vec<String> {
        let mut all: Vec<String> = self.sessions().into_iter().flat_map(|s| s.messages).collect();
        all.sort();
        all
    }
}

async fn serve(stream: TcpStream, behaviour: &Behaviour, session: &Mutex<Session>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut recipients = 0;
    let mut cut_here = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        session.lock().unwrap().commands.push(command.clone());
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if behaviour.probe && (verb == "MAIL" || verb == "RCPT") {
            // Already buffered, or arriving while the reply is held back.
            let early = !reader.buffer().is_empty()
                || tokio::time::timeout(Duration::from_millis(100), reader.fill_buf())
                    .await
                    .is_ok();
            session.lock().unwrap().early.push(early);
        }
        let reply: &str = match verb.as_str() {
            "EHLO" if behaviour.pipelining => "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME",
            "EHLO" => "250-sink.test\r\n250 8BITMIME",
            "MAIL" | "RSET" => {
                recipients = 0;
                cut_here = false;
                "250 2.1.0 ok"
            }
            "RCPT" => {
                let to = command
                    .split_once('<')
                    .map(|(_, r)| r.trim_end_matches('>'))
                    .unwrap_or_default();
                if let Some(reply) = behaviour.refuse.get(to) {
                    reply
                } else {
                    cut_here |= to == "cut@rcpt.test";
                    recipients += 1;
                    "250 2.1.5 ok"
                }
            }
            "DATA" if recipients == 0 => "554 5.5.1 no valid recipients",
            "DATA" if cut_here && behaviour.drop_at_data.swap(false, Ordering::SeqCst) => return Ok(()),
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut body = String::new();
                loop {
                    let mut data = String::new();
                    if reader.read_line(&mut data).await? == 0 {
                        return Ok(()); // cut: nothing taken
                    }
                    if data == ".\r\n" {
                        break;
                    }
                    body.push_str(data.strip_prefix('.').unwrap_or(&data));
                    if body.contains("DROP-IN-DATA") && behaviour.drop_in_data.swap(false, Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                let cut = body.contains("DROP-AFTER-DOT") && behaviour.drop_after_dot.swap(false, Ordering::SeqCst);
                session.lock().unwrap().messages.push(body);
                recipients = 0;
                if cut {
                    return Ok(());
                }
                if behaviour.close_after_each {
                    write
                        .write_all(b"250 2.0.0 queued\r\n421 4.4.2 sink.test idle timeout\r\n")
                        .await?;
                    return Ok(());
                }
                "250 2.0.0 queued"
            }
            "QUIT" => {
                session.lock().unwrap().quit = true;
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 unknown command",
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

fn body(text: String) -> Body {
    futures::stream::iter([Ok(text.into_bytes())]).boxed()
}

async fn send(pool: &Pool, server: &Server, to: &str, text: &str) -> Result<(), Failure> {
    let text = text.to_owned();
    pool.send(&server.peer(), "gateway.test", "from@sender.test", to, || {
        let text = text.clone();
        async move { Ok(body(text)) }
    })
    .await
}

fn pool(max: usize) -> Arc<Pool> {
    Pool::new(PoolSettings {
        max_connections_per_destination: max,
        idle_timeout: Duration::from_mins(1),
    })
}

fn message(n: usize) -> String {
    format!("Subject: n\r\n\r\nmessage {n:03}\r\n.leading dot\r\n")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting: {what}");
}

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

/// Not a test: `bench/deliver/run.sh --client` runs it. The SMTP client alone
/// against Postfix's `smtp-sink` (`SMTP_SINK_PORT`: a sink already running),
/// one connection per message one at a time (as delivery worked before the pool)
/// vs the pool; prints messages/s and connections opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/deliver/run.sh --client"]
async fn bench_connection_per_message_vs_pool() {
    let port: u16 = std::env::var("SMTP_SINK_PORT")
        .expect("SMTP_SINK_PORT")
        .parse()
        .unwrap();
    let count: usize = std::env::var("BENCH_MESSAGES").map_or(2000, |n| n.parse().unwrap());
    let size: usize = std::env::var("BENCH_SIZE").map_or(10240, |n| n.parse().unwrap());
    let width: usize = std::env::var("BENCH_POOL").map_or(10, |n| n.parse().unwrap());
    let peer = Smarthost {
        host: "127.0.0.1".into(),
        port,
        tls: SmarthostTls::None,
        username: None,
        password: None,
        accept_invalid_certs: false,
    };
    let text = Arc::new(format!("Subject: bench\r\n\r\n{}\r\n", "x".repeat(size)));
    let cpu_before = cpu_seconds();
    let started = std::time::Instant::now();
    for n in 0..count {
        let mut connection = super::smtp_client::Connection::open(&peer, "bench.test").await.unwrap();
        let sent = connection
            .send("from@bench.test", &format!("{n}@rcpt.test"), body(text.to_string()))
            .await;
        assert!(sent.is_ok(), "message {n}");
        connection.quit().await;
    }
    let before = started.elapsed();
    let cpu_single = cpu_seconds();
    let single = Pool::new(PoolSettings {
        max_connections_per_destination: 1,
        idle_timeout: Duration::from_secs(30),
    });
    let started = std::time::Instant::now();
    for n in 0..count {
        let text = text.to_string();
        let to = format!("{n}@rcpt.test");
        let sent = single.send(&peer, "bench.test", "from@bench.test", &to, || {
            let text = text.clone();
            async move { Ok(body(text)) }
        });
        assert!(sent.await.is_ok(), "message {n}");
    }
    let reused = started.elapsed();
    let cpu_pool = cpu_seconds();
    let pool = Pool::new(PoolSettings {
        max_connections_per_destination: width,
        idle_timeout: Duration::from_secs(30),
    });
    let started = std::time::Instant::now();
    let sends = (0..count).map(|n| {
        let (pool, peer, text) = (Arc::clone(&pool), peer.clone(), Arc::clone(&text));
        tokio::spawn(async move {
            let to = format!("{n}@rcpt.test");
            pool.send(&peer, "bench.test", "from@bench.test", &to, || {
                let text = text.to_string();
                async move { Ok(body(text)) }
            })
            .await
        })
    });
    let results = futures::stream::iter(sends)
        .buffer_unordered(width * 2)
        .collect::<Vec<_>>()
        .await;
    let after = started.elapsed();
    let cpu_end = cpu_seconds();
    let ms = |cpu: f64| cpu * 1000.0 / count as f64;
    assert!(results.iter().all(|r| matches!(r, Ok(Ok(())))));
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    println!("client alone: {count} messages x {size} B into smtp-sink");
    println!(
        "  one connection per message, one at a time: {:>7.0} msgs/s, {:.3} CPU ms/msg, {count} connections",
        rate(before),
        ms(cpu_single - cpu_before)
    );
    println!(
        "  pool of 1, one at a time:                   {:>7.0} msgs/s, {:.3} CPU ms/msg, {} connection",
        rate(reused),
        ms(cpu_pool - cpu_single),
        single.connections_opened(&peer)
    );
    println!(
        "  pool of {width}, {} at once:                  {:>7.0} msgs/s, {:.3} CPU ms/msg, {} connections",
        width * 2,
        rate(after),
        ms(cpu_end - cpu_pool),
        pool.connections_opened(&peer)
    );
}

/// This process's user + system CPU seconds so far (Linux: `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11..13)
        .map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0 // USER_HZ
}
