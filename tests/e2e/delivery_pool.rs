//! Delivery through the connection pool, against Postfix's `smtp-sink` as the
//! smarthost: 50 queued mails over a pool of 3 use at most 3 connections, each
//! mail arrives exactly once, later mails on a connection start with RSET, and
//! this holds with and without PIPELINING offered.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::Instance;

/// A throwaway `smtp-sink` on a free loopback port, dumping every mail to a file
/// and tracing the sessions (`-v`) to another. Killed when dropped.
struct Sink {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sink {
    fn start(pipelining: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops to `nobody` (it refuses to run as root otherwise).
        let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o777);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let trace = std::fs::File::create(dir.path().join("trace")).unwrap();
        let mut command = Command::new("smtp-sink");
        command.args(["-u", "nobody", "-v", "-D"]).arg(dir.path().join("dump"));
        if !pipelining {
            command.arg("-p");
        }
        let child = command
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(trace)
            .spawn()
            .expect("smtp-sink from Debian's postfix package (see .ci/run)");
        Self { dir, port, child }
    }

    fn file(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The recipients of the mails taken, in order.
    fn recipients(&self) -> Vec<String> {
        self.file("dump")
            .lines()
            .filter_map(|line| line.strip_prefix("X-Rcpt-Args: <"))
            .map(|rcpt| rcpt.trim_end_matches('>').to_owned())
            .collect()
    }

    /// How often the trace shows `what` as a whole line after `smtp-sink: `.
    fn traced(&self, what: &str) -> usize {
        let trace = self.file("trace");
        trace
            .lines()
            .filter(|line| line.strip_prefix("smtp-sink: ").is_some_and(|l| l.starts_with(what)))
            .count()
    }

    /// Waits until the sink answers; the trace then shows that one probing
    /// connection, connected and gone.
    async fn wait_listening(&self) {
        for _ in 0..500 {
            if let Ok(probe) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                drop(probe);
                for _ in 0..500 {
                    if self.traced("disconnect") == 1 {
                        assert_eq!(self.traced("connect ("), 1);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("smtp-sink did not start: {}", self.file("trace"));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for(sink: &Sink, count: usize) {
    for _ in 0..1200 {
        if sink.recipients().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {} of {count} mails reached smtp-sink", sink.recipients().len());
}

fn mail(n: usize) -> Vec<u8> {
    format!(
        "From: secure@localhost\r\nTo: r{n}@rcpt.example\r\nSubject: pooled {n}\r\n\r\nMail {n}.\r\n.A line with a leading dot.\r\n"
    )
    .into_bytes()
}

async fn queue_empty(instance: &Instance) -> bool {
    let queue = instance.store().queue();
    let queued = queue
        .outbound_in_state(store::states::OutboundState::Queued, 100)
        .await
        .unwrap();
    let failed = queue
        .outbound_in_state(store::states::OutboundState::Failed, 100)
        .await
        .unwrap();
    queued.is_empty() && failed.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mails_over_a_pool_of_three_reach_smtp_sink_once_each() {
    for pipelining in [true, false] {
        let sink = Sink::start(pipelining);
        let instance = Instance::start_with(|c| {
            c.outbound.mode = sealpost::config::OutboundMode::Smarthost;
            c.outbound.smarthost = format!("127.0.0.1:{}", sink.port);
            c.outbound.smarthost_tls = sealpost::config::SmarthostTls::None;
            c.outbound.max_connections_per_destination = 3;
        })
        .await;
        sink.wait_listening().await;
        for n in 0..50 {
            let rcpt = format!("r{n}@rcpt.example");
            instance
                .store()
                .queue()
                .queue_mail(None, "", &rcpt, &mail(n))
                .await
                .unwrap();
        }
        wait_for(&sink, 50).await;
        let mut recipients = sink.recipients();
        recipients.sort();
        let mut expected: Vec<String> = (0..50).map(|n| format!("r{n}@rcpt.example")).collect();
        expected.sort();
        assert_eq!(recipients, expected, "each mail exactly once");
        let connections = sink.traced("connect (") - 1; // less the probe
        eprintln!("pipelining {pipelining}: 50 mails over {connections} connections");
        assert!(
            (1..=3).contains(&connections),
            "{connections} connections for a pool of 3"
        );
        // Each mail after a connection's first starts with RSET.
        assert_eq!(sink.traced("RSET"), 50 - connections, "pipelining {pipelining}");
        let dump = sink.file("dump");
        assert!(
            dump.contains("\n.A line with a leading dot."),
            "dot-stuffing undone by the sink"
        );
        // The queue records each as sent (the last one may lag the sink a moment).
        let mut sent = 0;
        for _ in 0..600 {
            let queue = instance.store().queue();
            sent = queue
                .outbound_in_state(store::states::OutboundState::Sent, 100)
                .await
                .unwrap()
                .len();
            if sent == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sent, 50);
        assert!(queue_empty(&instance).await);
        instance.stop().await;
    }
}

/// Ordinary mail relayed under load (issue 14): 160 messages over 10 SMTP
/// connections at once into the relay, delivered through a pool of 4 to a
/// real `smtp-sink`. Every message arrives exactly once (by its tag), some of
/// them large enough to be written out while they arrive; afterwards nothing
/// is queued and no spool file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_relayed_over_concurrent_connections_reaches_smtp_sink_once_each() {
    const MESSAGES: usize = 160;
    const CONNECTIONS: usize = 10;
    let sink = Sink::start(true);
    let instance = Instance::start_with(|c| {
        c.outbound.mode = sealpost::config::OutboundMode::Smarthost;
        c.outbound.smarthost = format!("127.0.0.1:{}", sink.port);
        c.outbound.smarthost_tls = sealpost::config::SmarthostTls::None;
        c.outbound.max_connections_per_destination = 4;
    })
    .await;
    sink.wait_listening().await;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONNECTIONS {
        let relay = instance.relay();
        tasks.spawn(async move {
            let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(relay.port())
                .tls(lettre::transport::smtp::client::Tls::None)
                .build();
            for n in (lane..MESSAGES).step_by(CONNECTIONS) {
                // Every 40th is 300 KB: its spool file is written before the end.
                let filler = if n % 40 == 0 { "x".repeat(76) + "\r\n" } else { String::new() };
                let message = format!(
                    "From: ops@clinic.example\r\nTo: r{}@lab.example\r\nSubject: order TAG-{n}-END\r\n\r\nBox {n}.\r\n{}",
                    n % 7,
                    filler.repeat(4000)
                );
                let envelope = lettre::address::Envelope::new(
                    Some("ops@clinic.example".parse().unwrap()),
                    vec![format!("r{}@lab.example", n % 7).parse().unwrap()],
                )
                .unwrap();
                lettre::AsyncTransport::send_raw(&transport, &envelope, message.as_bytes())
                    .await
                    .expect("mail accepted");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    wait_for(&sink, MESSAGES).await;
    let dump = sink.file("dump");
    let mut seen = vec![0usize; MESSAGES];
    for part in dump.split("TAG-").skip(1) {
        let n: usize = part.split("-END").next().unwrap().parse().unwrap();
        seen[n] += 1;
    }
    let wrong: Vec<(usize, usize)> = seen.iter().copied().enumerate().filter(|&(_, c)| c != 1).collect();
    assert!(
        wrong.is_empty(),
        "(message, times at the sink) not exactly once: {wrong:?}"
    );
    assert_eq!(sink.recipients().len(), MESSAGES, "no mail twice");
    let connections = sink.traced("connect (") - 1; // less the probe
    assert!(
        (1..=4).contains(&connections),
        "{connections} connections for a pool of 4"
    );
    // Every outcome recorded, and the spool files gone with them.
    let spool = instance.config.data_dir.join("spool/in");
    let mut left = usize::MAX;
    for _ in 0..600 {
        left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
        if left == 0 && queue_empty(&instance).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "spool files left after delivery");
    assert!(queue_empty(&instance).await);
    let sent = instance
        .store()
        .queue()
        .outbound_in_state(store::states::OutboundState::Sent, 1000)
        .await
        .unwrap()
        .len();
    assert_eq!(sent, MESSAGES);
    instance.stop().await;
}
