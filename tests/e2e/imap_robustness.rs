//! Hostile IMAP input (issue 9, findings 2, 3 and 5): a message nested 20,000
//! multiparts deep, LIST patterns that overflowed the stack or backtracked
//! exponentially, and FETCHes that grew memory with the part size times the
//! item count. Each answers, the process stays up, and the SMTP, IMAP and
//! portal listeners answer afterwards. The memory test reads this process's
//! peak RSS (the instance runs in-process) before and after.

use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{Instance, RawSmtp, browser};
use super::imap::setup;

/// A raw IMAP client over implicit TLS: signs in, selects INBOX and sends each
/// command given, reading literals without keeping them. Per command it
/// prints `RESULT <tagged reply> bytes=<octets read> secs=<elapsed>` and
/// `DATA <untagged text, literals elided, first 4,000 characters>`.
const CLIENT: &str = r#"
import socket, ssl, sys, time
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=120))
f = s.makefile("rb", buffering=1 << 20)
def reply(tag):
    total, data = 0, []
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed by the server")
        total += len(line)
        if line.endswith(b"}\r\n") and b"{" in line:
            n = int(line[line.rindex(b"{") + 1:-3])
            data.append(line[:line.rindex(b"{")] + b"<literal %d>" % n)
            left = n
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise SystemExit("connection closed inside a literal")
                left -= len(chunk); total += len(chunk)
            continue
        if line.startswith(tag.encode() + b" "):
            return line.decode(errors="replace").strip(), total, b"".join(data)
        data.append(line)
print("greeting", f.readline().decode().strip())
for i, command in enumerate(["LOGIN %s %s" % (user, password), "SELECT INBOX"] + sys.argv[4:]):
    tag = "t%d" % i
    started = time.time()
    s.sendall(("%s %s\r\n" % (tag, command)).encode())
    line, total, data = reply(tag)
    print("RESULT", line, "bytes=%d" % total, "secs=%.2f" % (time.time() - started))
    print("DATA", data[:4000].decode(errors="replace").replace("\r\n", " | "))
s.sendall(b"z LOGOUT\r\n"); reply("z")
"#;

