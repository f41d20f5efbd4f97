//! A small SMTP server for the pool's tests that records every session
//! (commands, messages taken, whether commands came before their replies were
//! due) and can misbehave on cue: drop a connection at DATA or in the middle of
//! the data or after it, close kept connections, refuse recipients, leave
//! PIPELINING out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::pool::{Pool, PoolSettings};
use super::{Body, Failure, Smarthost, SmarthostTls};

#[derive(Debug, Default, Clone)]
pub(super) struct Session {
    pub(super) commands: Vec<String>,
    /// Bodies taken (end of data seen), dot-unstuffed.
    pub(super) messages: Vec<String>,
    /// For each MAIL and RCPT: whether the next command was already there
    /// before this one's reply went out (only when `probe` is on).
    pub(super) early: Vec<bool>,
    pub(super) quit: bool,
    /// STARTTLS was done.
    pub(super) secured: bool,
    pub(super) closed: bool,
}

#[derive(Default)]
pub(super) struct Behaviour {
    pub(super) pipelining: bool,
    /// Wait a moment before each MAIL/RCPT reply to see if more arrives.
    pub(super) probe: bool,
    /// Recipient → the reply to its RCPT.
    pub(super) refuse: HashMap<String, &'static str>,
    /// Once: a DATA for `cut@rcpt.test` gets its connection cut instead of 354.
    pub(super) drop_at_data: AtomicBool,
    /// Once: a body containing `DROP-IN-DATA` gets its connection cut mid-data.
    pub(super) drop_in_data: AtomicBool,
    /// Once: a body containing `DROP-AFTER-DOT` is taken, then the connection
    /// is cut before the reply.
    pub(super) drop_after_dot: AtomicBool,
    /// After each message, say 421 and close (as a server that times out idle
    /// clients would, later).
    pub(super) close_after_each: bool,
    /// Offer STARTTLS with this acceptor.
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Take `AUTH PLAIN <this>` (after STARTTLS) and nothing else.
    pub(super) auth: Option<String>,
}

pub(super) struct Server {
    pub(super) port: u16,
    pub(super) sessions: Arc<Mutex<Vec<Arc<Mutex<Session>>>>>,
}

impl Server {
    pub(super) async fn start(behaviour: Behaviour) -> Self {
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

    pub(super) fn peer(&self) -> Smarthost {
        Smarthost {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmarthostTls::None,
            username: None,
            password: None,
            accept_invalid_certs: false,
            connect_to: Vec::new(),
            tls_config: None,
        }
    }

    pub(super) fn sessions(&self) -> Vec<Session> {
        let sessions = self.sessions.lock().unwrap();
        sessions.iter().map(|s| s.lock().unwrap().clone()).collect()
    }

    pub(super) fn messages(&self) -> Vec<String> {
        let mut all: Vec<String> = self.sessions().into_iter().flat_map(|s| s.messages).collect();
        all.sort();
        all
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn write(stream: &mut BufReader<Box<dyn Io>>, text: &[u8]) -> std::io::Result<()> {
    stream.write_all(text).await?;
    stream.flush().await
}

async fn serve(stream: TcpStream, behaviour: &Behaviour, session: &Mutex<Session>) -> std::io::Result<()> {
    let mut reader: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    write(&mut reader, b"220 sink.test ESMTP\r\n").await?;
    let mut secured = false;
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
        let ehlo;
        let reply: &str = match verb.as_str() {
            "EHLO" => {
                let mut lines = vec!["250-sink.test"];
                if behaviour.pipelining {
                    lines.push("250-PIPELINING");
                }
                if behaviour.tls.is_some() && !secured {
                    lines.push("250-STARTTLS");
                }
                if behaviour.auth.is_some() && secured {
                    lines.push("250-AUTH PLAIN");
                }
                lines.push("250 8BITMIME");
                ehlo = lines.join("\r\n");
                &ehlo
            }
            "STARTTLS" if !secured => match &behaviour.tls {
                Some(acceptor) => {
                    write(&mut reader, b"220 2.0.0 go ahead\r\n").await?;
                    assert!(reader.buffer().is_empty(), "nothing may come before the handshake");
                    let tls = acceptor.accept(reader.into_inner()).await?;
                    reader = BufReader::new(Box::new(tls));
                    secured = true;
                    session.lock().unwrap().secured = true;
                    continue;
                }
                None => "502 5.5.1 no TLS here",
            },
            "AUTH"
                if secured
                    && behaviour
                        .auth
                        .as_deref()
                        .is_some_and(|token| command == format!("AUTH PLAIN {token}")) =>
            {
                "235 2.7.0 ok"
            }
            "AUTH" => "535 5.7.8 no",
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
                write(&mut reader, b"354 go ahead\r\n").await?;
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
                    write(&mut reader, b"250 2.0.0 queued\r\n421 4.4.2 sink.test idle timeout\r\n").await?;
                    return Ok(());
                }
                "250 2.0.0 queued"
            }
            "QUIT" => {
                session.lock().unwrap().quit = true;
                write(&mut reader, b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 unknown command",
        };
        write(&mut reader, format!("{reply}\r\n").as_bytes()).await?;
    }
}

pub(super) fn body(text: String) -> Body {
    futures::stream::iter([Ok(text.into_bytes())]).boxed()
}

pub(super) async fn send(pool: &Pool, server: &Server, to: &str, text: &str) -> Result<(), Failure> {
    let text = text.to_owned();
    pool.send(&server.peer(), "gateway.test", "from@sender.test", to, || {
        let text = text.clone();
        async move { Ok(body(text)) }
    })
    .await
}

pub(super) fn pool(max: usize) -> Arc<Pool> {
    Pool::new(PoolSettings {
        max_connections_per_destination: max,
        idle_timeout: Duration::from_mins(1),
    })
}

pub(super) fn message(n: usize) -> String {
    format!("Subject: n\r\n\r\nmessage {n:03}\r\n.leading dot\r\n")
}

pub(super) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting: {what}");
}

/// A TLS acceptor with a throwaway self-signed certificate.
pub(super) fn acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("certificate and key match");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
