//! "Download all" and the viewers' routes over HTTP: the zip a sender gets
//! holds every attachment byte-identical under safe, unique names (read back
//! by Python's `zipfile`, which checks each CRC); another practice's user,
//! an index out of range, a type without a viewer and anyone signed out get
//! nothing; a file named like an image that isn't one is never served as one.

use std::io::Write as _;
use std::process::{Command, Stdio};

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;

use super::compose::signed_in;
use super::harness::{Instance, browser, link_in, set_password};
use super::secure_send::send_via_relay;
use super::tenant_boundary::{CAROL, other_practice};

pub(super) const ADA: &str = "ada@smiles.example";
pub(super) const ADA_PASSWORD: &str = "Viewer-Pass-77";

/// A test file from `tests/fixtures/viewers` (made by its `make.py`).
pub(super) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/viewers/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Dr Ada sends `files` (name, type, bytes) to a new patient; returns the
/// message's path (`/m/{id}`) once it is sealed.
pub(super) async fn ada_sends_files(instance: &Instance, files: &[(&str, &str, Vec<u8>)]) -> String {
    let to = "pat@example.org";
    let mut builder = MessageBuilder::new()
        .from(("Dr Ada Lovelace", ADA))
        .to(to)
        .subject("[secure] Your scans")
        .text_body("The files from today's visit.");
    for (name, kind, bytes) in files {
        builder = builder.attachment(*kind, *name, bytes.clone());
    }
    let message = builder
        .header("X-Sealpost-Secure", Raw::new("1"))
        .header("X-Sealpost-Role", Raw::new(format!("{to} patient")))
        .write_to_vec()
        .unwrap();
    send_via_relay(instance, ADA, &[to], &message)
        .await
        .expect("accepted with 250");
    let invite = link_in(
        &instance.wait_for_mail(to, 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    let url = invite.split('?').next().unwrap().to_owned();
    url.strip_prefix(&instance.config.public_url).unwrap().to_owned()
}

/// An instance without required two-step codes where Dr Ada can sign in.
pub(super) async fn instance_with_ada() -> Instance {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    instance.practice_with_doctor().await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    instance
}

/// Each entry of a zip as `name size sha256`, as Python reads it.
fn python_reads(zip: &[u8]) -> Vec<String> {
    let script = "import sys,io,zipfile,hashlib\n\
        z=zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n\
        assert z.testzip() is None\n\
        for i in z.infolist(): print(i.filename, i.file_size, hashlib.sha256(z.read(i)).hexdigest())";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(zip).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    store::crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_all_gives_every_attachment_byte_identical_under_safe_names() {
    let instance = instance_with_ada().await;
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let files = [
        ("radiograph.png", "image/png", fixture("radiograph.png")),
        ("crown.stl", "model/stl", fixture("crown.stl")),
        ("../../etc/cron.d/evil.txt", "text/plain", b"* * * * * root sh".to_vec()),
        ("crown.stl", "model/stl", fixture("crown-ascii.stl")),
        ("big.pdf", "application/pdf", big),
    ];
    let message = ada_sends_files(&instance, &files).await;
    let http = signed_in(&instance, ADA, ADA_PASSWORD).await;

    let page = http
        .get(instance.url(&message))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("{message}/all.zip")),
        "the page offers Download all"
    );
    assert!(page.contains(&format!("{message}/a/0/view")), "the PNG has a viewer");
    assert!(page.contains(&format!("{message}/a/0/thumb")), "and a thumbnail");
    assert!(page.contains(&format!("{message}/a/1/view")), "the STL has a viewer");
    assert!(!page.contains(&format!("{message}/a/4/view")), "a PDF has none");

    let zip = http
        .get(instance.url(&format!("{message}/all.zip")))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(
        zip.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
        "saved, never shown"
    );
    let zip = zip.bytes().await.unwrap();
    let listing = python_reads(&zip);
    let expected_names = ["radiograph.png", "crown.stl", "evil.txt", "crown (2).stl", "big.pdf"];
    assert_eq!(listing.len(), files.len(), "{listing:?}");
    for ((line, (_, _, bytes)), name) in listing.iter().zip(&files).zip(expected_names) {
        let mut fields = line.rsplitn(3, ' ');
        let (digest, size, got) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(
            (size, digest),
            (bytes.len().to_string().as_str(), sha(bytes).as_str()),
            "{got}"
        );
        // The traversal name keeps only its last part (however the ingest stored it).
        assert!(
            got == name || (name == "evil.txt" && got.ends_with(name)),
            "{got} for {name}"
        );
    }
    for line in &listing {
        let name = line.rsplitn(3, ' ').nth(2).unwrap();
        assert!(
            !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_and_download_all_refuse_strangers_bad_indexes_and_fake_images() {
    let instance = instance_with_ada().await;
    let html_as_png = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let message = ada_sends_files(
        &instance,
        &[
            ("radiograph.png", "image/png", fixture("radiograph.png")),
            ("report.pdf", "application/pdf", b"%PDF-1.4 test".to_vec()),
            ("innocent.png", "image/png", html_as_png),
        ],
    )
    .await;
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    other_practice(&instance).await;
    set_password(&instance, CAROL, "Tooth-Fairy-88").await;
    let carol = signed_in(&instance, CAROL, "Tooth-Fairy-88").await;

    let status =
        async |http: &reqwest::Client, path: String| http.get(instance.url(&path)).send().await.unwrap().status();
    // Another practice's user: the same answer as a message that doesn't exist.
    for path in ["all.zip", "a/0/view", "a/0/raw", "a/0/thumb"] {
        assert_eq!(status(&carol, format!("{message}/{path}")).await, 404, "{path}");
    }
    // Indexes out of range or not numbers, a type without a viewer.
    for path in [
        "a/3/view",
        "a/3/raw",
        "a/99999999999999999999/view",
        "a/-1/raw",
        "a/x/thumb",
        "a/1/view",
        "a/1/raw",
        "a/1/thumb",
    ] {
        assert_eq!(status(&ada, format!("{message}/{path}")).await, 404, "{path}");
    }
    assert_eq!(
        status(&ada, "/m/0123456789abcdef0123456789abcdef/all.zip".to_owned()).await,
        404
    );
    // Signed out: sent to sign in.
    let anonymous = browser()
        .get(instance.url(&format!("{message}/all.zip")))
        .send()
        .await
        .unwrap();
    assert!(anonymous.url().path().starts_with("/signin"), "{}", anonymous.url());

    // The real PNG is served as one, sandboxed; the HTML named .png is bytes.
    let png = ada
        .get(instance.url(&format!("{message}/a/0/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(
        png.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(png.bytes().await.unwrap().to_vec(), fixture("radiograph.png"));
    let fake = ada
        .get(instance.url(&format!("{message}/a/2/raw")))
        .send()
        .await
        .unwrap();
    assert_eq!(fake.status(), 200);
    assert_eq!(fake.headers()["content-type"], "application/octet-stream");
    assert_eq!(fake.headers()["x-content-type-options"], "nosniff");
    assert!(
        fake.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    // A non-image named as an image: a file icon, never its bytes.
    let thumb = ada
        .get(instance.url(&format!("{message}/a/2/thumb")))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/svg+xml");
    let icon = thumb.bytes().await.unwrap().to_vec();
    assert!(
        icon.starts_with(b"<svg") && !icon.windows(5).any(|w| w == b"<html"),
        "the file icon"
    );
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, action, object)| action == "attachment.view" && object.ends_with("/attachment:0")),
        "viewing is audited"
    );
}
