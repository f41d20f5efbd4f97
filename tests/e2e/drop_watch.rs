//! `sealpost drop --watch DIR`: a file written slowly is sent whole once it
//! stopped growing and filed under `sent/`; a refused type goes to `failed/`
//! with its reason; after a restart a file already sent is not sent again,
//! and a half-done upload goes on from where it stood.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;

use super::drop::{ADA, api_upload, app_password, download, drop_command, file_bytes, register_recipient, sends, text};
use super::harness::Instance;

/// Starts `sealpost drop --watch DIR` (stopping after `max` files).
fn watcher(instance: &Instance, password: &str, dir: &Path, max: usize) -> tokio::process::Child {
    let port = instance.running.addresses.portal.port();
    drop_command(
        instance,
        port,
        password,
        &[
            "--watch",
            dir.to_str().unwrap(),
            "--to",
            "pat@example.org",
            "--role",
            "patient",
            "--settle",
            "2",
            "--max-files",
            &max.to_string(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

async fn finished(child: tokio::process::Child) -> Output {
    tokio::time::timeout(Duration::from_mins(2), child.wait_with_output())
        .await
        .expect("the watcher stopped within 2 minutes")
        .unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_a_slowly_written_file_whole_and_never_twice_across_a_restart() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let password = app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let dir: PathBuf = folder.path().to_owned();

    // The imaging software writes the X-ray in pieces, pausing between them.
    let child = watcher(&instance, &password, &dir, 1);
    let content = file_bytes(400_000, "slow");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(dir.join("pano.png")).unwrap();
        for piece in content.chunks(40_000) {
            file.write_all(piece).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    let output = finished(child).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(names_in(&dir.join("sent")), ["pano.png"], "{}", text(&output));
    assert!(!dir.join("pano.png").exists());

    let (http, message) = register_recipient(&instance, "pat@example.org").await;
    assert!(
        download(&instance, &http, &message, 0).await == content,
        "sent half-written"
    );

    // A previous run sent "ceph.png" but died before it could move it: its
    // state file says "sending" with the upload the server has consumed.
    let ceph = file_bytes(50_000, "ceph");
    std::fs::write(dir.join("ceph.png"), &ceph).unwrap();
    let location = api_upload(&instance, &password, "ceph.png", &ceph).await;
    let http_api = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let sent = http_api
        .post(instance.url("/api/drops"))
        .basic_auth(ADA, Some(&password))
        .header("Content-Type", "application/json")
        .body(
            serde_json::json!({"to": "pat@example.org", "uploads": [location.rsplit('/').next().unwrap()]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::CREATED);
    let before = sends(&instance).await;
    let state = serde_json::json!({"files": {"ceph.png": {
        "size": ceph.len(), "stage": "sending", "upload": location, "message": null
    }}});
    std::fs::write(dir.join(".sealpost-drop-state.json"), state.to_string()).unwrap();

    let output = finished(watcher(&instance, &password, &dir, 1)).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("already sent"), "{}", text(&output));
    assert_eq!(names_in(&dir.join("sent")), ["ceph.png", "pano.png"]);
    assert_eq!(sends(&instance).await, before, "ceph.png was sent twice");
    let state = std::fs::read_to_string(dir.join(".sealpost-drop-state.json")).unwrap();
    assert!(!state.contains("ceph.png"), "{state}");

    // A type the practice does not accept goes to failed/ with the reason.
    let child = watcher(&instance, &password, &dir, 1);
    std::fs::write(dir.join("setup.exe"), b"MZ not welcome").unwrap();
    let output = finished(child).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(names_in(&dir.join("failed")), ["setup.exe", "setup.exe.reason.txt"]);
    let reason = std::fs::read_to_string(dir.join("failed/setup.exe.reason.txt")).unwrap();
    assert!(reason.contains("setup.exe"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_goes_on_with_a_half_done_upload_after_a_restart() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let password = app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let dir: PathBuf = folder.path().to_owned();
    let content = file_bytes(600_000, "half");
    std::fs::write(dir.join("ceph.dcm"), &content).unwrap();

    // A previous run uploaded the first 200 000 bytes, then was stopped.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let created = http
        .post(instance.url("/api/uploads"))
        .basic_auth(ADA, Some(&password))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", content.len().to_string())
        .header(
            "Upload-Metadata",
            format!(
                "filename {}",
                base64::engine::general_purpose::STANDARD.encode("ceph.dcm")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let patched = http
        .patch(instance.url(&location))
        .basic_auth(ADA, Some(&password))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(content[..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let state = serde_json::json!({"files": {"ceph.dcm": {
        "size": content.len(), "stage": "uploading", "upload": location, "message": null
    }}});
    std::fs::write(dir.join(".sealpost-drop-state.json"), state.to_string()).unwrap();

    let output = finished(watcher(&instance, &password, &dir, 1)).await;
    assert!(output.status.success(), "{}", text(&output));
    // The store keeps whole sealed chunks: the upload goes on from the last one.
    let at: u64 = text(&output)
        .split("ceph.dcm: going on from byte ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("did not go on with the upload: {}", text(&output)));
    assert!(at > 0 && at <= 200_000, "went on from byte {at}");
    assert_eq!(names_in(&dir.join("sent")), ["ceph.dcm"]);
    assert_eq!(sends(&instance).await, 1);

    let (http, message) = register_recipient(&instance, "pat@example.org").await;
    assert!(
        download(&instance, &http, &message, 0).await == content,
        "the resumed file differs"
    );
}
