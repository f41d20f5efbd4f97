//! Notifications are DKIM-signed, and a DKIM verifier nobody here wrote (dkimpy,
//! Debian's python3-dkim) accepts the signature, and rejects it once the message
//! is altered. A practice that sends under its own domain (`[[dkim.domains]]`,
//! `outbound.practice_from`) gets its notifications signed with its own keys,
//! both signatures (Ed25519 and RSA) verified by dkimpy, and another practice
//! with its own; the keys are made by `sealpost dkim keygen --domain`.

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

/// Makes `domain`'s two keys with `sealpost dkim keygen --domain` in `dir`;
/// returns the printed DKIM records by name.
fn keygen_for(dir: &std::path::Path, domain: &str) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["dkim", "keygen", "--domain", domain])
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", dir)
        .env("SEALPOST_DKIM_DOMAIN", "gateway.example")
        .env("SEALPOST_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("[[dkim.domains]]"), "how to configure it: {text}");
    assert!(text.contains(&format!("_dmarc.{domain}.")), "{text}");
    text.lines()
        .filter(|line| line.contains("._domainkey."))
        .map(|line| {
            let (name, value) = line.split_once(" IN TXT ").unwrap();
            let value: String = value.split('"').skip(1).step_by(2).collect();
            (name.to_owned(), value)
        })
        .collect()
}

fn records(list: &[(String, String)]) -> [(&str, &str); 2] {
    [
        (list[0].0.as_str(), list[0].1.as_str()),
        (list[1].0.as_str(), list[1].1.as_str()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_practice_domain_signs_its_own_notifications_with_both_keys() {
    let keys = tempfile::tempdir().unwrap();
    let smiles = keygen_for(keys.path(), "smiles.example");
    let brite = keygen_for(keys.path(), "brite.example");
    assert_eq!(smiles.len(), 2, "{smiles:?}");
    assert_eq!(smiles[0].0, "sealpost._domainkey.smiles.example.");
    assert_eq!(smiles[1].0, "sealpost-ed25519._domainkey.smiles.example.");
    let default_key = keys.path().join("gateway.key");
    gateway::dkim::generate(&default_key).unwrap();
    let key_dir = keys.path().join("dkim");
    let instance = Instance::start_with(|c| {
        c.dkim.domain = "gateway.example".into();
        c.dkim.key = Some(default_key.clone());
        c.outbound.from_address = "secure@gateway.example".into();
        for domain in ["smiles.example", "brite.example"] {
            c.dkim.domains.push(sealpost::config::DkimDomain {
                domain: domain.into(),
                selector: "sealpost".into(),
                key: Some(key_dir.join(domain).join("sealpost.key")),
                ed25519_selector: "sealpost-ed25519".into(),
                ed25519_key: Some(key_dir.join(domain).join("sealpost-ed25519.key")),
            });
        }
        c.outbound.practice_from = [
            ("smiles.example".to_owned(), "secure@smiles.example".to_owned()),
            ("brite.example".to_owned(), "notices@brite.example".to_owned()),
        ]
        .into();
    })
    .await;
    instance.practice_with_doctor().await;
    let accounts = instance.store().accounts();
    accounts.add_practice("Brite Dental", "brite.example").await.unwrap();
    accounts
        .add_practice_user(
            "bea@brite.example",
            "Dr Bea Brite",
            store::accounts::Role::Doctor,
            "brite.example",
            true,
            false,
        )
        .await
        .unwrap();
    // Two practices on one gateway: each relays from its own mail system.
    for (domain, network) in [("smiles.example", "127.0.0.1/32"), ("brite.example", "127.0.0.2/32")] {
        let source = store::accounts::relay_sources::RelaySource {
            kind: store::accounts::relay_sources::SourceKind::Network,
            value: network.to_owned(),
        };
        accounts.set_relay_source(domain, &source, false).await.unwrap();
    }
    ada_sends(&instance, "pat@example.org", &canary(), b"x", Some("patient")).await;
    let from_bea = super::secure_send::secure_message("pam@example.org", &canary(), b"y", Some("patient"));
    let from_bea = String::from_utf8(from_bea)
        .unwrap()
        .replace("ada@smiles.example", "bea@brite.example")
        .replace("Dr Ada Lovelace", "Dr Bea Brite");
    let end = super::relay_sources::relay_from(
        &instance,
        "127.0.0.2",
        "bea@brite.example",
        "pam@example.org",
        from_bea.as_bytes(),
    )
    .await;
    assert!(end.starts_with("250"), "{end}");

    let to_pat = instance.wait_for_mail("pat@example.org", 1).await;
    let to_pam = instance.wait_for_mail("pam@example.org", 1).await;
    let text = String::from_utf8_lossy(&to_pat).into_owned();
    assert!(
        text.contains("<secure@smiles.example>"),
        "the practice's own From: {text}"
    );
    assert!(
        text.contains("d=smiles.example") && !text.contains("d=gateway.example"),
        "{text}"
    );
    use super::delivery_mx::dkimpy_both;
    let smiles = records(&smiles);
    let brite = records(&brite);
    assert_eq!(dkimpy_both(&to_pat, smiles), "pass pass");
    assert_eq!(dkimpy_both(&to_pam, brite), "pass pass");
    assert!(String::from_utf8_lossy(&to_pam).contains("<notices@brite.example>"));
    // Each practice's keys are its own: one's mail does not verify with the other's.
    let swapped = [(smiles[0].0, brite[0].1), (smiles[1].0, brite[1].1)];
    assert_eq!(dkimpy_both(&to_pat, swapped), "fail fail");
}
