//! A practice's SMTP AUTH relay account (DESIGN.md, "Who is trusted with
//! what"): its own MTA signs in on the submission port as one dedicated account
//! and relays, secure and ordinary mail, for any sender in the practice's
//! domains, and for nobody else's. Every other signed-in user sends only as
//! themselves.

use std::process::Command;

use lettre::AsyncTransport;
use lettre::address::Envelope;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use store::accounts::Role;
use store::accounts::relay_sources::{RelaySource, SourceKind};

use super::harness::{Instance, files_containing, submission_client};
use super::secure_send::canary;

const ADA: &str = "ada@smiles.example";
const RELAY: &str = "mta@smiles.example";
const CAROL: &str = "carol@other.example";
const PAT: &str = "pat@example.org";

fn message(from: &str, to: &str, secure: bool, body: &str) -> Vec<u8> {
    let mut builder = MessageBuilder::new().from(from).to(to).subject("Results");
    if secure {
        builder = builder
            .header("X-Sealpost-Secure", Raw::new("1"))
            .header("X-Sealpost-Role", Raw::new(format!("{to} patient")));
    }
    builder.text_body(body).write_to_vec().unwrap()
}

/// Signs in as `user` on the submission port and sends `message` with the
/// envelope sender `mail_from`; the final reply's text, or the refusal's.
async fn submit(instance: &Instance, user: &str, password: &str, mail_from: &str, to: &str, message: &[u8]) -> String {
    let envelope = Envelope::new(Some(mail_from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    match submission_client(instance, user, password)
        .send_raw(&envelope, message)
        .await
    {
        Ok(response) => format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ),
        Err(error) => error.to_string(),
    }
}

async fn app_password(instance: &Instance, email: &str) -> String {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    instance
        .store()
        .auth()
        .create_app_password(&user, "Postfix", "test")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn a_relay_account_relays_for_its_practice_only() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let store = instance.store();
    store
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    store
        .accounts()
        .add_practice_user(CAROL, "Dr Carol", Role::Doctor, "other.example", true, false)
        .await
        .unwrap();
    store
        .accounts()
        .add_practice_user(RELAY, "Smiles mail server", Role::Staff, "smiles.example", true, false)
        .await
        .unwrap();
    let relay_password = app_password(&instance, RELAY).await;
    let ada_password = app_password(&instance, ADA).await;
    let secret = canary();
    let as_ada = message(ADA, PAT, true, &format!("Your results: {secret}"));

    // Not yet a relay account: it sends only as itself.
    let end = submit(&instance, RELAY, &relay_password, ADA, PAT, &as_ada).await;
    assert!(end.contains("5.7.1") && end.contains("not yours"), "{end}");

    // Another practice's user cannot be Smiles Dental's relay account.
    let account = |value: &str| RelaySource {
        kind: SourceKind::Account,
        value: value.to_owned(),
    };
    assert!(
        store
            .accounts()
            .set_relay_source("smiles.example", &account(CAROL), false)
            .await
            .is_err()
    );
    store
        .accounts()
        .set_relay_source("smiles.example", &account(RELAY), false)
        .await
        .unwrap();
    let audit = store.audit_log().recent_audit(20).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "practice.relay_add"));

    // Now it relays Ada's secure mail: sealed, the patient notified, nothing in clear.
    let end = submit(&instance, RELAY, &relay_password, ADA, PAT, &as_ada).await;
    assert!(end.starts_with("250") && end.contains("sealed"), "{end}");
    let notice = instance.wait_for_mail(PAT, 1).await;
    assert!(!String::from_utf8_lossy(&notice).contains(&secret));
    let leaked = files_containing(&instance.config.data_dir.join("outbox"), secret.as_bytes());
    assert!(leaked.is_empty(), "canary in clear in {leaked:?}");

    // And ordinary mail from the practice's senders, like the trusted relay.
    let plain = message(ADA, "someone@example.net", false, "See you on Monday");
    let end = submit(&instance, RELAY, &relay_password, ADA, "someone@example.net", &plain).await;
    assert!(end.starts_with("250"), "{end}");

    // Nothing for another practice: secure, ordinary, or a mixed envelope.
    let as_carol = message(CAROL, PAT, true, "from Carol");
    let end = submit(&instance, RELAY, &relay_password, CAROL, PAT, &as_carol).await;
    assert!(
        end.contains("5.7.1") && end.contains("relay account of Smiles Dental"),
        "{end}"
    );
    let plain_carol = message(CAROL, "someone@example.net", false, "hello");
    let end = submit(
        &instance,
        RELAY,
        &relay_password,
        CAROL,
        "someone@example.net",
        &plain_carol,
    )
    .await;
    assert!(end.contains("5.7.1") && end.contains("relays only"), "{end}");
    let end = submit(&instance, RELAY, &relay_password, ADA, PAT, &as_carol).await;
    assert!(end.contains("5.7.1"), "{end}");
    let end = submit(&instance, RELAY, &relay_password, CAROL, PAT, &as_ada).await;
    assert!(end.contains("5.7.1"), "{end}");
    assert_eq!(instance.outbox_for(PAT).len(), 1);

    // An ordinary paid user still sends only as themselves.
    let as_relay = message(RELAY, PAT, true, "not Ada's");
    let end = submit(&instance, ADA, &ada_password, RELAY, PAT, &as_relay).await;
    assert!(end.contains("5.7.1") && end.contains("not yours"), "{end}");
    let plain_relay = message(RELAY, "someone@example.net", false, "hello");
    let end = submit(
        &instance,
        ADA,
        &ada_password,
        RELAY,
        "someone@example.net",
        &plain_relay,
    )
    .await;
    assert!(end.contains("5.7.1") && end.contains("not yours"), "{end}");

    // Removed, it is an ordinary account again.
    store
        .accounts()
        .set_relay_source("smiles.example", &account(RELAY), true)
        .await
        .unwrap();
    let end = submit(&instance, RELAY, &relay_password, ADA, PAT, &as_ada).await;
    assert!(end.contains("5.7.1") && end.contains("not yours"), "{end}");
}

