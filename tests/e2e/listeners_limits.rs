//! Listener budgets and pre-authentication deadlines: idle or slow clients on
//! one door cannot lock out another door or other clients (issue 8 #5, issue 9
//! #6), and a header block too large to classify is refused, never sent on in
//! clear (issue 8 #6). Every client here comes from 127.0.0.1, so the caps are
//! configured small enough for one address to reach them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::harness::{Instance, RawSmtp, browser};
use super::secure_send::canary;

/// A TLS client that trusts the instance's development certificate.
fn tls_connector(instance: &Instance) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(instance.config.cert_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Reads one line, or `None` when the server closed the connection.
async fn line<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    let n = tokio::time::timeout(Duration::from_secs(15), reader.read_line(&mut line))
        .await
        .expect("a line or a close in time")
        .unwrap_or(0);
    (n > 0).then_some(line)
}

/// Sends NOOP every 300 ms until the server says something other than 250 (or
/// closes); returns that reply and how long the connection lasted. Bounded to
/// 40 NOOPs.
async fn smtp_noop_until_closed(mut conn: RawSmtp) -> (String, Duration) {
    let started = Instant::now();
    for _ in 0..40 {
        conn.send(b"NOOP\r\n").await;
        let reply = conn.read_reply().await;
        if !reply.starts_with("250") {
            return (reply, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("still open after 40 NOOPs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_idle_submission_clients_cannot_block_the_relay() {
    let instance = Instance::start_with(|c| {
        c.smtp.max_connections = 3;
        c.smtp.submission_max_connections_per_ip = 2;
        c.smtp.auth_timeout = 2;
        c.smtp.command_timeout = 3;
    })
    .await;
    // Two unauthenticated submission clients keep themselves busy with NOOP.
    let mut idle = Vec::new();
    for n in 0..2 {
        let mut conn = RawSmtp::connect(instance.submission()).await;
        conn.cmd(&format!("EHLO idle{n}"), "250").await;
        idle.push(tokio::spawn(smtp_noop_until_closed(conn)));
    }
    // A third from the same address is turned away, saying why.
    let mut third = TcpStream::connect(instance.submission()).await.unwrap();
    let mut refused = String::new();
    third.read_to_string(&mut refused).await.unwrap();
    assert!(refused.starts_with("421 4.7.0 "), "{refused}");
    assert!(refused.contains("from your address"), "{refused}");

    // The relay has its own budget: all three of its slots are free, and it
    // takes a message while the submission clients hold theirs.
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(RawSmtp::connect(instance.relay()).await);
    }
    let mut relay = RawSmtp::connect(instance.relay()).await;
    relay.cmd("EHLO mta.smiles.example", "250").await;
    relay.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
    relay.cmd("RCPT TO:<friend@example.com>", "250").await;
    relay.cmd("DATA", "354").await;
    relay
        .cmd(
            "From: ada@smiles.example\r\nTo: friend@example.com\r\nSubject: lunch\r\n\r\nNoon?\r\n.",
            "250",
        )
        .await;
    relay.cmd("QUIT", "221").await;
    instance.wait_for_mail("friend@example.com", 1).await;

    // NOOP does not keep them: each is closed once the sign-in time is up.
    for task in idle {
        let (reply, lasted) = task.await.unwrap();
        assert!(reply.starts_with("421 4.7.0 "), "{reply}");
        assert!(reply.contains("Authentication not completed in time"), "{reply}");
        assert!(
            lasted >= Duration::from_millis(1500) && lasted < Duration::from_secs(5),
            "{lasted:?}"
        );
    }
    // On the relay too, NOOP alone does not restart the idle clock.
    let noop_relay = others.pop().unwrap();
    let (reply, lasted) = smtp_noop_until_closed(noop_relay).await;
    assert!(reply.starts_with("421 4.4.2 "), "{reply}");
    assert!(lasted < Duration::from_secs(5), "{lasted:?}");
    // The freed slots take new clients.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = RawSmtp::connect(instance.submission()).await;
    again.cmd("EHLO again", "250").await;
}

/// A secure message whose header block is `filler` bytes of harmless headers
/// before the `X-Sealpost-Secure: 1` mark.
fn padded_secure_message(canary: &str, filler: usize) -> Vec<u8> {
    let mut mail = String::from("From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: pat@example.org\r\n");
    let line = format!("X-Filler: {}\r\n", "a".repeat(988));
    for _ in 0..filler.div_ceil(line.len()) {
        mail.push_str(&line);
    }
    mail.push_str("Subject: results\r\nX-Sealpost-Secure: 1\r\n\r\nYour results: ");
    mail.push_str(canary);
    mail.push_str("\r\n");
    mail.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_oversized_header_blocks_are_refused_not_sent_in_clear() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    for filler in [271_000, 300_000] {
        let mut relay = RawSmtp::connect(instance.relay()).await;
        relay.cmd("EHLO mta.smiles.example", "250").await;
        relay.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
        relay.cmd("RCPT TO:<pat@example.org>", "250").await;
        relay.cmd("DATA", "354").await;
        relay.send(&padded_secure_message(&canary, filler)).await;
        let reply = relay.cmd(".", "552 5.3.4 ").await;
        assert!(reply.contains("header block is over the 256 KiB limit"), "{reply}");
        relay.cmd("QUIT", "221").await;
    }
    // A message sent after them arrives; the refused ones went nowhere.
    let mut relay = RawSmtp::connect(instance.relay()).await;
    relay.cmd("EHLO mta.smiles.example", "250").await;
    relay.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
    relay.cmd("RCPT TO:<pat@example.org>", "250").await;
    relay.cmd("DATA", "354").await;
    relay
        .cmd(
            "From: ada@smiles.example\r\nTo: pat@example.org\r\nSubject: hi\r\n\r\nhello\r\n.",
            "250",
        )
        .await;
    instance.wait_for_mail("pat@example.org", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = instance.outbox_for("pat@example.org");
    assert_eq!(delivered.len(), 1, "only the small plain message is delivered");
    for mail in &delivered {
        assert!(!String::from_utf8_lossy(mail).contains(&canary));
    }
    let spool: Vec<_> = std::fs::read_dir(instance.config.data_dir.join("spool/in"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(spool.is_empty(), "nothing refused stays spooled: {spool:?}");
}

/// Sends `a NOOP` every 300 ms until the server says `* BYE` or closes;
/// returns that line and how long the connection lasted. Bounded to 40 NOOPs.
async fn imap_noop_until_bye<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> (String, Duration) {
    let started = Instant::now();
    let mut reader = BufReader::new(io);
    for n in 0..40 {
        reader
            .get_mut()
            .write_all(format!("a{n} NOOP\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            let Some(line) = line(&mut reader).await else {
                return (String::new(), started.elapsed());
            };
            if line.starts_with("* BYE") {
                return (line, started.elapsed());
            }
            if line.starts_with(&format!("a{n} ")) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("still signed out and open after 40 NOOPs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_idle_imap_clients_are_bounded_per_listener_and_address() {
    let instance = Instance::start_with(|c| {
        c.imap.max_connections = 4;
        c.imap.max_connections_per_ip = 2;
        c.imap.login_timeout = 2;
    })
    .await;
    let plain = instance.running.addresses.imap;
    let implicit = instance.running.addresses.imap_tls;
    let connector = tls_connector(&instance);
    let localhost = ServerName::try_from("localhost").unwrap();

    // Two clients that never sign in, on the STARTTLS port.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut reader = BufReader::new(TcpStream::connect(plain).await.unwrap());
        let greeting = line(&mut reader).await.unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        idle.push(tokio::spawn(imap_noop_until_bye(reader.into_inner())));
    }
    // A third from the same address is told why it is turned away.
    let mut reader = BufReader::new(TcpStream::connect(plain).await.unwrap());
    let bye = line(&mut reader).await.unwrap();
    assert!(bye.starts_with("* BYE") && bye.contains("from your address"), "{bye}");

    // The implicit-TLS port has its own budget: two more fit.
    let mut tls_idle = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(implicit).await.unwrap();
        let tls = connector.connect(localhost.clone(), tcp).await.unwrap();
        let mut reader = BufReader::new(tls);
        let greeting = line(&mut reader).await.unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        tls_idle.push(tokio::spawn(imap_noop_until_bye(reader.into_inner())));
    }
    // Past it, the refusal comes after the TLS handshake, inside TLS.
    let tcp = TcpStream::connect(implicit).await.unwrap();
    let tls = connector
        .connect(localhost.clone(), tcp)
        .await
        .expect("the handshake comes before the refusal");
    let mut reader = BufReader::new(tls);
    let bye = line(&mut reader).await.unwrap();
    assert!(bye.starts_with("* BYE") && bye.contains("from your address"), "{bye}");

    // Clients that never sign in are logged out after login_timeout, NOOP or not.
    for task in idle.into_iter().chain(tls_idle) {
        let (bye, lasted) = task.await.unwrap();
        assert!(bye.starts_with("* BYE") && bye.contains("not signed in"), "{bye:?}");
        assert!(
            lasted >= Duration::from_millis(1500) && lasted < Duration::from_secs(5),
            "{lasted:?}"
        );
    }
    // Their slots are free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reader = BufReader::new(TcpStream::connect(plain).await.unwrap());
    let greeting = line(&mut reader).await.unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_portal_cuts_off_slow_and_idle_clients() {
    let instance = Instance::start_with(|c| {
        c.portal.client_timeout = 2;
        c.portal.max_connections = 3;
    })
    .await;
    let portal = instance.running.addresses.portal;
    let connector = tls_connector(&instance);
    let localhost = ServerName::try_from("localhost").unwrap();

    // A client dribbles a form body, one byte every 200 ms, for at most 12 s.
    let tcp = TcpStream::connect(portal).await.unwrap();
    let tls = connector.connect(localhost.clone(), tcp).await.unwrap();
    let (mut read, mut write) = tokio::io::split(tls);
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        let head = "POST /signin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n";
        if write.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..60 {
            if write.write_all(b"a").await.is_err() || write.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // The portal keeps answering others meanwhile.
    let page = browser().get(instance.url("/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), read.read_to_end(&mut answer))
        .await
        .expect("the portal ends the slow request");
    let cut_after = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        cut_after >= Duration::from_millis(1500) && cut_after < Duration::from_secs(6),
        "{cut_after:?}"
    );
    dribble.abort();

    // Connections that never even handshake fill the limit for a while only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(portal).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = reqwest_once(&instance).await;
    assert!(refused.is_err(), "a fourth connection is closed: {refused:?}");
    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(8) {
        if reqwest_once(&instance).await.is_ok_and(|status| status == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(served, "once the silent clients time out, the portal answers again");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    drop(silent);
}

/// One GET on a fresh connection.
async fn reqwest_once(instance: &Instance) -> Result<u16, reqwest::Error> {
    let response = browser().get(instance.url("/signin")).send().await?;
    Ok(response.status().as_u16())
}
