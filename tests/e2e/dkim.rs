//! Notifications are DKIM-signed, and a DKIM verifier nobody here wrote (dkimpy,
//! Debian's python3-dkim) accepts the signature, and rejects it once the message
//! is altered.

use std::process::Command;

use super::harness::Instance;
use super::secure_send::{ada_sends, canary};

const VERIFY: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
record = sys.argv[2].encode()
def dns(name, timeout=5):
    return record if name == sys.argv[3].encode() else None
print("pass" if dkim.verify(message, dnsfunc=dns) else "fail")
"#;

fn dkimpy(message: &[u8], record: &str, name: &str) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), message).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", VERIFY])
        .arg(file.path())
        .arg(record)
        .arg(name)
        .output()
        .expect("python3 with Debian's python3-dkim (see .ci/run)");
    assert!(
        out.status.success(),
        "dkimpy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_carry_a_dkim_signature_that_dkimpy_verifies() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("sealpost.key");
    let record = gateway::dkim::generate(&key).unwrap();
    let instance = Instance::start_with(|c| {
        c.dkim.domain = "smiles.example".into();
        c.dkim.key = Some(key.clone());
        c.outbound.from_address = "secure@smiles.example".into();
    })
    .await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, "pat@example.org", &canary(), b"x", Some("patient")).await;
    let mail = instance.wait_for_mail("pat@example.org", 1).await;
    // The outbox adds Return-Path and Delivered-To, as a receiving server would.
    let text = String::from_utf8_lossy(&mail).into_owned();
    assert!(text.contains("DKIM-Signature: v=1; a=rsa-sha256;"), "{text}");
    let name = "sealpost._domainkey.smiles.example.";
    assert_eq!(dkimpy(&mail, &record, name), "pass");
    let altered = text.replacen("Subject: Secure message from", "Subject: Urgent message from", 1);
    assert_eq!(dkimpy(altered.as_bytes(), &record, name), "fail");
}
