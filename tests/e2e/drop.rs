//! Secure Drop from the desktop: the real `sealpost drop` binary against a
//! running portal over HTTPS with an app password. Two files to a new
//! address (refused without its role; then the recipient registers and
//! downloads both, byte-identical); wrong or badly kept credentials refused
//! with their exit codes; and the API's attacker cases (a cookie is not
//! enough, other people's uploads, one recipient only, a new address needs a
//! role). The resume after a server stop is `drop_resume.rs`, the watched
//! folder `drop_watch.rs`; they share the helpers here.

use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;

use super::harness::{Instance, browser, finish_two_step, link_in, logs, register_form, set_password, sign_in};

pub(super) const ADA: &str = "ada@smiles.example";

/// An app password for `email`.
pub(super) async fn app_password(instance: &Instance, email: &str) -> String {
    let user = instance.store().accounts().user_by_email(email).await.unwrap().unwrap();
    instance
        .store()
        .auth()
        .create_app_password(&user, "front desk", "test")
        .await
        .unwrap()
}

/// `sealpost drop ARGS…` against the portal at `port`, with `password` in the
/// environment (never on the command line).
pub(super) fn drop_command(instance: &Instance, port: u16, password: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .arg("drop")
        .args(args)
        .arg("--portal")
        .arg(format!("https://localhost:{port}"))
        .arg("--ca-cert")
        .arg(instance.config.cert_path())
        .env("SEALPOST_EMAIL", ADA)
        .env("SEALPOST_APP_PASSWORD", password)
        .env_remove("SEALPOST_DROP_CREDENTIALS")
        .env_remove("SEALPOST_DROP_PORTAL")
        .kill_on_drop(true);
    command
}

pub(super) async fn run_drop(instance: &Instance, password: &str, args: &[&str]) -> Output {
    let port = instance.running.addresses.portal.port();
    let child = drop_command(instance, port, password, args).output();
    tokio::time::timeout(Duration::from_mins(3), child)
        .await
        .expect("sealpost drop finished within 3 minutes")
        .unwrap()
}

