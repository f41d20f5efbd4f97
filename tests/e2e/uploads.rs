//! The resumable upload endpoint over real HTTPS (tus 1.0 core): a file made,
//! its PATCH cut mid-way, asked where it stands (HEAD), resumed, and read back
//! byte for byte; what the protocol refuses (wrong offset, version, type);
//! other people's uploads not found; CSRF on every state-changing request; the
//! types and size per message at the boundary; the plain form without
//! scripts; and no byte of a file or its name in clear on disk.

use std::time::Duration;

use axum::body::Bytes;
use base64::Engine as _;
use futures::StreamExt as _;
use reqwest::StatusCode;
use store::accounts::Role;

use super::harness::{Instance, browser, csrf_in, files_containing, postgres_tables_containing, set_password, sign_in};
use super::secure_send::canary;

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");

/// A signed-in portal client and its CSRF token.
pub(super) struct Person {
    pub http: reqwest::Client,
    pub csrf: String,
}

pub(super) async fn signed_in(instance: &Instance, email: &str) -> Person {
    set_password(instance, email, "Upload-Pass-77").await;
    let http = browser();
    let page = sign_in(&http, instance, email, "Upload-Pass-77", "/uploads/new")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Upload files"), "{page}");
    Person {
        csrf: csrf_in(&page),
        http,
    }
}

async fn second_doctor(instance: &Instance) {
    instance
        .store()
        .accounts()
        .add_practice_user(
            "bo@smiles.example",
            "Dr Bo",
            Role::Doctor,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
}

fn metadata(name: &str) -> String {
    format!("filename {}", base64::engine::general_purpose::STANDARD.encode(name))
}

/// `POST /uploads`; the response.
pub(super) async fn create(instance: &Instance, person: &Person, name: &str, length: u64) -> reqwest::Response {
    person
        .http
        .post(instance.url("/uploads"))
        .header(TUS.0, TUS.1)
        .header("X-CSRF-Token", &person.csrf)
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata(name))
        .send()
        .await
        .unwrap()
}

async fn patch(
    instance: &Instance,
    person: &Person,
    location: &str,
    offset: u64,
    body: reqwest::Body,
) -> reqwest::Result<reqwest::Response> {
    person
        .http
        .patch(instance.url(location))
        .header(TUS.0, TUS.1)
        .header("X-CSRF-Token", &person.csrf)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .await
}

async fn offset(instance: &Instance, person: &Person, location: &str) -> (StatusCode, Option<u64>) {
    let response = person
        .http
        .head(instance.url(location))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    let offset = response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status(), offset)
}

