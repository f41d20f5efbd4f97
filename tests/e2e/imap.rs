//! IMAP access with a real client (Python's imaplib, over implicit TLS and
//! STARTTLS): app-password sign-in, INBOX and Sent, FETCH of the original
//! byte for byte, `\Seen` in step with the portal, expunge under the lifecycle
//! rules, and nobody else's mail.

use std::process::Command;

use store::accounts::Role;

use super::harness::{Instance, set_password};
use super::secure_send::{ada_sends, canary};

/// imaplib driving one session; prints one result line per step.
const CLIENT: &str = r#"
import imaplib, ssl, sys
mode, port, user, password, out = sys.argv[1:6]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if mode == "tls":
    m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
else:
    m = imaplib.IMAP4("127.0.0.1", int(port))
    print("before-tls", "LOGINDISABLED" in m.capabilities)
    m.starttls(ssl_context=ctx)
try:
    m.login(user, password)
except imaplib.IMAP4.error as e:
    print("login-failed", e); sys.exit(0)
print("list", sorted(l.decode().split(' "/" ')[1] for l in m.list()[1]))
typ, data = m.select("INBOX")
print("inbox", data[0].decode())
if int(data[0]) > 0:
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    meta, body = data[0]
    open(out, "wb").write(body)
    print("fetch", meta.decode())
    typ, data = m.uid("FETCH", "1:*", "(ENVELOPE BODYSTRUCTURE)")
    print("envelope", b"".join(d if isinstance(d, bytes) else b"".join(d) for d in data).decode(errors="replace"))
    print("search-unseen", m.search(None, "UNSEEN")[1][0].decode())
    m.store("1", "+FLAGS", "\\Seen")
    print("search-seen", m.search(None, "SEEN")[1][0].decode())
typ, data = m.select("Sent")
print("sent", data[0].decode())
if int(data[0]) > 0 and out.endswith(".expunge"):
    m.store("1", "+FLAGS", "\\Deleted")
    print("expunge", m.expunge()[1])
m.logout()
"#;

fn python(args: &[String]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "imaplib failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub(super) async fn client(
    instance: &Instance,
    mode: &str,
    user: &str,
    password: &str,
    out: &std::path::Path,
) -> String {
    let port = if mode == "tls" {
        instance.running.addresses.imap_tls.port()
    } else {
        instance.running.addresses.imap.port()
    };
    let args = vec![
        mode.to_owned(),
        port.to_string(),
        user.to_owned(),
        password.to_owned(),
        out.display().to_string(),
    ];
    tokio::task::spawn_blocking(move || python(&args)).await.unwrap()
}

/// Ada (sender) and Bob (her colleague, the recipient), each with an app password.
pub(super) async fn setup(instance: &Instance) -> (String, String) {
    let ada = instance.practice_with_doctor().await;
    let (bob, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    set_password(instance, "bob@smiles.example", "Staff-Pass-77").await;
    let ada_pw = instance
        .store()
        .auth()
        .create_app_password(&ada, "Outlook", "test")
        .await
        .unwrap();
    let bob_pw = instance
        .store()
        .auth()
        .create_app_password(&bob, "Thunderbird", "test")
        .await
        .unwrap();
    (ada_pw, bob_pw)
}

pub(super) async fn wait_sealed(instance: &Instance, email: &str) -> store::ids::MessageId {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    for _ in 0..200 {
        if let Some(m) = instance.store().mail().inbox(&user, 10).await.unwrap().first() {
            return m.id.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("message never sealed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_client_reads_the_original_and_seen_follows_the_portal() {
    let instance = Instance::start().await;
    let (ada_pw, bob_pw) = setup(&instance).await;
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"%PDF-1.4 report", None).await;
    let id = wait_sealed(&instance, "bob@smiles.example").await;
    let bob = instance
        .store()
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let out = instance.dir.path().join("fetched.eml");

    let text = client(&instance, "tls", "bob@smiles.example", &bob_pw, &out).await;
    assert!(text.contains("list ['INBOX', 'Sent']"), "{text}");
    assert!(text.contains("inbox 1"), "{text}");
    assert!(text.contains("sent 0"), "{text}");
    // Byte for byte the decrypted original, and RFC822.SIZE exact.
    let mut original = Vec::new();
    let mut stream = instance
        .store()
        .mail()
        .open_original(&bob, &id, "test", false)
        .await
        .unwrap();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        original.extend_from_slice(&chunk.unwrap());
    }
    let fetched = std::fs::read(&out).unwrap();
    assert_eq!(fetched, original);
    assert!(String::from_utf8_lossy(&fetched).contains(&canary));
    assert!(text.contains(&format!("RFC822.SIZE {}", original.len())), "{text}");
    assert!(text.contains("FLAGS ()"), "PEEK leaves it unread: {text}");
    assert!(text.contains("smiles.example") && text.contains("\"mixed\""), "{text}");
    assert!(
        text.contains("search-unseen 1") && text.contains("search-seen 1"),
        "{text}"
    );
    // IMAP \Seen is the portal's read state.
    assert!(!instance.store().mail().inbox(&bob, 10).await.unwrap()[0].unread);

    // Over STARTTLS: no sign-in before TLS, then the same mailbox, now \Seen.
    let text = client(&instance, "starttls", "bob@smiles.example", &bob_pw, &out).await;
    assert!(text.contains("before-tls True"), "{text}");
    assert!(
        text.contains("FLAGS (\\\\Seen)") || text.contains("FLAGS (\\Seen)"),
        "{text}"
    );

    // Ada sees it in Sent, not in her INBOX; deleting it there shreds it for everyone.
    let text = client(
        &instance,
        "tls",
        "ada@smiles.example",
        &ada_pw,
        &instance.dir.path().join("x.expunge"),
    )
    .await;
    assert!(text.contains("inbox 0") && text.contains("sent 1"), "{text}");
    assert!(text.contains("expunge [b'1']"), "{text}");
    assert!(instance.store().mail().inbox(&bob, 10).await.unwrap().is_empty());
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "message.delete"));
    assert!(!super::harness::logs().contains(&canary), "no PHI in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_refuses_wrong_passwords_and_hides_other_users_mail() {
    let instance = Instance::start().await;
    let (ada_pw, _bob_pw) = setup(&instance).await;
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"x", None).await;
    wait_sealed(&instance, "bob@smiles.example").await;
    let out = instance.dir.path().join("none.eml");
    let text = client(&instance, "tls", "bob@smiles.example", "not-the-password", &out).await;
    assert!(
        text.contains("login-failed") && text.contains("AUTHENTICATIONFAILED"),
        "{text}"
    );
    // Ada's app password does not open Bob's mailbox, and Ada's INBOX is empty.
    let text = client(&instance, "tls", "bob@smiles.example", &ada_pw, &out).await;
    assert!(text.contains("login-failed"), "{text}");
    let text = client(&instance, "tls", "ada@smiles.example", &ada_pw, &out).await;
    assert!(text.contains("inbox 0"), "{text}");
    assert!(!out.exists());
}
