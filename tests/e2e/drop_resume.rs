//! `sealpost drop` resumes an upload after the server was stopped mid-way
//! and started again: a relay the test controls holds the upload part-way,
//! the server stops, starts again on the same folder and database, and the
//! client goes on from the byte the server had sealed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sealpost::app::{self, Listeners};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::drop::{ADA, app_password, download, drop_command, file_bytes, register_recipient};
use super::harness::Instance;

/// A TCP relay between the CLI and the portal that the test controls: it
/// passes at most `allowed` bytes from the client, and `cut` ends every
/// connection, as a server going away does.
struct Relay {
    port: u16,
    upstream: Arc<std::sync::Mutex<u16>>,
    allowed: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: u16, allowed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Arc::new(std::sync::Mutex::new(upstream));
        let allowed = Arc::new(AtomicU64::new(allowed));
        let passed = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (upstream, allowed, passed, connections) =
                (upstream.clone(), allowed.clone(), passed.clone(), connections.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let to = *upstream.lock().unwrap();
                    let (allowed, passed) = (allowed.clone(), passed.clone());
                    let task = tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                            return;
                        };
                        let (mut client_read, mut client_write) = client.into_split();
                        let (mut server_read, mut server_write) = server.into_split();
                        let up = async {
                            let mut buffer = vec![0u8; 16 * 1024];
                            loop {
                                while passed.load(Ordering::SeqCst) >= allowed.load(Ordering::SeqCst) {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                let room = allowed.load(Ordering::SeqCst) - passed.load(Ordering::SeqCst);
                                let want = buffer.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                                let n = match client_read.read(&mut buffer[..want]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                passed.fetch_add(n as u64, Ordering::SeqCst);
                                if server_write.write_all(&buffer[..n]).await.is_err() {
                                    return;
                                }
                            }
                        };
                        let down = tokio::io::copy(&mut server_read, &mut client_write);
                        tokio::select! { () = up => {}, _ = down => {} }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            port,
            upstream,
            allowed,
            passed,
            connections,
            accept,
        }
    }

    /// Ends every open connection (the client sees them reset).
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_after_the_server_is_stopped_mid_way_and_started_again() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let password = app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let content = file_bytes(3 * 1024 * 1024, "resumed");
    let path = folder.path().join("cbct.dcm");
    std::fs::write(&path, &content).unwrap();

    // The relay lets ~1.2 MB through, then holds the rest.
    let relay = Relay::start(instance.running.addresses.portal.port(), 1_200_000).await;
    let mut child = drop_command(
        &instance,
        relay.port,
        &password,
        &[
            path.to_str().unwrap(),
            "--to",
            "pat@example.org",
            "--role",
            "patient",
            "--chunk-bytes",
            "262144",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();

    // Wait until the relay holds the upload mid-way: the chunks before the
    // held one were answered, so they are sealed on the server.
    for _ in 0..1200 {
        if relay.passed.load(Ordering::SeqCst) >= relay.allowed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(relay.passed.load(Ordering::SeqCst) >= relay.allowed.load(Ordering::SeqCst));

    // The server stops (the client's connection dies with it) and starts
    // again on the same folder and database, behind a new port.
    let port_before = instance.running.addresses.portal.port();
    relay.cut();
    let stopped = instance.stop().await;
    let listeners = Listeners {
        relay: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        submission: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        portal: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        imap: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        imap_tls: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let running = app::start(&stopped.config, listeners, stopped.clock.clone())
        .await
        .unwrap();
    let instance = Instance {
        dir: stopped.dir,
        running,
        clock: stopped.clock,
        config: stopped.config,
    };
    assert_ne!(instance.running.addresses.portal.port(), port_before);
    *relay.upstream.lock().unwrap() = instance.running.addresses.portal.port();
    relay.allowed.store(u64::MAX, Ordering::SeqCst);

    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let status = tokio::time::timeout(Duration::from_mins(2), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let resumed_at: u64 = stderr
        .split("going on from byte ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the client did not resume: {stderr}"));
    assert!(
        resumed_at > 0 && resumed_at < content.len() as u64,
        "resumed at {resumed_at}: {stderr}"
    );

    let (http, message) = register_recipient(&instance, "pat@example.org").await;
    assert!(
        download(&instance, &http, &message, 0).await == content,
        "the resumed file differs"
    );
}
