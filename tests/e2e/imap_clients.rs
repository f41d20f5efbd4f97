//! IMAP with more real clients: mbsync (isync) mirrors INBOX and Sent into a
//! Maildir over implicit TLS with the instance's certificate pinned and its host
//! name checked, then pushes local flag changes and deletions back; and an IDLE
//! client hears about a newly sealed message without asking; APPEND is refused
//! cleanly (see tests/imaptest/README.md for why).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::harness::Instance;
use super::imap::setup;
use super::secure_send::{ada_sends, canary};

/// Waits until `email` has `count` messages in the portal inbox.
async fn wait_inbox(instance: &Instance, email: &str, count: usize) {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    for _ in 0..200 {
        if instance.store().mail().inbox(&user, 10).await.unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{count} message(s) never sealed for {email}");
}

/// The decrypted originals in `email`'s inbox, oldest first.
async fn originals(instance: &Instance, email: &str) -> Vec<Vec<u8>> {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    let mut all = Vec::new();
    for entry in instance.store().mail().inbox(&user, 10).await.unwrap() {
        let mut bytes = Vec::new();
        let mut stream = instance
            .store()
            .mail()
            .open_original(&user, &entry.id, "test", false)
            .await
            .unwrap();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        all.push(bytes);
    }
    all.sort();
    all
}

/// The message files of one Maildir folder, as (file name, content less the
/// `X-TUID` header mbsync adds to find its own copies), sorted by content.
fn maildir(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = format!("{sub}/{}", path.file_name().unwrap().to_string_lossy());
            files.push((name, without_tuid(&std::fs::read(&path).unwrap())));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    files
}

/// Runs `mbsync -a -c rc` with `home` as HOME; panics with its output on failure.
fn mbsync(rc: &Path, home: &Path) -> String {
    let output = match Command::new("mbsync")
        .arg("-a")
        .arg("-c")
        .arg(rc)
        .env("HOME", home)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("mbsync could not run ({error}): install Debian's isync package (see .ci/run)"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "mbsync failed: {text}");
    text
}

/// Removes the one `X-TUID:` header line mbsync inserts at the end of the header.
fn without_tuid(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("\nX-TUID: ").expect("mbsync's X-TUID header") + 1;
    let end = start + text[start..].find('\n').unwrap() + 1;
    assert!(!text[end..].contains("\nX-TUID: "), "one X-TUID only");
    [&bytes[..start], &bytes[end..]].concat()
}

/// mbsync stores Maildir files with LF line ends.
fn lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_mirrors_the_mailbox_and_pushes_flags_and_deletions_back() {
    let instance = Instance::start().await;
    let (_ada_pw, bob_pw) = setup(&instance).await;
    let (first, second) = (canary(), canary());
    ada_sends(&instance, "bob@smiles.example", &first, b"%PDF-1.4 one", None).await;
    ada_sends(&instance, "bob@smiles.example", &second, b"%PDF-1.4 two", None).await;
    wait_inbox(&instance, "bob@smiles.example", 2).await;
    let originals = originals(&instance, "bob@smiles.example").await;

    let home = instance.dir.path().join("mbsync");
    let mail = home.join("Mail");
    std::fs::create_dir_all(&mail).unwrap();
    let rc = home.join("mbsyncrc");
    let port = instance.running.addresses.imap_tls.port();
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount sealpost\nHost localhost\nPort {port}\nUser bob@smiles.example\nPass {bob_pw}\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore sealpost-far\nAccount sealpost\n\n\
             MaildirStore sealpost-near\nPath {mail}/\nInbox {mail}/INBOX\nSubFolders Verbatim\n\n\
             Channel sealpost\nFar :sealpost-far:\nNear :sealpost-near:\nPatterns INBOX Sent\n\
             Create Near\nExpunge Both\nSyncState *\n",
            cert = instance.config.cert_path().display(),
            mail = mail.display(),
        ),
    )
    .unwrap();

    let rc_for = rc.clone();
    let home_for = home.clone();
    let log = tokio::task::spawn_blocking(move || mbsync(&rc_for, &home_for))
        .await
        .unwrap();
    let inbox = maildir(&mail.join("INBOX"));
    assert_eq!(inbox.len(), 2, "two messages mirrored: {log}");
    for ((name, bytes), original) in inbox.iter().zip(&originals) {
        assert!(
            bytes == &lf(original),
            "{name} is the decrypted original:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(original)
        );
        assert!(name.starts_with("new/"), "fetched unread, stays unread: {name}");
    }
    assert!(mail.join("Sent").join("cur").is_dir(), "Sent mirrored (empty)");
    let bob = instance
        .store()
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    assert!(
        instance
            .store()
            .mail()
            .inbox(&bob, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.unread),
        "mbsync fetches with PEEK: the portal still shows both unread"
    );

    // Read the first locally, trash the second; the next sync pushes both back.
    let folder = mail.join("INBOX");
    let (first_name, _) = &inbox[0];
    let (second_name, _) = &inbox[1];
    let base = |name: &str| name.trim_start_matches("new/").split(":2,").next().unwrap().to_owned();
    std::fs::rename(
        folder.join(first_name),
        folder.join("cur").join(format!("{}:2,S", base(first_name))),
    )
    .unwrap();
    std::fs::rename(
        folder.join(second_name),
        folder.join("cur").join(format!("{}:2,T", base(second_name))),
    )
    .unwrap();
    let rc_for = rc.clone();
    let home_for = home.clone();
    let log = tokio::task::spawn_blocking(move || mbsync(&rc_for, &home_for))
        .await
        .unwrap();
    let left = instance.store().mail().inbox(&bob, 10).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "the trashed message is gone from the portal inbox too: {log}"
    );
    assert!(!left[0].unread, "\\Seen set in the Maildir reads it in the portal");
    let inbox = maildir(&folder);
    assert_eq!(inbox.len(), 1, "expunged locally as well: {inbox:?}");
    assert!(inbox[0].1 == lf(&originals[0]), "the read one stays");
    // A third run has nothing to do and changes nothing.
    let log = tokio::task::spawn_blocking(move || mbsync(&rc, &home)).await.unwrap();
    assert_eq!(maildir(&folder).len(), 1, "{log}");
    assert_eq!(instance.store().mail().inbox(&bob, 10).await.unwrap().len(), 1);
}