/// A file's bytes that say where they are, with the canary in every line.
fn file_bytes(len: usize, canary: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{canary} line {line:08}\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tus_upload_cut_mid_way_resumes_and_reads_back_byte_identical() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let ada = signed_in(&instance, "ada@smiles.example").await;
    let canary = canary();
    let name = format!("{canary}-x-ray.pdf");
    let file = file_bytes(1_000_000 + 12_345, &canary);

    let created = create(&instance, &ada, &name, file.len() as u64).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["tus-resumable"], "1.0.0");
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/uploads/"), "{location}");
    assert_eq!(offset(&instance, &ada, &location).await, (StatusCode::OK, Some(0)));

    // The connection breaks after ~60% of the file.
    let cut = 600_000;
    let sent = Bytes::copy_from_slice(&file[..cut]);
    let broken = futures::stream::iter(vec![Ok::<_, std::io::Error>(sent)]).chain(futures::stream::once(async {
        // Let the bytes leave (and be sealed, on a loaded machine too) before
        // the connection goes.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "Wi-Fi gone"))
    }));
    assert!(
        patch(&instance, &ada, &location, 0, reqwest::Body::wrap_stream(broken))
            .await
            .is_err()
    );
    // The server keeps every whole 64 KiB chunk that arrived.
    let mut resumed_at = 0;
    for _ in 0..300 {
        resumed_at = offset(&instance, &ada, &location).await.1.unwrap();
        if resumed_at > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed_at > 0 && resumed_at <= cut as u64, "{resumed_at}");
    assert_eq!(resumed_at % 65_536, 0, "sealed up to a chunk boundary");

    // A wrong offset is refused; the right one continues.
    let wrong = patch(
        &instance,
        &ada,
        &location,
        resumed_at + 1,
        reqwest::Body::from(vec![0u8; 10]),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let rest = file[usize::try_from(resumed_at).unwrap()..].to_vec();
    let done = patch(&instance, &ada, &location, resumed_at, reqwest::Body::from(rest))
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(done.headers()["upload-offset"], file.len().to_string().as_str());
    assert_eq!(offset(&instance, &ada, &location).await.1, Some(file.len() as u64));

    // Back through the portal, and through the store as the compose form opens it.
    let download = ada.http.get(instance.url(&location)).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        download.bytes().await.unwrap() == file,
        "the download is byte-identical"
    );
    let owner = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let id = store::uploads::UploadId::parse(location.trim_start_matches("/uploads/")).unwrap();
    let opened = instance.store().uploads().open(&owner, &id).await.unwrap();
    assert_eq!(
        (opened.file_name.as_str(), opened.size),
        (name.as_str(), file.len() as u64)
    );
    let read: Vec<Bytes> = futures::TryStreamExt::try_collect(opened.body).await.unwrap();
    assert!(read.concat() == file, "open gives the same bytes");

    // Nothing of the file or its name in clear: not on disk, not in the logs.
    assert_eq!(
        files_containing(instance.dir.path(), canary.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
    let logged: Vec<String> = super::harness::logs()
        .lines()
        .filter(|l| l.contains(&canary))
        .map(str::to_owned)
        .collect();
    assert!(logged.is_empty(), "{logged:?}");
    // (Last: the scan's own queries name the canary in the debug log.)
    assert!(postgres_tables_containing(&instance, &canary).await.is_empty());

    // Removed (tus termination): gone.
    let removed = ada
        .http
        .delete(instance.url(&location))
        .header(TUS.0, TUS.1)
        .header("X-CSRF-Token", &ada.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&instance, &ada, &location).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_their_owners_and_every_change_needs_the_csrf_token() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    second_doctor(&instance).await;
    let ada = signed_in(&instance, "ada@smiles.example").await;
    let bo = signed_in(&instance, "bo@smiles.example").await;
    let created = create(&instance, &ada, "scan.pdf", 5).await;
    let location = created.headers()["location"].to_str().unwrap().to_owned();

    // Bo, signed in with his own valid token, finds nothing of Ada's.
    assert_eq!(offset(&instance, &bo, &location).await.0, StatusCode::NOT_FOUND);
    let stolen = patch(&instance, &bo, &location, 0, reqwest::Body::from("EVIL!"))
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    let deleted = bo
        .http
        .delete(instance.url(&location))
        .header(TUS.0, TUS.1)
        .header("X-CSRF-Token", &bo.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND);

    // Without the token (or with Bo's), Ada's own browser is refused.
    let without = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut request = ada
            .http
            .request(method, instance.url(path))
            .header(TUS.0, TUS.1)
            .header("Upload-Length", "5")
            .header("Upload-Metadata", metadata("a.pdf"))
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body("abcde");
        if let Some(token) = token {
            request = request.header("X-CSRF-Token", token);
        }
        request.send()
    };
    for token in [None, Some(bo.csrf.as_str()), Some("forged")] {
        for (method, path) in [
            (reqwest::Method::POST, "/uploads"),
            (reqwest::Method::PATCH, location.as_str()),
            (reqwest::Method::DELETE, location.as_str()),
        ] {
            let response = without(method.clone(), path, token).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} with {token:?}"
            );
        }
    }
    assert_eq!(offset(&instance, &ada, &location).await, (StatusCode::OK, Some(0)));

    // Signed out: nothing at all.
    let stranger = browser();
    let head = stranger
        .head(instance.url(&location))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.url().path(), "/signin", "sent to sign in");
    assert!(head.headers().get("upload-offset").is_none());

    // What tus itself refuses.
    let old = ada
        .http
        .patch(instance.url(&location))
        .header("Tus-Resumable", "0.2.2")
        .header("X-CSRF-Token", &ada.csrf)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body("abcde")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(old.headers()["tus-version"], "1.0.0");
    let form_body = ada
        .http
        .patch(instance.url(&location))
        .header(TUS.0, TUS.1)
        .header("X-CSRF-Token", &ada.csrf)
        .header("Upload-Offset", "0")
        .header("Content-Type", "text/plain")
        .body("abcde")
        .send()
        .await
        .unwrap();
    assert_eq!(form_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let too_much = patch(&instance, &ada, &location, 0, reqwest::Body::from("abcdefgh"))
        .await
        .unwrap();
    assert_eq!(too_much.status(), StatusCode::BAD_REQUEST);
    let exact = patch(&instance, &ada, &location, 0, reqwest::Body::from("abcde"))
        .await
        .unwrap();
    assert_eq!(exact.status(), StatusCode::NO_CONTENT);
    let bytes = ada
        .http
        .get(instance.url(&location))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"abcde");
    assert_eq!(
        bo.http.get(instance.url(&location)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_and_size_per_message_are_checked_at_the_boundary() {
    let instance = Instance::start_with(|config| config.uploads.max_message_size = "1000000".into()).await;
    instance.practice_with_doctor().await;
    let ada = signed_in(&instance, "ada@smiles.example").await;
    assert_eq!(
        create(&instance, &ada, "scan.pdf", 1_000_000).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        create(&instance, &ada, "crown.STL", 10).await.status(),
        StatusCode::CREATED
    );
    let over = create(&instance, &ada, "big-scan.pdf", 1_000_001).await;
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = over.text().await.unwrap();
    assert!(text.contains("big-scan.pdf") && text.contains("1 MB"), "{text}");
    let exe = create(&instance, &ada, "setup.exe", 10).await;
    assert_eq!(exe.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = exe.text().await.unwrap();
    assert!(text.contains("setup.exe") && text.contains(".exe"), "{text}");
    assert!(
        text.contains(".pdf") && text.contains(".dcm") && text.contains(".zip"),
        "the list: {text}"
    );
    assert_eq!(
        create(&instance, &ada, "noextension", 10).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scripts_the_form_streams_its_files_in() {
    let instance = Instance::start_with(|config| config.uploads.max_message_size = "300000".into()).await;
    instance.practice_with_doctor().await;
    let ada = signed_in(&instance, "ada@smiles.example").await;
    let canary = canary();
    let file = file_bytes(300_000, &canary);
    let form = |name: &str, bytes: Vec<u8>| {
        reqwest::multipart::Form::new().text("csrf", ada.csrf.clone()).part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        )
    };
    let page = ada
        .http
        .post(instance.url("/uploads/new"))
        .multipart(form("report.pdf", file.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("report.pdf"), "{page}");
    let link = page
        .split("href=\"/uploads/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let bytes = ada
        .http
        .get(instance.url(&format!("/uploads/{link}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes == file, "byte-identical");
    assert!(files_containing(instance.dir.path(), canary.as_bytes()).is_empty());

    // One byte over the size per message, or a type not accepted: refused, named.
    let mut over = file.clone();
    over.push(b'!');
    let refused = ada
        .http
        .post(instance.url("/uploads/new"))
        .multipart(form("too-big.pdf", over))
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let text = refused.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("too-big.pdf"), "{text}");
    let exe = ada
        .http
        .post(instance.url("/uploads/new"))
        .multipart(form("run.exe", b"MZ".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(exe.status(), StatusCode::BAD_REQUEST);
    assert!(exe.text().await.unwrap().contains("run.exe"));
    // The form's token is its first part, like every other form's.
    let forged = ada
        .http
        .post(instance.url("/uploads/new"))
        .multipart(reqwest::multipart::Form::new().text("csrf", "forged").part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.pdf"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}
