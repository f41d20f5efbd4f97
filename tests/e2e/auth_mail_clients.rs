//! An open IMAP session ends when its credential does (issue 8, suspected: old
//! credentials stay usable): revoking its app password or locking the account
//! ends it at the next command, and an IDLE at once.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::auth_hardening::{ADA, PASSWORD};
use super::harness::{Instance, set_password};

/// A raw IMAP session over implicit TLS in Python: signs in, NOOPs, waits for
/// a line on stdin, then NOOPs again and says whether the server closed.
const LONG_SESSION: &str = r#"
import socket, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))))
f = s.makefile("rb")
def until(tag):
    out = []
    while True:
        try:
            line = f.readline()
        except (ssl.SSLError, OSError):
            line = b""
        if not line:
            out.append("EOF"); break
        out.append(line.decode().strip())
        if line.startswith(tag.encode() + b" "):
            break
    return " | ".join(out)
f.readline()
s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
print(until("a1"), flush=True)
s.sendall(b"a2 NOOP\r\n"); print(until("a2"), flush=True)
sys.stdin.readline()
s.sendall(b"a3 NOOP\r\n"); print(until("a3"), flush=True)
"#;

/// Runs [`LONG_SESSION`]; `between` runs while the session is open.
async fn imap_session_across(instance: &Instance, password: &str, between: impl AsyncFnOnce()) -> (String, String) {
    let port = instance.running.addresses.imap_tls.port();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(LONG_SESSION)
        .args([port.to_string(), ADA.to_owned(), password.to_owned()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let (reader, before) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        for _ in 0..2 {
            reader.read_line(&mut seen).unwrap();
        }
        (reader, seen)
    })
    .await
    .unwrap();
    between().await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let after = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut { reader }, &mut rest).unwrap();
        child.wait().unwrap();
        rest
    })
    .await
    .unwrap();
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_imap_session_ends_when_its_app_password_is_revoked_or_the_account_locks() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    let store = instance.store();
    let ada = store.accounts().user_by_email(ADA).await.unwrap().unwrap();

    // Revoked in the portal while the mail app is connected.
    let first = store.auth().create_app_password(&ada, "Phone", "test").await.unwrap();
    let id = store.auth().app_passwords(&ada).await.unwrap()[0].id;
    let (before, after) = imap_session_across(&instance, &first, async || {
        store.auth().revoke_app_password(&ada, id, "test").await.unwrap();
    })
    .await;
    assert!(before.contains("a1 OK") && before.contains("a2 OK"), "{before}");
    assert!(
        after.contains("* BYE") && after.contains("EOF"),
        "the next command ends it: {after}"
    );
    assert!(!after.contains("a3 OK"), "{after}");

    // Locked by failed sign-ins (from elsewhere) while connected.
    let second = store.auth().create_app_password(&ada, "Laptop", "test").await.unwrap();
    let (before, after) = imap_session_across(&instance, &second, async || {
        for n in 0..5 {
            let _ = store
                .auth()
                .check_password(ADA, &format!("Wrong-{n}"), "203.0.113.9")
                .await;
        }
    })
    .await;
    assert!(before.contains("a2 OK"), "{before}");
    assert!(after.contains("* BYE") && !after.contains("a3 OK"), "{after}");

    // A session whose credential still holds goes on.
    instance.clock.advance(15 * 60 + 1);
    let (_, after) = imap_session_across(&instance, &second, async || {}).await;
    assert!(after.contains("a3 OK"), "{after}");
}

/// A raw IMAP session that signs in and IDLEs; prints `idling`, then every line
/// until the server closes (or 20 s pass).
const IDLING: &str = r#"
import socket, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))))
s.settimeout(20)
f = s.makefile("rb")
f.readline()
s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
print(f.readline().decode().strip(), flush=True)
s.sendall(b"a2 IDLE\r\n")
print(f.readline().decode().strip(), flush=True)
print("idling", flush=True)
while True:
    try:
        line = f.readline()
    except (ssl.SSLError, OSError):
        line = b""
    if not line:
        print("EOF", flush=True); break
    print(line.decode().strip(), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idling_imap_session_ends_when_its_app_password_is_revoked() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, PASSWORD).await;
    let store = instance.store();
    let ada = store.accounts().user_by_email(ADA).await.unwrap().unwrap();
    let app = store.auth().create_app_password(&ada, "Phone", "test").await.unwrap();
    let id = store.auth().app_passwords(&ada).await.unwrap()[0].id;
    let port = instance.running.addresses.imap_tls.port();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(IDLING)
        .args([port.to_string(), ADA.to_owned(), app])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let (reader, before) = tokio::task::spawn_blocking(move || {
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
    assert!(before.contains("a1 OK") && before.contains("+ idling"), "{before}");
    let started = Instant::now();
    store.auth().revoke_app_password(&ada, id, "test").await.unwrap();
    let after = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut { reader }, &mut rest).unwrap();
        child.wait().unwrap();
        rest
    })
    .await
    .unwrap();
    assert!(after.contains("* BYE") && after.contains("EOF"), "{after}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "at once, not at the idle timeout"
    );
}
