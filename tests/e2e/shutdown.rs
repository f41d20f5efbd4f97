//! Graceful shutdown of the real `sealpost serve` process: SIGTERM (what
//! systemd sends) in the middle of a large SMTP upload lets the upload finish
//! and be acknowledged, refuses new connections, then exits 0; the
//! acknowledged message is sealed after a restart.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Row as _};

use super::harness::RawSmtp;

/// Free ports for the five listeners.
pub(super) struct Ports {
    pub(super) relay: u16,
    pub(super) submission: u16,
    pub(super) imap: u16,
    pub(super) imaps: u16,
    pub(super) portal: u16,
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `sealpost` with the folder's configuration (environment only, no file).
pub(super) fn sealpost(dir: &Path, ports: &Ports) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", dir.join("data"))
        .env("SEALPOST_LOG", "warn")
        .env("SEALPOST_SMTP_RELAY_LISTEN", format!("127.0.0.1:{}", ports.relay))
        .env(
            "SEALPOST_SMTP_SUBMISSION_LISTEN",
            format!("127.0.0.1:{}", ports.submission),
        )
        .env("SEALPOST_IMAP_LISTEN", format!("127.0.0.1:{}", ports.imap))
        .env("SEALPOST_IMAP_TLS_LISTEN", format!("127.0.0.1:{}", ports.imaps))
        .env("SEALPOST_PORTAL_LISTEN", format!("127.0.0.1:{}", ports.portal))
        .env("SEALPOST_PUBLIC_URL", format!("https://localhost:{}", ports.portal))
        .env("SEALPOST_SERVER_SHUTDOWN_GRACE", "120");
    command
}

pub(super) fn run(dir: &Path, ports: &Ports, args: &[&str]) {
    let output = sealpost(dir, ports).args(args).output().unwrap();
    assert!(output.status.success(), "sealpost {args:?}: {output:?}");
}

/// A running `sealpost serve`; killed (SIGKILL) if the test ends without
/// stopping it, so a failing test leaves no process behind.
pub(super) struct Server(Option<Child>);

impl Server {
    pub(super) async fn start(dir: &Path, ports: &Ports) -> Self {
        Self::start_with(dir, ports, &[]).await
    }

    /// [`Server::start`] with more environment variables.
    pub(super) async fn start_with(dir: &Path, ports: &Ports, env: &[(&str, String)]) -> Self {
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = sealpost(dir, ports)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self(Some(child));
        let relay: SocketAddr = format!("127.0.0.1:{}", ports.relay).parse().unwrap();
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(relay).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sealpost serve did not listen within 60 s: {}", log_of(dir));
    }

    pub(super) fn signal(&self, name: &str) {
        let pid = self.0.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (up to two minutes) for the process to exit.
    pub(super) async fn exited(&mut self) -> ExitStatus {
        let child = self.0.as_mut().unwrap();
        for _ in 0..1200 {
            if let Some(status) = child.try_wait().unwrap() {
                self.0 = None;
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sealpost serve did not exit within 120 s after SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

/// Whether connecting to `addr` is refused (each listener closes as soon as
/// its task sees the stop: tries for up to 10 s).
async fn refused(addr: SocketAddr) -> bool {
    // Up to 30 s: a loaded machine (the whole suite in parallel) may take a while
    // to run the stopping task.
    for _ in 0..600 {
        match tokio::net::TcpStream::connect(addr).await {
            // Refused, or reset by a listener closing with this connection in its
            // backlog: either way nobody accepts connections there any more.
            Err(_) => return true,
            // A loopback connect to a closed port in the ephemeral range can meet
            // itself (TCP simultaneous open): nobody listens there, so it counts
            // as refused.
            Ok(stream) if stream.local_addr().ok() == stream.peer_addr().ok() => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

/// The states of the messages in the folder's database.
async fn message_states(dir: &Path) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", dir.join("data/sealpost.db").display());
    let mut db = AnyConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT state FROM messages")
        .fetch_all(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    rows.iter().map(|r| r.try_get("state").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_large_upload_lets_it_finish_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        relay: free_port(),
        submission: free_port(),
        imap: free_port(),
        imaps: free_port(),
        portal: free_port(),
    };
    run(dir.path(), &ports, &["migrate"]);
    run(
        dir.path(),
        &ports,
        &["practice", "add", "--name", "Smiles", "--domain", "smiles.example"],
    );
    run(
        dir.path(),
        &ports,
        &[
            "user",
            "add",
            "--email",
            "ada@smiles.example",
            "--name",
            "Dr Ada",
            "--role",
            "doctor",
            "--practice",
            "smiles.example",
            "--paid",
        ],
    );
    let mut server = Server::start(dir.path(), &ports).await;
    let relay: SocketAddr = format!("127.0.0.1:{}", ports.relay).parse().unwrap();

    let mut smtp = RawSmtp::connect(relay).await;
    smtp.cmd("EHLO client.example", "250").await;
    smtp.cmd("MAIL FROM:<ada@smiles.example>", "250").await;
    smtp.cmd("RCPT TO:<pat@patient.example>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(
        b"From: Dr Ada <ada@smiles.example>\r\nTo: pat@patient.example\r\nSubject: [secure] Scans\r\n\
          MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    )
    .await;
    // 6 MB of base64 lines, written slowly; SIGTERM after the first 1.5 MB.
    let line = [b'Q'; 76];
    let mut chunk = Vec::new();
    for _ in 0..840 {
        chunk.extend_from_slice(&line);
        chunk.extend_from_slice(b"\r\n");
    }
    for i in 0..96 {
        if i == 24 {
            server.signal("TERM");
            // Stopping closes the listeners: a new client is refused.
            assert!(
                refused(relay).await,
                "new SMTP connections were still accepted after SIGTERM"
            );
            let portal: SocketAddr = format!("127.0.0.1:{}", ports.portal).parse().unwrap();
            assert!(
                refused(portal).await,
                "the portal still accepted connections after SIGTERM"
            );
        }
        smtp.send(&chunk).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    smtp.send(b".\r\n").await;
    let reply = smtp.read_reply().await;
    assert!(
        reply.starts_with("250 "),
        "the upload in flight is acknowledged: {reply}"
    );
    // Then the session is closed for the shutdown.
    let reply = smtp.read_reply().await;
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    let exit = server.exited().await;
    assert!(exit.success(), "exit status {exit:?}: {}", log_of(dir.path()));

    // Nothing acknowledged is lost: after a restart the message is sealed.
    let mut server = Server::start(dir.path(), &ports).await;
    let mut states = Vec::new();
    for _ in 0..600 {
        states = message_states(dir.path()).await;
        if states.iter().any(|s| s == "sealed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states, ["sealed"], "{}", log_of(dir.path()));
    server.signal("INT");
    let exit = server.exited().await;
    assert!(exit.success(), "Ctrl-C stops cleanly too: {exit:?}");
}