/// A raw IMAP client over TLS: signs in, selects INBOX, IDLEs, prints `idling`,
/// then prints the first untagged line mentioning EXISTS (or `timeout`).
const IDLER: &str = r#"
import socket, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=30))
f = s.makefile("rb")
def until(prefix):
    while True:
        line = f.readline()
        if not line: sys.exit("connection closed")
        if line.startswith(prefix): return line
until(b"* OK")
s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode())); print(until(b"a1 ").decode().strip())
s.sendall(b"a2 SELECT INBOX\r\n"); print(until(b"a2 ").decode().strip())
s.sendall(b"a3 IDLE\r\n"); until(b"+")
print("idling", flush=True)
try:
    line = until(b"* ")
    while b"EXISTS" not in line: line = until(b"* ")
    print("pushed", line.decode().strip())
except socket.timeout:
    print("timeout")
s.sendall(b"DONE\r\n"); print(until(b"a3 ").decode().strip())
s.sendall(b"a4 LOGOUT\r\n")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_idle_reports_a_newly_sealed_message() {
    let instance = Instance::start().await;
    let (_ada_pw, bob_pw) = setup(&instance).await;
    let port = instance.running.addresses.imap_tls.port();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(IDLER)
        .args([port.to_string(), "bob@smiles.example".into(), bob_pw])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    // Wait (in a thread) for the client to be idling before sending.
    let (mut reader, before) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        while !seen.contains("idling") {
            if reader.read_line(&mut seen).unwrap() == 0 {
                break;
            }
        }
        (reader, seen)
    })
    .await
    .unwrap();
    assert!(before.contains("a2 OK") && before.contains("idling"), "{before}");

    ada_sends(&instance, "bob@smiles.example", &canary(), b"x", None).await;
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        let status = child.wait().unwrap();
        (rest, status)
    })
    .await
    .unwrap();
    let (rest, status) = rest;
    assert!(status.success(), "the IDLE client failed: {before}{rest}");
    assert!(rest.contains("pushed * 1 EXISTS"), "IDLE heard of the message: {rest}");
    assert!(rest.contains("a3 OK"), "DONE ends IDLE: {rest}");
}

/// imaplib tries APPEND (as Outlook does to save sent items), small and large.
const APPENDER: &str = r#"
import imaplib, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
for size in (200, 5_000_000):
    msg = b"From: a@b.example\r\nSubject: draft\r\n\r\n" + b"x" * size + b"\r\n"
    try:
        print("append", size, m.append("Sent", None, None, msg))
    except imaplib.IMAP4.error as e:
        print("append", size, "refused", e)
print("noop", m.noop()[0])
print("sent", m.select("Sent")[1][0].decode())
m.logout()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_append_is_refused_cleanly_and_the_session_goes_on() {
    let instance = Instance::start().await;
    let (ada_pw, _bob_pw) = setup(&instance).await;
    let port = instance.running.addresses.imap_tls.port();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(APPENDER)
            .args([port.to_string(), "ada@smiles.example".into(), ada_pw])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Small: a NO with the reason; too large for a literal: BAD before any data is sent.
    assert!(text.contains("append 200 ('NO', [b'[CANNOT]"), "{text}");
    assert!(
        text.contains("append 5000000 refused") && text.contains("Literal too large"),
        "{text}"
    );
    assert!(text.contains("noop OK") && text.contains("sent 0"), "{text}");
}
