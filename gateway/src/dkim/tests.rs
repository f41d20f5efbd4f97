//! Tests of the key files and of signing by the `From` domain.

use super::*;

#[test]
fn generated_key_signs_and_refuses_to_be_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dkim/test.key");
    let record = generate(&path).unwrap();
    assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
    assert!(generate(&path).is_err());
    let dkim = Dkim::load(&path, "example.com", "sel").unwrap().unwrap();
    let signed = dkim.sign(b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n");
    let text = String::from_utf8(signed).unwrap();
    assert!(text.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"), "{text}");
    assert!(text.contains("d=example.com") && text.contains("s=sel"));
    assert!(
        Dkim::load(&dir.path().join("absent.key"), "example.com", "sel")
            .unwrap()
            .is_none()
    );
}

#[test]
fn with_an_ed25519_key_both_signatures_go_in_front() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ed) = (dir.path().join("rsa.key"), dir.path().join("ed.key"));
    generate(&rsa).unwrap();
    let record = generate_ed25519(&ed).unwrap();
    assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
    // 32 bytes of public key, base64: 44 characters.
    assert_eq!(record.len(), "v=DKIM1; k=ed25519; p=".len() + 44, "{record}");
    assert!(generate_ed25519(&ed).is_err(), "never overwritten");
    assert_eq!(ed25519_record(&ed).unwrap(), record);
    let dkim = Dkim::load(&rsa, "example.com", "rsa1")
        .unwrap()
        .unwrap()
        .with_ed25519(&ed, "ed1")
        .unwrap();
    let text = String::from_utf8(dkim.sign(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")).unwrap();
    assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"), "{text}");
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=rsa-sha256") && text.contains("s=ed1") && text.contains("s=rsa1"));
    // A missing Ed25519 file leaves RSA alone; an RSA key is not an Ed25519 one.
    let alone = DomainSigner::load(&rsa, "example.com", "rsa1").unwrap().unwrap();
    let alone = alone.with_ed25519(&dir.path().join("none.key"), "ed1").unwrap();
    assert!(alone.ed25519_selector.is_none());
    let wrong = Dkim::load(&rsa, "example.com", "rsa1")
        .unwrap()
        .unwrap()
        .with_ed25519(&rsa, "ed1");
    assert!(wrong.unwrap_err().contains("not an Ed25519"));
}

/// Signs `From: <from>` and returns the `d=` of each signature.
fn signing_domains(dkim: &Dkim, from: &str) -> Vec<String> {
    let message = format!("From: \"Dr A@B <x@evil.example>\" <{from}>\r\nSubject: hi\r\n\r\nbody\r\n");
    let text = String::from_utf8(dkim.sign(message.as_bytes())).unwrap();
    text.split("d=")
        .skip(1)
        .map(|rest| rest.split(';').next().unwrap().to_owned())
        .collect()
}

#[test]
fn each_mail_is_signed_by_its_from_domain_else_by_the_default_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let path = dir.path().join(name);
        generate(&path).unwrap();
        path
    };
    let (default, smiles, ed) = (key("default.key"), key("smiles.key"), dir.path().join("ed.key"));
    generate_ed25519(&ed).unwrap();
    let smiles = DomainSigner::load(&smiles, "Smiles.Example.", "s1")
        .unwrap()
        .unwrap()
        .with_ed25519(&ed, "e1")
        .unwrap();
    let gateway = DomainSigner::load(&default, "gateway.example", "g1").unwrap();
    let dkim = Dkim::new(gateway, vec![smiles]).unwrap();
    assert_eq!(signing_domains(&dkim, "secure@smiles.example"), ["smiles.example"; 2]);
    assert_eq!(signing_domains(&dkim, "Secure@SMILES.example"), ["smiles.example"; 2]);
    // A subdomain is signed by its parent's keys (relaxed DMARC alignment).
    assert_eq!(signing_domains(&dkim, "a@mail.smiles.example"), ["smiles.example"; 2]);
    assert_eq!(signing_domains(&dkim, "a@other.example"), ["gateway.example"]);
    // The display name's address is not the From address.
    assert_eq!(signing_domains(&dkim, "a@evil.example"), ["gateway.example"]);
    // "example" alone (a public suffix) never matches a parent.
    assert_eq!(signing_domains(&dkim, "a@notsmiles.example"), ["gateway.example"]);
    // Without a default key, only the listed domains are signed.
    let smiles_only = DomainSigner::load(&dir.path().join("smiles.key"), "smiles.example", "s1").unwrap();
    let dkim = Dkim::new(None, smiles_only.into_iter().collect()).unwrap();
    assert!(signing_domains(&dkim, "a@other.example").is_empty());
    assert_eq!(signing_domains(&dkim, "a@smiles.example"), ["smiles.example"]);
    assert!(Dkim::new(None, Vec::new()).is_none());
}