pub(super) fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Bytes that differ all along, ending with `tag`.
pub(super) fn file_bytes(len: usize, tag: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// The recipient of a first message registers from the invitation and signs
/// in; returns their client and the message's URL.
pub(super) async fn register_recipient(instance: &Instance, email: &str) -> (reqwest::Client, String) {
    let notification = instance.wait_for_mail(email, 1).await;
    let invite = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    let http = browser();
    let registered = register_form(&http, instance, &invite, "Pat Example", "+1 201 555 0199").await;
    assert_eq!(registered.status(), 200);
    let set_password_mail = instance.wait_for_mail(email, 2).await;
    let set_link = link_in(&set_password_mail, &format!("{}/password/", instance.config.public_url));
    let signed_in = http
        .post(instance.reachable(&set_link))
        .form(&[("password", "Correct-Horse-42"), ("confirm", "Correct-Horse-42")])
        .send()
        .await
        .unwrap();
    let signed_in = finish_two_step(&http, instance, signed_in).await;
    assert_eq!(signed_in.status(), 200);
    (http, invite.split('?').next().unwrap().to_owned())
}

pub(super) async fn download(instance: &Instance, http: &reqwest::Client, message: &str, index: usize) -> Vec<u8> {
    let response = http
        .get(instance.reachable(&format!("{message}/a/{index}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// How many messages were sent (the store audits each send as it spools it).
pub(super) async fn sends(instance: &Instance) -> usize {
    let audit = instance.store().audit_log().recent_audit(1000).await.unwrap();
    audit.iter().filter(|(_, action, _)| action == "message.send").count()
}

/// Uploads `content` through the API as `name`; returns its location.
pub(super) async fn api_upload(instance: &Instance, password: &str, name: &str, content: &[u8]) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let created = http
        .post(instance.url("/api/uploads"))
        .basic_auth(ADA, Some(password))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", content.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {}", base64::engine::general_purpose::STANDARD.encode(name)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let patched = http
        .patch(instance.url(&location))
        .basic_auth(ADA, Some(password))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(content.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    location
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_two_files_to_a_new_address_arrive_byte_identical() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let password = app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let tag = super::secure_send::canary();
    let first = file_bytes(700_000, &tag);
    let second = file_bytes(123_457, "second");
    let scan = folder.path().join(format!("scan-{tag}.pdf"));
    let model = folder.path().join("crown.stl");
    std::fs::write(&scan, &first).unwrap();
    std::fs::write(&model, &second).unwrap();

    // A new address without its relationship: refused (exit 4), nothing sent.
    let no_role = run_drop(
        &instance,
        &password,
        &[model.to_str().unwrap(), "--to", "pat@example.org"],
    )
    .await;
    assert_eq!(no_role.status.code(), Some(4), "{}", text(&no_role));
    assert!(text(&no_role).contains("is new to your practice"), "{}", text(&no_role));
    assert_eq!(sends(&instance).await, 0);

    let output = run_drop(
        &instance,
        &password,
        &[
            scan.to_str().unwrap(),
            model.to_str().unwrap(),
            "--to",
            "pat@example.org",
            "--role",
            "patient",
            "--note",
            "Your scans",
            "--chunk-bytes",
            "262144",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("Sent 2 file(s) securely to pat@example.org"),
        "{}",
        text(&output)
    );

    let (http, message) = register_recipient(&instance, "pat@example.org").await;
    let page = http
        .get(instance.reachable(&message))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your scans") && page.contains("crown.stl"), "{page}");
    assert!(
        download(&instance, &http, &message, 0).await == first,
        "the first file differs"
    );
    assert!(
        download(&instance, &http, &message, 1).await == second,
        "the second file differs"
    );
    // The file name is PHI: never in the server's logs.
    assert!(!logs().contains(&tag), "a dropped file's name reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_badly_kept_credentials_are_refused_with_their_exit_codes() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("xray.png");
    std::fs::write(&file, b"not really a png").unwrap();
    let file = file.to_str().unwrap();

    let wrong = run_drop(&instance, "abcd efgh ijkl mnop", &[file, "--to", "pat@example.org"]).await;
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("refused the email address or app password"),
        "{}",
        text(&wrong)
    );

    // A credentials file others can read is refused before anything is sent.
    let credentials = folder.path().join("credentials.toml");
    std::fs::write(&credentials, "email = \"ada@smiles.example\"\napp_password = \"x\"\n").unwrap();
    let port = instance.running.addresses.portal.port();
    let mut loose = drop_command(&instance, port, "", &[file, "--to", "pat@example.org"]);
    loose
        .env_remove("SEALPOST_APP_PASSWORD")
        .arg("--credentials")
        .arg(&credentials);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = loose.output().await.unwrap();
    assert_eq!(loose.status.code(), Some(2), "{}", text(&loose));
    assert!(text(&loose).contains("chmod 600"), "{}", text(&loose));

    // No credentials at all.
    let mut none = drop_command(&instance, port, "", &[file, "--to", "pat@example.org"]);
    none.env_remove("SEALPOST_APP_PASSWORD");
    let none = none.output().await.unwrap();
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(text(&none).contains("SEALPOST_APP_PASSWORD"), "{}", text(&none));
    assert!(instance.outbox_for("pat@example.org").is_empty(), "something was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drop_api_takes_app_passwords_only_and_checks_what_it_is_given() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    // (A new account password ends the app passwords: set it first.)
    set_password(&instance, ADA, "Drop-Pass-77").await;
    let password = app_password(&instance, ADA).await;
    let api = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let post_drop = |body: serde_json::Value, password: String| {
        let api = api.clone();
        let url = instance.url("/api/drops");
        async move {
            api.post(url)
                .basic_auth(ADA, Some(password))
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };

    // A signed-in browser's cookie opens nothing here.
    let http = browser();
    sign_in(&http, &instance, ADA, "Drop-Pass-77", "/drop").await;
    let page = http.get(instance.url("/drop")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let by_cookie = http
        .post(instance.url("/api/uploads"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "3")
        .header("Upload-Metadata", "filename YS5wZGY=")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);
    assert!(
        by_cookie.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("problem+json")
    );

    // Another user's upload is not found, and nothing is sent.
    let (bo, _) = instance
        .store()
        .accounts()
        .add_practice_user(
            "bo@smiles.example",
            "Dr Bo",
            store::accounts::Role::Doctor,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    let bo_password = instance
        .store()
        .auth()
        .create_app_password(&bo, "desk", "test")
        .await
        .unwrap();
    let bos = {
        let created = api
            .post(instance.url("/api/uploads"))
            .basic_auth("bo@smiles.example", Some(&bo_password))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "3")
            .header("Upload-Metadata", "filename YS5wZGY=")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        created.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let stolen = post_drop(
        serde_json::json!({"to": "pat@example.org", "role": "patient", "uploads": [bos]}),
        password.clone(),
    )
    .await;
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);

    let mine = api_upload(&instance, &password, "a.pdf", b"abc").await;
    let mine = mine.rsplit('/').next().unwrap().to_owned();
    // One recipient only; a new one needs a role; a role must be one of five.
    let two = post_drop(
        serde_json::json!({"to": "pat@example.org, eve@example.org", "role": "patient", "uploads": [mine]}),
        password.clone(),
    )
    .await;
    assert_eq!(two.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(two.text().await.unwrap().contains("one recipient"));
    let no_role = post_drop(
        serde_json::json!({"to": "pat@example.org", "uploads": [mine]}),
        password.clone(),
    )
    .await;
    assert_eq!(no_role.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_role.text().await.unwrap().contains("is new to your practice"));
    let bad_role = post_drop(
        serde_json::json!({"to": "pat@example.org", "role": "admin", "uploads": [mine]}),
        password.clone(),
    )
    .await;
    assert_eq!(bad_role.status(), StatusCode::BAD_REQUEST);
    let wrong_password = post_drop(
        serde_json::json!({"to": "pat@example.org", "role": "patient", "uploads": [mine]}),
        "wrong wrong wrong".to_owned(),
    )
    .await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert!(instance.outbox_for("pat@example.org").is_empty(), "something was sent");
    // With everything right, it goes, and the upload is consumed.
    let sent = post_drop(
        serde_json::json!({"to": "pat@example.org", "role": "patient", "uploads": [mine]}),
        password.clone(),
    )
    .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let again = post_drop(
        serde_json::json!({"to": "pat@example.org", "role": "patient", "uploads": [mine]}),
        password,
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}
