//! Starts an instance per test and offers the clients the tests use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sealpost::app::{self, Listeners, Running};
use sealpost::config::Config;
use store::accounts::Role;
use store::{ManualClock, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Every log line any instance wrote, for the "no PHI in logs" checks.
pub static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink(Arc::clone(&buffer));
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .try_init();
        buffer
    });
}

pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned()
}

/// A running instance in its own temp folder.
pub struct Instance {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub clock: Arc<ManualClock>,
    pub config: Config,
}

/// A fresh `PostgreSQL` database when `SEALPOST_TEST_POSTGRES_URL` is set.
pub async fn database_url() -> Option<String> {
    let admin = std::env::var("SEALPOST_TEST_POSTGRES_URL").ok()?;
    sqlx::any::install_default_drivers();
    let name = format!("sealpost_test_{}", store::crypto::random_hex(6));
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

impl Instance {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        install_log_capture();
        let dir = tempfile::tempdir().unwrap();
        let listeners = Listeners {
            relay: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            submission: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            portal: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            imap: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            imap_tls: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let mut config = Config::default();
        config.data_dir = dir.path().join("data");
        config.database.url = database_url().await;
        config.public_url = format!("https://localhost:{}", listeners.portal.local_addr().unwrap().port());
        config.smtp.command_timeout = 20;
        config.smtp.data_timeout = 20;
        tweak(&mut config);
        config.validate().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let running = app::start(&config, listeners, clock.clone()).await.unwrap();
        Self {
            dir,
            running,
            clock,
            config,
        }
    }

    /// Stops every task and closes the store, keeping the folder and the clock.
    pub async fn stop(self) -> Stopped {
        let Self {
            dir,
            running,
            clock,
            config,
        } = self;
        let store = Arc::clone(&running.store);
        drop(running);
        store.close().await;
        Stopped { dir, clock, config }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.running.store
    }

    pub fn relay(&self) -> SocketAddr {
        self.running.addresses.relay
    }

    pub fn submission(&self) -> SocketAddr {
        self.running.addresses.submission
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.running.addresses.portal.port())
    }

    /// Turns a link from a mail (which starts with `public_url`) into one we can
    /// reach: same port, the loopback address.
    pub fn reachable(&self, link: &str) -> String {
        link.replacen(&self.config.public_url, &self.url(""), 1)
    }

    /// A practice "Smiles Dental" (smiles.example) with a paid doctor.
    pub async fn practice_with_doctor(&self) -> store::accounts::User {
        self.store()
            .accounts()
            .add_practice("Smiles Dental", "smiles.example")
            .await
            .unwrap();
        let (user, _) = self
            .store()
            .accounts()
            .add_practice_user(
                "ada@smiles.example",
                "Dr Ada Lovelace",
                Role::Doctor,
                "smiles.example",
                true,
                false,
            )
            .await
            .unwrap();
        user
    }

    /// Mails delivered to the Maildir outbox for `rcpt`, oldest first.
    pub fn outbox_for(&self, rcpt: &str) -> Vec<Vec<u8>> {
        let dir = self.config.data_dir.join("outbox/new");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        // Names share the manual clock's second; delivery order is the files' order.
        entries.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let marker = format!("Delivered-To: {rcpt}\r\n");
        entries
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter(|m| m.windows(marker.len()).any(|w| w == marker.as_bytes()))
            .collect()
    }

    /// Waits until `rcpt` has at least `count` mails; returns the newest.
    pub async fn wait_for_mail(&self, rcpt: &str, count: usize) -> Vec<u8> {
        for _ in 0..300 {
            let mails = self.outbox_for(rcpt);
            if mails.len() >= count {
                return mails.last().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail #{count} for {rcpt} within 30 s");
    }
}

/// On `PostgreSQL` (whose files are not under the data folder): the tables whose
/// rows, as text, contain `needle` in clear or hex-encoded.
pub async fn postgres_tables_containing(instance: &Instance, needle: &str) -> Vec<String> {
    let Some(url) = instance
        .config
        .database
        .url
        .clone()
        .filter(|u| u.starts_with("postgres"))
    else {
        return Vec::new();
    };
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let mut found = Vec::new();
    for table in [
        "practices",
        "users",
        "contacts",
        "spool",
        "messages",
        "message_recipients",
        "tokens",
        "mail_jobs",
        "outbound",
        "audit",
    ] {
        let sql =
            format!("SELECT COUNT(*) AS n FROM {table} t WHERE t::text LIKE '%{needle}%' OR t::text LIKE '%{hex}%'");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if sqlx::Row::try_get::<i64, _>(&row, "n").unwrap() > 0 {
            found.push(table.to_owned());
        }
    }
    found
}

/// An instance whose tasks are stopped; its folder and database remain.
pub struct Stopped {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: Config,
}

impl Stopped {
    /// Starts again on the same folder and database, on fresh ports.
    pub async fn start(self) -> Instance {
        let listeners = Listeners {
            relay: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            submission: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            portal: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            imap: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            imap_tls: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let running = app::start(&self.config, listeners, self.clock.clone()).await.unwrap();
        Instance {
            dir: self.dir,
            running,
            clock: self.clock,
            config: self.config,
        }
    }
}

/// The first link in a mail that starts with `prefix`.
pub fn link_in(mail: &[u8], prefix: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(mail)
        .expect("a parsable mail");
    let text = parsed.body_text(0).expect("a text body").into_owned();
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no link starting {prefix} in: {text}"));
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// An HTTPS client with a cookie jar that trusts the dev certificate. HTTP/1.1,
/// so a request cut mid-body is a cut connection, as a dropped Wi-Fi is (the
/// portal's HTTP/2 is exercised by the Chromium flows).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// A minimal line-level SMTP client, for asserting exact reply codes.
pub struct RawSmtp {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawSmtp {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (read, writer) = stream.into_split();
        let mut conn = Self {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = conn.read_reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        conn
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(20), self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "connection closed; so far: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Sends a command and asserts the reply starts with `expect`.
    pub async fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let reply = self.read_reply().await;
        assert!(reply.starts_with(expect), "{line:?} got {reply:?}, expected {expect}");
        reply
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

/// Gives `email` (an existing user) the portal password `password`.
pub async fn set_password(instance: &Instance, email: &str, password: &str) {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    let token = instance
        .store()
        .auth()
        .issue_token(store::accounts::TokenPurpose::SetPassword, user.id, None, 3600)
        .await
        .unwrap();
    instance
        .store()
        .auth()
        .set_password(&token, password, "test")
        .await
        .unwrap();
}

/// The CSRF token in a signed-in page's forms.
pub fn csrf_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field in the page")
        .to_owned()
}

/// Posts the registration form behind an invitation link (`…/m/{id}?invite=T`)
/// to where the form posts it (`…/m/{id}/register?invite=T`).
pub async fn register_form(
    http: &reqwest::Client,
    instance: &Instance,
    invite: &str,
    name: &str,
    phone: &str,
) -> reqwest::Response {
    let token = invite.split("invite=").nth(1).expect("an invitation link").to_owned();
    let register = invite.replacen("?invite=", "/register?invite=", 1);
    http.post(instance.reachable(&register))
        .form(&[("full_name", name), ("phone", phone), ("invite", token.as_str())])
        .send()
        .await
        .unwrap()
}

/// A mail client on the submission port: STARTTLS (trusting the dev
/// certificate), then AUTH as `user`.
pub fn submission_client(
    instance: &Instance,
    user: &str,
    password: &str,
) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(instance.submission().port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.into(), password.into()))
        .build()
}

/// The phone number tests enrol for two-step verification.
pub const TEST_PHONE: &str = "+1 555 010 0100";

/// Texts and calls the dev SMS provider wrote: (to, channel, text), oldest first.
pub fn sms_sent(instance: &Instance) -> Vec<(String, String, String)> {
    let dir = instance.config.data_dir.join("outbox-sms");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("To: "), field("Channel: "), field("Text: "))
        })
        .collect()
}

/// The 6-digit code in the newest text to `phone` (any number if `None`), once
/// every queued text is sent.
pub async fn latest_code(instance: &Instance, phone: Option<&str>) -> String {
    for _ in 0..300 {
        if instance.store().queue().pending_sms(100).await.unwrap().is_empty()
            && let Some((_, _, text)) = sms_sent(instance)
                .into_iter()
                .rev()
                .find(|(to, _, _)| phone.is_none_or(|p| p == to))
        {
            return text
                .split_whitespace()
                .find(|w| w.len() == 7 && w.ends_with('.') && w[..6].chars().all(|c| c.is_ascii_digit()))
                .map(|w| w[..6].to_owned())
                .expect("a code in the text");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no code sent to {phone:?} within 30 s");
}

/// The value of the first `<input name="{name}" … value="…">` in a page.
pub fn input_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_end = page[at..].find('>')? + at;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..tag_end];
    tag.split("value=\"").nth(1)?.split('"').next().map(str::to_owned)
}

/// If `response` is the two-step page, completes it the way a person would:
/// sets up the phone (enrolling [`TEST_PHONE`] when none is known) or takes the
/// code sent at sign-in, reads the code from the dev SMS outbox and submits it.
/// Any other response is returned as it is.
pub async fn finish_two_step(
    http: &reqwest::Client,
    instance: &Instance,
    response: reqwest::Response,
) -> reqwest::Response {
    if response.url().path() != "/signin/verify" {
        return response;
    }
    let page = response.text().await.unwrap();
    let csrf = csrf_in(&page);
    let next = input_value(&page, "next").unwrap_or_default();
    let phone = if page.contains("name=\"phone\"") {
        let phone = input_value(&page, "phone")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| TEST_PHONE.to_owned());
        let sent = http
            .post(instance.url("/signin/verify/send"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("next", next.as_str()),
                ("phone", phone.as_str()),
                ("channel", "sms"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
        Some(phone)
    } else {
        None
    };
    let code = latest_code(instance, phone.as_deref()).await;
    http.post(instance.url("/signin/verify"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", next.as_str()),
            ("method", "phone"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the portal with a password, then the second step.
pub async fn sign_in(
    http: &reqwest::Client,
    instance: &Instance,
    email: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let response = post_signin(http, instance, email, password, next).await;
    finish_two_step(http, instance, response).await
}

/// Posts the sign-in form as a browser does: the form first (its CSRF token is
/// bound to a pre-session cookie, which `http`'s cookie store keeps), then the
/// address and password. Returns the (followed) response.
pub async fn post_signin(
    http: &reqwest::Client,
    instance: &Instance,
    email: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let form = http.get(instance.url("/signin")).send().await.unwrap();
    let csrf = csrf_in(&form.text().await.unwrap());
    http.post(instance.url("/signin"))
        .form(&[
            ("email", email),
            ("password", password),
            ("next", next),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

/// For a client without a cookie store: the sign-in pre-session cookie (as a
/// `Cookie` header value) and the CSRF token bound to it.
pub async fn signin_csrf(instance: &Instance) -> (String, String) {
    let form = browser().get(instance.url("/signin")).send().await.unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-sealpost_signin="))
        .and_then(|v| v.split(';').next())
        .expect("a sign-in pre-session cookie")
        .to_owned();
    (cookie, csrf_in(&form.text().await.unwrap()))
}