/// `sealpost practice relay --add-account`: only a user of that practice; shown
/// by `sealpost practice list`.
#[test]
fn practice_cli_sets_and_shows_relay_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(args)
            .env("SEALPOST_DATA_DIR", dir.path().join("data"))
            .env("SEALPOST_LOG", "error")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    // Admin commands refuse a database that does not exist: migrate creates it.
    assert!(run(&["migrate"]).0);
    for (name, domain) in [("Smiles Dental", "smiles.example"), ("Other Clinic", "other.example")] {
        assert!(run(&["practice", "add", "--name", name, "--domain", domain]).0);
    }
    for (email, practice) in [(RELAY, "smiles.example"), (CAROL, "other.example")] {
        let (ok, text) = run(&[
            "user",
            "add",
            "--email",
            email,
            "--name",
            "X",
            "--role",
            "staff",
            "--practice",
            practice,
        ]);
        assert!(ok, "{text}");
    }
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--add-account",
        CAROL,
    ]);
    assert!(!ok && text.contains("not a user of smiles.example"), "{text}");
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--add-account",
        "nobody",
    ]);
    assert!(!ok && text.contains("not a mail address"), "{text}");
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--add-account",
        RELAY,
    ]);
    assert!(ok && text.contains(&format!("relay accounts: {RELAY}")), "{text}");
    let (ok, text) = run(&["practice", "list"]);
    assert!(ok && text.contains(&format!("relay accounts: {RELAY}")), "{text}");
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--remove-account",
        RELAY,
    ]);
    // (The address still shows as the practice's User Manager.)
    assert!(ok && !text.contains(&format!("relay accounts: {RELAY}")), "{text}");
}

