//! Postfix, set up as an IT admin would (`relayhost` pointing at the gateway),
//! relays marked mail into Sealpost; Postfix reaches us over STARTTLS. Needs
//! Debian's postfix package and root (Postfix's master runs as root); `.ci/run`
//! installs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::harness::Instance;
use super::secure_send::{canary, secure_message};

/// A throwaway Postfix instance with its own configuration and queue.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn start(relayhost: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let data = dir.path().join("data");
        for sub in [&conf, &data, &dir.path().join("queue")] {
            std::fs::create_dir_all(sub).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").expect("Debian's postfix package (see .ci/run)");
        let master: Vec<String> = master
            .lines()
            .map(|line| {
                if line.starts_with("smtp ") && line.contains(" inet ") {
                    format!("127.0.0.1:{port} inet n - n - - smtpd")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(conf.join("master.cf"), master.join("\n") + "\n").unwrap();
        let root = dir.path().display();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nmyhostname = mta.smiles.example\nmydestination =\ninet_interfaces = 127.0.0.1\n\
inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nrelayhost = [{ip}]:{gw}\nqueue_directory = {root}/queue\n\
data_directory = {root}/data\nsmtp_tls_security_level = may\nsmtp_tls_loglevel = 1\nsmtp_dns_support_level = disabled\n\
maillog_file = {root}/maillog\nmaillog_file_prefixes = /tmp, /var\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n",
                ip = relayhost.ip(),
                gw = relayhost.port(),
            ),
        )
        .unwrap();
        let chown = Command::new("chown").arg("postfix").arg(&data).status().unwrap();
        assert!(chown.success(), "chown to the postfix user (needs root)");
        let started = Command::new("postfix")
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .output()
            .expect("postfix installed");
        let postfix = Self { dir, port };
        assert!(started.status.success(), "postfix start failed: {}", postfix.log());
        postfix
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    async fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..300 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Postfix never logged {needle:?}:\n{}", self.log());
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(self.conf()).arg("abort").output();
    }
}

async fn submit(port: u16, from: &str, to: &str, message: &[u8]) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope, transport::smtp::client::Tls};
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::None)
        .build();
    let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    transport
        .send_raw(&envelope, message)
        .await
        .expect("Postfix accepts the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_relays_marked_mail_into_the_gateway_over_starttls() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let postfix = Postfix::start(instance.relay());

    let canary = canary();
    submit(
        postfix.port,
        "ada@smiles.example",
        "pat@example.org",
        &secure_message("pat@example.org", &canary, b"scan", Some("patient")),
    )
    .await;
    let notification = instance.wait_for_mail("pat@example.org", 1).await;
    assert!(!String::from_utf8_lossy(&notification).contains(&canary));
    let log = postfix.wait_for_log("Message accepted and sealed").await;
    assert!(
        log.contains(&format!(
            "TLS connection established to 127.0.0.1[127.0.0.1]:{}",
            instance.relay().port()
        )),
        "Postfix should use STARTTLS:\n{log}"
    );

    // Ordinary mail through the same path passes through to the outbound route.
    submit(
        postfix.port,
        "ada@smiles.example",
        "lab@example.com",
        b"Subject: Supplies\r\n\r\nTwo boxes of gloves.\r\n",
    )
    .await;
    let relayed = instance.wait_for_mail("lab@example.com", 1).await;
    let text = String::from_utf8_lossy(&relayed);
    assert!(
        text.contains("Two boxes of gloves.") && text.contains("by mta.smiles.example (Postfix)"),
        "{text}"
    );
    assert!(!postfix.log().contains("status=bounced"));
}
