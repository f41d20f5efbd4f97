//! Direct delivery (`outbound.mode = "mx"`) against a real DNS server (Knot) and
//! real receiving MTAs (smtp-sink) on 127.0.0.x and ::1: MX preference order
//! with a dead first host, A-only and AAAA-only domains without MX, a null MX;
//! a 5xx ends in an RFC 3464 DSN that dkimpy verifies with both signatures
//! (Ed25519 and RSA) and that carries the original's header but not its body;
//! a 4xx is retried with backoff (the test moves the clock), tells the sender
//! once that delivery is late, and survives a restart; `sealpost queue` lists,
//! retries and refuses an unknown id. TLS policies: `delivery_mx_tls.rs`.

use std::process::Command;

use super::harness::Instance;
use super::mx_peers::{Knot, Sink, free_port};
use super::secure_send::send_via_relay;
use sealpost::config::OutboundMode;

pub(super) const MESSAGE: &[u8] =
    b"From: staff@smiles.example\r\nTo: vendor@partner.example\r\nSubject: Order 1234\r\n\r\nPlease send gloves.\r\n";

/// The zone every test serves: smiles.example (the senders' domain) takes its
/// DSNs at 127.0.0.5.
pub(super) const ZONE: &str = "\
smiles IN MX 10 mx.smiles
mx.smiles IN A 127.0.0.5
partner IN MX 10 mx1.partner
partner IN MX 20 mx2.partner
mx1.partner IN A 127.0.0.2
mx2.partner IN A 127.0.0.3
v4only IN A 127.0.0.4
v6only IN AAAA ::1
nomail IN MX 0 .
";

pub(super) async fn mx_instance(knot: &Knot, port: u16, tweak: impl FnOnce(&mut sealpost::config::Config)) -> Instance {
    let dns = knot.addr.to_string();
    Instance::start_with(move |c| {
        c.outbound.mode = OutboundMode::Mx;
        c.outbound.mx_port = port;
        c.outbound.dns_servers = vec![dns];
        tweak(c);
    })
    .await
}

pub(super) async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_order_a_and_aaaa_fallback_and_null_mx() {
    let knot = Knot::start("example.", ZONE).await;
    let port = free_port(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "::1"]);
    // mx1 (127.0.0.2, preferred) is down: nothing listens there.
    let mx2 = Sink::start("127.0.0.3", port, &[]).await;
    let v4 = Sink::start("127.0.0.4", port, &[]).await;
    let v6 = Sink::start("::1", port, &[]).await;
    let smiles = Sink::start("127.0.0.5", port, &[]).await;
    let instance = mx_instance(&knot, port, |_| {}).await;
    let to = [
        "vendor@partner.example",
        "a@v4only.example",
        "b@v6only.example",
        "c@nomail.example",
    ];
    send_via_relay(&instance, "staff@smiles.example", &to, MESSAGE)
        .await
        .unwrap();

    let at_mx2 = mx2.wait_for(1).await;
    assert!(
        at_mx2[0].contains("X-Rcpt-Args: <vendor@partner.example>"),
        "{at_mx2:?}"
    );
    assert!(at_mx2[0].contains("Please send gloves."));
    assert!(v4.wait_for(1).await[0].contains("X-Rcpt-Args: <a@v4only.example>"));
    let at_v6 = v6.wait_for(1).await;
    assert!(at_v6[0].contains("X-Client-Addr: ipv6:::1"), "over IPv6: {at_v6:?}");
    assert!(at_v6[0].contains("X-Rcpt-Args: <b@v6only.example>"));
    // The null MX refuses for good: its sender gets a DSN, sent by MX too.
    let dsn = smiles.wait_for(1).await;
    assert!(dsn[0].contains("X-Mail-Args: <>"), "from the null sender: {dsn:?}");
    assert!(dsn[0].contains("Final-Recipient: rfc822; c@nomail.example"), "{dsn:?}");
    assert!(dsn[0].contains("Status: 5.1.10"), "{dsn:?}");
    wait_until("the DSN is recorded as sent", async || {
        instance.store().queue().outbound_counts().await.unwrap() == (0, 4, 1)
    })
    .await;
    assert_eq!(mx2.mails().len() + v4.mails().len() + v6.mails().len(), 3, "each once");
}

const VERIFY_BOTH: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
records = {sys.argv[2].encode(): sys.argv[3].encode(), sys.argv[4].encode(): sys.argv[5].encode()}
def dns(name, timeout=5):
    return records.get(name)