/// Runs [`CLIENT`] as Bob with `commands` and returns what it printed.
async fn raw_imap(instance: &Instance, password: &str, commands: &[String]) -> String {
    let mut args = vec![
        instance.running.addresses.imap_tls.port().to_string(),
        "bob@smiles.example".to_owned(),
        password.to_owned(),
    ];
    args.extend(commands.iter().cloned());
    tokio::task::spawn_blocking(move || {
        let output = Command::new("python3")
            .arg("-c")
            .arg(CLIENT)
            .args(&args)
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "client failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    })
    .await
    .unwrap()
}

/// The `RESULT` line of the `n`th command given (0-based, after LOGIN and SELECT).
fn result(out: &str, n: usize) -> &str {
    out.lines()
        .filter(|l| l.starts_with("RESULT "))
        .nth(n + 2)
        .unwrap_or_else(|| panic!("no result #{n} in {out}"))
}

/// The `DATA` line of the `n`th command given.
fn data(out: &str, n: usize) -> &str {
    out.lines()
        .filter(|l| l.starts_with("DATA "))
        .nth(n + 2)
        .unwrap_or_else(|| panic!("no data #{n} in {out}"))
}

/// Octets the `n`th command's response took.
fn bytes_read(out: &str, n: usize) -> u64 {
    result(out, n)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .and_then(|b| b.parse().ok())
        .unwrap()
}

/// SMTP greets, the portal serves its sign-in page and IMAP answers NOOP, each
/// within 10 s.
async fn every_listener_answers(instance: &Instance, bob_pw: &str) {
    let bound = Duration::from_secs(10);
    let started = Instant::now();
    let mut smtp = tokio::time::timeout(bound, RawSmtp::connect(instance.relay()))
        .await
        .expect("SMTP greets in time");
    smtp.cmd("QUIT", "221").await;
    let page = tokio::time::timeout(bound, browser().get(instance.url("/signin")).send())
        .await
        .expect("portal answers in time")
        .unwrap();
    assert_eq!(page.status(), 200);
    let out = tokio::time::timeout(bound, raw_imap(instance, bob_pw, &["NOOP".to_owned()]))
        .await
        .expect("IMAP answers in time");
    assert!(result(&out, 0).contains("OK"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Seals `mail` from Ada to Bob without SMTP (whose DATA check would refuse
/// some of these today) and returns its id.
pub(super) async fn plant(instance: &Instance, mail: &[u8]) -> store::ids::MessageId {
    let store = instance.store();
    let ada = store
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let mut writer = store.queue().spool_writer().await.unwrap();
    for chunk in mail.chunks(1 << 20) {
        writer.write(chunk).await.unwrap();
    }
    let spooled = writer.finish().await.unwrap();
    let id = spooled.id.clone();
    store
        .queue()
        .accept_secure(
            &spooled,
            "ada@smiles.example",
            &["bob@smiles.example".to_owned()],
            ada.id,
        )
        .await
        .unwrap();
    // The sealer may get there first; either way it ends sealed.
    let _ = store.mail().seal_spooled(&id).await;
    let bob = store
        .accounts()
        .user_by_email("bob@smiles.example")
        .await
        .unwrap()
        .unwrap();
    for _ in 0..400 {
        if store.mail().inbox(&bob, 50).await.unwrap().iter().any(|m| m.id == id) {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("planted message never sealed");
}

/// `depth` multiparts, each holding the next, a text part innermost (about
/// 70 octets a level: 20,000 levels are 1.4 MB).
fn nested(depth: usize) -> Vec<u8> {
    let mut mail = b"From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: bob@smiles.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n".to_vec();
    for level in 0..depth {
        mail.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n").as_bytes(),
        );
    }
    mail.extend_from_slice(b"Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for level in (0..depth).rev() {
        mail.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
    }
    mail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_deep_mime_nesting_is_described_and_the_server_stays_up() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let mail = nested(20_000);
    assert!(mail.len() > 1_400_000, "{}", mail.len());
    plant(&instance, &mail).await;

    let deep_path = vec!["1"; 200].join(".");
    let commands = [
        "FETCH 1 (BODYSTRUCTURE)".to_owned(),
        "FETCH 1 (BODY)".to_owned(),
        "FETCH 1 (BODY.PEEK[1])".to_owned(),
        format!("FETCH 1 (BODY.PEEK[{deep_path}])"),
        "FETCH 1 (BODY.PEEK[1.MIME])".to_owned(),
    ];
    let started = Instant::now();
    let out = raw_imap(&instance, &bob_pw, &commands).await;
    for n in 0..commands.len() {
        assert!(result(&out, n).contains(" OK "), "{}: {out}", commands[n]);
    }
    // Described 64 levels deep, then one opaque part; balanced parentheses.
    let structure = data(&out, 0);
    assert_eq!(structure.matches("\"mixed\")").count(), 64, "{structure}");
    assert!(structure.contains("(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" "));
    assert_eq!(structure.matches('(').count(), structure.matches(')').count());
    // BODY[1] is the level below the top: nearly the whole message, streamed.
    assert!(bytes_read(&out, 2) > 1_300_000, "{out}");
    assert!(data(&out, 3).contains("BODY[1.1.1"), "{out}");
    assert!(data(&out, 4).contains("Content-Type: multipart/mixed") || data(&out, 4).contains("<literal"));
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    every_listener_answers(&instance, &bob_pw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_list_hostile_patterns_answer_at_once_and_listeners_stay_up() {
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let stack_buster = format!("LIST \"\" {}", "*".repeat(30_000));
    let backtracker = format!("LIST \"\" {}q", "*".repeat(400));
    let started = Instant::now();
    // Each sent once per core, at once, as the report did.
    let runs = (0..2).map(|_| {
        let commands = [stack_buster.clone(), backtracker.clone(), "LIST \"\" *".to_owned()];
        let instance = &instance;
        let bob_pw = bob_pw.clone();
        async move { raw_imap(instance, &bob_pw, &commands).await }
    });
    let outs = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    for out in &outs {
        assert!(result(out, 0).contains(" BAD [LIMIT]"), "{out}");
        assert!(result(out, 1).contains(" OK "), "{out}");
        assert!(!data(out, 1).contains("* LIST"), "nothing ends in q: {out}");
        assert!(data(out, 2).contains("INBOX") && data(out, 2).contains("Sent"), "{out}");
    }
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    every_listener_answers(&instance, &bob_pw).await;
}

/// This process's resident set and its peak since the last reset, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` value 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A message whose second part is `size` octets of base64.
fn with_big_part(size: usize, tag: &str) -> Vec<u8> {
    let mut mail = format!(
        "From: Dr Ada Lovelace <ada@smiles.example>\r\nTo: bob@smiles.example\r\nSubject: scan {tag}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nThe scan is attached.\r\n--x\r\nContent-Type: application/octet-stream; name=\"scan.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while mail.len() < size {
        mail.extend_from_slice(line);
    }
    mail.extend_from_slice(b"--x--\r\n");
    mail
}

/// Run alone for exact numbers (`cargo test --test e2e imap_fetch_memory`): the
/// peak is the whole process's, so tests running beside it add theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_bounded_for_imap_fetch_of_big_parts_and_concurrent_structures() {
    const MIB: u64 = 1024;
    let instance = Instance::start().await;
    let (_, bob_pw) = setup(&instance).await;
    let part = 30 * 1024 * 1024;
    plant(&instance, &with_big_part(part, "one")).await;
    plant(&instance, &with_big_part(part, "two")).await;

    // Too many items: refused before any work.
    let many = format!("FETCH 1 ({})", vec!["UID"; 19_000].join(" "));
    let out = raw_imap(&instance, &bob_pw, &[many]).await;
    assert!(result(&out, 0).contains(" BAD [LIMIT]"), "{out}");

    // One FETCH of the 30 MB part twelve times over.
    let twelve = format!("FETCH 1 ({})", vec!["BODY.PEEK[2]"; 12].join(" "));
    reset_peak();
    let (before, _) = rss_kib();
    let out = raw_imap(&instance, &bob_pw, &[twelve]).await;
    let (after, peak) = rss_kib();
    assert!(result(&out, 0).contains(" OK "), "{out}");
    assert!(bytes_read(&out, 0) > 12 * (part as u64 - 4096), "{out}");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "FETCH BODY.PEEK[2] x12 of a 30 MB part: RSS before {} MiB, peak {} MiB (+{} MiB), after {} MiB",
        before / MIB,
        peak / MIB,
        growth / MIB,
        after / MIB
    );
    // Before the fix: +443 MiB here.
    assert!(growth < 200 * MIB, "peak grew by {} MiB", growth / MIB);

    // Eight sessions fetch BODYSTRUCTURE of the other 30 MB message at once.
    reset_peak();
    let (before, _) = rss_kib();
    let runs = (0..8).map(|_| {
        let instance = &instance;
        let bob_pw = bob_pw.clone();
        async move { raw_imap(instance, &bob_pw, &["FETCH 2 (BODYSTRUCTURE)".to_owned()]).await }
    });
    let outs = futures::future::join_all(runs).await;
    let (after, peak) = rss_kib();
    for out in &outs {
        assert!(result(out, 0).contains(" OK "), "{out}");
        assert!(data(out, 0).contains("\"scan.bin\""), "{out}");
    }
    let growth = peak.saturating_sub(before);
    eprintln!(
        "8 concurrent BODYSTRUCTURE of a 30 MB message: RSS before {} MiB, peak {} MiB (+{} MiB), after {} MiB",
        before / MIB,
        peak / MIB,
        growth / MIB,
        after / MIB
    );
    // Before the fix: +136 MiB here (eight parses), +326 MB in the report.
    assert!(growth < 110 * MIB, "peak grew by {} MiB", growth / MIB);
    every_listener_answers(&instance, &bob_pw).await;
}