/// A client certificate and its private key.
type Identity = (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn copy(identity: &Identity) -> Identity {
    (identity.0.clone(), identity.1.clone_key())
}

/// A client certificate signed by `issuer`.
fn client_cert(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, name: &str) -> Identity {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    (cert.der().clone(), der.into())
}

fn fingerprint(cert: &rustls::pki_types::CertificateDer<'_>) -> String {
    use std::fmt::Write as _;
    store::crypto::sha256(cert.as_ref())
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// One (possibly multi-line) SMTP reply.
async fn reply<S: tokio::io::AsyncRead + Unpin>(reader: &mut tokio::io::BufReader<S>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tokio::io::AsyncBufReadExt::read_line(reader, &mut line),
        )
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

/// Relays `message` over the relay port after STARTTLS, presenting `identity`
/// (or no certificate); the reply to the end of data, or the first refusal.
async fn relay_over_tls(
    instance: &Instance,
    identity: Option<Identity>,
    from: &str,
    to: &str,
    message: &[u8],
) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncWriteExt, BufReader};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(instance.config.cert_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut plain = BufReader::new(tokio::net::TcpStream::connect(instance.relay()).await.unwrap());
    assert!(reply(&mut plain).await.starts_with("220"));
    plain.get_mut().write_all(b"EHLO mta.example\r\n").await.unwrap();
    let ehlo = reply(&mut plain).await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    plain.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    assert!(reply(&mut plain).await.starts_with("220"));
    let localhost = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(localhost, plain.into_inner()).await.unwrap();
    let mut tls = BufReader::new(tls);
    for (command, expect) in [
        ("EHLO mta.example".to_owned(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        tls.get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        let answer = reply(&mut tls).await;
        if !answer.starts_with(expect) {
            return answer;
        }
    }
    tls.get_mut().write_all(message).await.unwrap();
    tls.get_mut().write_all(b"\r\n.\r\n").await.unwrap();
    reply(&mut tls).await
}

/// With `smtp.relay_client_ca`, the relay listener asks for a client
/// certificate, and a practice can name its mail system's certificate as a
/// relay source: it sends for that practice only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_a_relay_source_of_its_practice_only() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("relay-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let smiles = client_cert(&issuer, "mta.smiles.example");
    let other = client_cert(&issuer, "mta.other.example");

    let instance = Instance::start_with(|c| c.smtp.relay_client_ca = Some(ca_path.clone())).await;
    instance.practice_with_doctor().await;
    let store = instance.store();
    store
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    store
        .accounts()
        .add_practice_user(CAROL, "Dr Carol", Role::Doctor, "other.example", true, false)
        .await
        .unwrap();
    let cert = |c: &rustls::pki_types::CertificateDer<'_>| RelaySource {
        kind: SourceKind::ClientCert,
        value: fingerprint(c),
    };
    store
        .accounts()
        .set_relay_source("smiles.example", &cert(&smiles.0), false)
        .await
        .unwrap();
    store
        .accounts()
        .set_relay_source("other.example", &cert(&other.0), false)
        .await
        .unwrap();
    let as_ada = message(ADA, PAT, true, "from Ada");
    let as_carol = message(CAROL, PAT, true, "from Carol");

    let end = relay_over_tls(&instance, Some(copy(&smiles)), ADA, PAT, &as_ada).await;
    assert!(end.starts_with("250") && end.contains("sealed"), "{end}");
    let end = relay_over_tls(&instance, Some(copy(&other)), ADA, PAT, &as_ada).await;
    assert!(
        end.starts_with("550 5.7.1") && end.contains("not a relay source of Smiles Dental"),
        "{end}"
    );
    let end = relay_over_tls(&instance, None, ADA, PAT, &as_ada).await;
    assert!(end.starts_with("550 5.7.1"), "{end}");
    let end = relay_over_tls(&instance, Some(copy(&smiles)), CAROL, PAT, &as_carol).await;
    assert!(end.starts_with("550 5.7.1"), "{end}");
    let end = relay_over_tls(&instance, Some(copy(&other)), CAROL, PAT, &as_carol).await;
    assert!(end.starts_with("250"), "{end}");
}