d = dkim.DKIM(message)
sigs = [l for l in message.split(b"\r\n") if l.lower().startswith(b"dkim-signature:")]
def check(i):
    try:
        return "pass" if d.verify(idx=i, dnsfunc=dns) else "fail"
    except dkim.ValidationError:
        return "fail"
print(" ".join(check(i) for i in range(len(sigs))))
"#;

pub(super) fn dkimpy_both(message: &[u8], records: [(&str, &str); 2]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), message).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", VERIFY_BOTH])
        .arg(file.path())
        .args([records[0].0, records[0].1, records[1].0, records[1].1])
        .output()
        .expect("python3 with Debian's python3-dkim and python3-nacl (see .ci/run)");
    assert!(out.status.success(), "dkimpy: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The mail as sent: smtp-sink's own lines dropped, CRLF line ends.
pub(super) fn as_sent(dump: &str) -> Vec<u8> {
    let start = dump.find("\nReceived: ").map_or(0, |i| i + 1);
    let mut lines = dump[start..].lines();
    // smtp-sink's Received header (and its continuation lines) are its own.
    let mut out = String::new();
    let mut own = true;
    for line in lines.by_ref() {
        if own && (line.starts_with("Received: ") || line.starts_with([' ', '\t'])) {
            continue;
        }
        own = false;
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_ends_in_a_dsn_signed_with_ed25519_and_rsa_that_dkimpy_verifies() {
    let keys = tempfile::tempdir().unwrap();
    let (rsa, ed) = (keys.path().join("rsa.key"), keys.path().join("ed.key"));
    let rsa_record = gateway::dkim::generate(&rsa).unwrap();
    let ed_record = gateway::dkim::generate_ed25519(&ed).unwrap();
    let knot = Knot::start("example.", ZONE).await;
    let port = free_port(&["127.0.0.2", "127.0.0.3", "127.0.0.5"]);
    let _mx1 = Sink::start("127.0.0.2", port, &["-f", "rcpt"]).await;
    let smiles = Sink::start("127.0.0.5", port, &[]).await;
    let instance = mx_instance(&knot, port, |c| {
        c.dkim.domain = "gateway.example".into();
        c.dkim.selector = "r2026".into();
        c.dkim.key = Some(rsa.clone());
        c.dkim.ed25519_selector = "e2026".into();
        c.dkim.ed25519_key = Some(ed.clone());
        c.outbound.from_address = "postmaster@gateway.example".into();
    })
    .await;
    send_via_relay(&instance, "staff@smiles.example", &["vendor@partner.example"], MESSAGE)
        .await
        .unwrap();
    let dump = smiles.wait_for(1).await.remove(0);
    let dsn = as_sent(&dump);
    let text = String::from_utf8_lossy(&dsn).into_owned();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("Action: failed") && text.contains("Status: 5."), "{text}");
    assert!(text.contains("Diagnostic-Code: smtp; 5"), "{text}");
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(text.contains("Subject: Order 1234"), "the original's header: {text}");
    assert!(
        !text.contains("Please send gloves"),
        "never the original's body: {text}"
    );
    assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"), "{text}");
    let records = [
        ("e2026._domainkey.gateway.example.", ed_record.as_str()),
        ("r2026._domainkey.gateway.example.", rsa_record.as_str()),
    ];
    assert_eq!(dkimpy_both(&dsn, records), "pass pass");
    let altered = text.replacen("Action: failed", "Action: delivered", 1);
    assert_eq!(dkimpy_both(altered.as_bytes(), records), "fail fail");
    // No DSN about the DSN, and the failed delivery stays listed.
    wait_until("the DSN is recorded as sent", async || {
        instance.store().queue().outbound_counts().await.unwrap() == (0, 1, 1)
    })
    .await;
    let all = instance.store().queue().list_outbound(true, 10).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
}

fn sealpost(config: &sealpost::config::Config, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", &config.data_dir)
        .env("SEALPOST_DATABASE_URL", config.database_url())
        .env("SEALPOST_LOG", "error")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_with_backoff_told_once_as_delayed_and_survives_a_restart() {
    let knot = Knot::start("example.", ZONE).await;
    let port = free_port(&["127.0.0.2", "127.0.0.3", "127.0.0.5"]);
    let busy = Sink::start("127.0.0.2", port, &["-r", "rcpt"]).await;
    let busy_too = Sink::start("127.0.0.3", port, &["-r", "rcpt"]).await;
    let smiles = Sink::start("127.0.0.5", port, &[]).await;
    let instance = mx_instance(&knot, port, |c| c.outbound.delay_notice_after = 600).await;
    send_via_relay(&instance, "staff@smiles.example", &["vendor@partner.example"], MESSAGE)
        .await
        .unwrap();
    let store = std::sync::Arc::clone(instance.store());
    let attempts = async || {
        let queued = store.queue().list_outbound(false, 10).await.unwrap();
        queued.first().map_or(0, |entry| entry.attempts)
    };
    wait_until("the first attempt is deferred", async || attempts().await == 1).await;
    // Both MX hosts were tried in the one attempt; not due again before its backoff.
    assert!(busy.mails().is_empty() && busy_too.mails().is_empty());
    let listed = store.queue().list_outbound(false, 10).await.unwrap();
    assert_eq!(
        listed[0].next_attempt_at,
        instance.store().now() + 60,
        "first backoff: 1 minute"
    );
    assert!(
        listed[0].last_error.as_deref().unwrap_or_default().contains("4"),
        "{listed:?}"
    );

    // Eleven minutes on: tried again (and deferred), and past delay_notice_after
    // the sender hears once that it is late.
    instance.clock.advance(660);
    wait_until("the second attempt", async || attempts().await == 2).await;
    let delayed = smiles.wait_for(1).await;
    assert!(delayed[0].contains("Action: delayed"), "{delayed:?}");
    assert!(delayed[0].contains("Will-Retry-Until: "), "{delayed:?}");
    instance.clock.advance(660);
    wait_until("the third attempt", async || attempts().await == 3).await;

    // A restart in the middle loses nothing; the admin sees the delivery waiting.
    let stopped = instance.stop().await;
    drop((busy, busy_too));
    let listed = sealpost(&stopped.config, &["queue", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{listing}");
    assert!(
        listing.contains("vendor@partner.example") && listing.contains("attempts 3"),
        "{listing}"
    );
    let id = listing.split_whitespace().next().unwrap().to_owned();
    let unknown = sealpost(&stopped.config, &["queue", "delete", "--id", "no-such-id"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no delivery"),
        "{unknown:?}"
    );
    let retried = sealpost(&stopped.config, &["queue", "retry", "--id", &id]);
    assert!(retried.status.success(), "{retried:?}");
    assert!(String::from_utf8_lossy(&retried.stdout).contains("1 delivery is due now"));

    let mx1 = Sink::start("127.0.0.2", port, &[]).await;
    let instance = stopped.start().await;
    let arrived = mx1.wait_for(1).await;
    assert!(arrived[0].contains("Please send gloves."), "{arrived:?}");
    wait_until("the delivery is recorded", async || {
        instance.store().queue().outbound_counts().await.unwrap().0 == 0
    })
    .await;
    assert_eq!(mx1.mails().len(), 1, "delivered once");
    assert_eq!(smiles.mails().len(), 1, "told of the delay once, no failure DSN");
    let audit = instance.store().audit_log().recent_audit(20).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "queue.retry"), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_keygen_makes_both_keys_prints_the_records_and_rotates_with_new_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(args)
            .env_remove("SEALPOST_CONFIG")
            .env("SEALPOST_DATA_DIR", dir.path())
            .env("SEALPOST_DKIM_DOMAIN", "smiles.example")
            .env("SEALPOST_LOG", "error")
            .output()
            .unwrap()
    };
    let first = run(&["dkim", "keygen"]);
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.contains("sealpost._domainkey.smiles.example. IN TXT \"v=DKIM1; k=rsa; p="),
        "{out}"
    );
    assert!(
        out.contains("sealpost-ed25519._domainkey.smiles.example. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{out}"
    );
    for record in [
        "v=spf1",
        "_dmarc.smiles.example.",
        "_mta-sts.smiles.example.",
        "_smtp._tls.smiles.example.",
    ] {
        assert!(out.contains(record), "{record} in {out}");
    }
    let key = dir.path().join("dkim/sealpost-ed25519.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let again = run(&["dkim", "keygen"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--selector NEW"),
        "{again:?}"
    );
    let rotated = run(&["dkim", "keygen", "--selector", "r2027", "--ed25519-selector", "e2027"]);
    let out = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(rotated.status.success(), "{out}");
    assert!(
        out.contains("r2027._domainkey.smiles.example.") && out.contains("e2027._domainkey"),
        "{out}"
    );
    assert!(out.contains("rotation"), "{out}");
    let bad = run(&["dkim", "keygen", "--selector", "a.b"]);
    assert!(!bad.status.success());
}
