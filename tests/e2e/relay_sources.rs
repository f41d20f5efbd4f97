//! A practice's relay sources (issue 8 #7): once a gateway serves two practices,
//! each sends secure mail only from its own networks or Microsoft 365 tenant and
//! only from its own domains; `sealpost practice` sets and shows the mapping.

use std::net::SocketAddr;
use std::process::Command;

use store::accounts::relay_sources::{RelaySource, SourceKind};
use store::accounts::{Relationship, Role};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::harness::Instance;
use super::tenant_boundary::{ADA, CAROL, other_practice, secure};

async fn reply(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = read.read_line(&mut line).await.unwrap();
        assert!(n > 0, "connection closed after {all}");
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

/// One relayed message from `local` (a loopback address) with a raw SMTP
/// dialogue; the reply to the end of data.
pub(super) async fn relay_from(instance: &Instance, local: &str, from: &str, to: &str, message: &[u8]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{local}:0").parse::<SocketAddr>().unwrap())
        .unwrap();
    let stream = socket.connect(instance.relay()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    assert!(reply(&mut read).await.starts_with("220"));
    for (line, expect) in [
        ("EHLO mta.example".to_owned(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        write.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        let got = reply(&mut read).await;
        assert!(got.starts_with(expect), "{line}: {got}");
    }
    write.write_all(message).await.unwrap();
    write.write_all(b"\r\n.\r\n").await.unwrap();
    let end = reply(&mut read).await;
    let _ = write.write_all(b"QUIT\r\n").await;
    end
}

/// Issue 8 #7: once a gateway serves two practices, each sends secure mail only
/// from its own relay sources (network or Microsoft 365 tenant) and only from
/// its own domains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn a_practice_sends_only_from_its_own_relay_sources_and_domains() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let pat = "pat@example.org";
    let as_ada = secure(ADA, &[pat], &[(pat, "patient")], "from Ada");
    // One practice: the trusted networks are its own, nothing to set.
    assert!(
        relay_from(&instance, "127.0.0.1", ADA, pat, &as_ada)
            .await
            .starts_with("250")
    );

    other_practice(&instance).await;
    let as_carol = secure(CAROL, &[pat], &[(pat, "patient")], "from Carol");
    let end = relay_from(&instance, "127.0.0.1", ADA, pat, &as_ada).await;
    assert!(
        end.starts_with("550 5.7.1") && end.contains("sealpost practice relay"),
        "two practices, no relay sources: {end}"
    );
    let store = instance.store();
    let network = |value: &str| RelaySource {
        kind: SourceKind::Network,
        value: value.to_owned(),
    };
    store
        .accounts()
        .set_relay_source("smiles.example", &network("127.0.0.1/32"), false)
        .await
        .unwrap();
    store
        .accounts()
        .set_relay_source("other.example", &network("127.0.0.2/32"), false)
        .await
        .unwrap();

    // Other Clinic's mail system (127.0.0.2) cannot send as Smiles Dental.
    let end = relay_from(&instance, "127.0.0.2", ADA, pat, &as_ada).await;
    assert!(
        end.starts_with("550 5.7.1"),
        "another practice's host sent as Ada: {end}"
    );
    assert!(
        relay_from(&instance, "127.0.0.1", ADA, pat, &as_ada)
            .await
            .starts_with("250")
    );
    assert!(
        relay_from(&instance, "127.0.0.1", CAROL, pat, &as_carol)
            .await
            .starts_with("550 5.7.1")
    );
    assert!(
        relay_from(&instance, "127.0.0.2", CAROL, pat, &as_carol)
            .await
            .starts_with("250")
    );

    // A Microsoft 365 tenant id is a source too: Exchange Online's addresses are shared.
    let tenant = "0c7a2d5e-1111-4222-8333-944455556666";
    store
        .accounts()
        .set_relay_source(
            "other.example",
            &RelaySource {
                kind: SourceKind::Tenant,
                value: tenant.to_owned(),
            },
            false,
        )
        .await
        .unwrap();
    let stamped = |id: &str| {
        [
            format!("X-MS-Exchange-CrossTenant-Id: {id}\r\n").into_bytes(),
            as_carol.clone(),
        ]
        .concat()
    };
    assert!(
        relay_from(&instance, "127.0.0.1", CAROL, pat, &stamped(tenant))
            .await
            .starts_with("250")
    );
    let end = relay_from(
        &instance,
        "127.0.0.1",
        CAROL,
        pat,
        &stamped("0c7a2d5e-0000-4222-8333-944455556666"),
    )
    .await;
    assert!(end.starts_with("550 5.7.1"), "{end}");

    // A paid user of Smiles Dental outside its domains may not send secure mail...
    store
        .accounts()
        .add_practice_user(
            "eve@elsewhere.example",
            "Eve",
            Role::Staff,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    let as_eve = secure("eve@elsewhere.example", &[pat], &[(pat, "patient")], "from Eve");
    let end = relay_from(&instance, "127.0.0.1", "eve@elsewhere.example", pat, &as_eve).await;
    assert!(end.starts_with("550 5.7.1") && end.contains("domain"), "{end}");
    // ...until the domain is the practice's.
    store
        .accounts()
        .set_practice_domain("smiles.example", "elsewhere.example", false)
        .await
        .unwrap();
    assert!(
        relay_from(&instance, "127.0.0.1", "eve@elsewhere.example", pat, &as_eve)
            .await
            .starts_with("250")
    );
    assert!(
        store
            .accounts()
            .set_practice_domain("smiles.example", "other.example", false)
            .await
            .is_err()
    );
    let known = store
        .mail()
        .known_contacts(
            &store.accounts().user_by_email(ADA).await.unwrap().unwrap(),
            &[pat.to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(known[0].relationship, Relationship::Patient);
}

/// `sealpost practice relay|domain|list`: set and show each practice's relay
/// sources and domains; bad values get a clear message and a non-zero exit.
#[test]
fn practice_cli_sets_and_shows_relay_sources() {
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
    assert!(
        run(&[
            "practice",
            "add",
            "--name",
            "Smiles Dental",
            "--domain",
            "smiles.example"
        ])
        .0
    );
    let (ok, text) = run(&["practice", "list"]);
    assert!(ok && text.contains("single practice"), "{text}");
    assert!(run(&["practice", "add", "--name", "Other Clinic", "--domain", "other.example"]).0);
    let (ok, text) = run(&["practice", "list"]);
    assert!(ok && text.contains("REFUSED"), "{text}");
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--add-network",
        "192.0.2.0/28",
        "--add-tenant-id",
        "0C7A2D5E-1111-4222-8333-944455556666",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("192.0.2.0/28") && text.contains("0c7a2d5e-1111-4222-8333-944455556666"),
        "{text}"
    );
    let (ok, text) = run(&[
        "practice",
        "relay",
        "--domain",
        "smiles.example",
        "--add-network",
        "not-a-net",
    ]);
    assert!(!ok && text.contains("not a network"), "{text}");
    let (ok, text) = run(&[
        "practice",
        "domain",
        "--domain",
        "smiles.example",
        "--add",
        "smiles-dental.example",
    ]);
    assert!(ok && text.contains("smiles.example, smiles-dental.example"), "{text}");
    let (ok, text) = run(&[
        "practice",
        "domain",
        "--domain",
        "smiles.example",
        "--add",
        "other.example",
    ]);
    assert!(!ok && text.contains("belongs to a practice"), "{text}");
    let (ok, text) = run(&["config", "check"]);
    assert!(ok && text.contains("sealpost practice list"), "{text}");
}
