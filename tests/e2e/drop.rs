//! Secure Drop from the desktop: the real `sealpost drop` binary against a
//! running portal over HTTPS with an app password. Two files to a new
//! address (refused without its role; then the recipient registers and
//! downloads both, byte-identical); an
//! upload that resumes after the server was stopped mid-way and started
//! again; `--watch` with a file written slowly (never sent half-written); no
//! second send after a restart; wrong or badly kept credentials refused with
//! their exit codes; and the API's attacker cases (a cookie is not enough,
//! other people's uploads, one recipient only, a new address needs a role).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use sealpost::app::{self, Listeners};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::harness::{Instance, browser, finish_two_step, link_in, logs, register_form, set_password, sign_in};

const ADA: &str = "ada@smiles.example";

/// An app password for `email`.
async fn app_password(instance: &Instance, email: &str) -> String {
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
fn drop_command(instance: &Instance, port: u16, password: &str, args: &[&str]) -> tokio::process::Command {
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

async fn run_drop(instance: &Instance, password: &str, args: &[&str]) -> Output {
    let port = instance.running.addresses.portal.port();
    let child = drop_command(instance, port, password, args).output();
    tokio::time::timeout(Duration::from_mins(3), child)
        .await
        .expect("sealpost drop finished within 3 minutes")
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Bytes that differ all along, ending with `tag`.
fn file_bytes(len: usize, tag: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// The recipient of a first message registers from the invitation and signs
/// in; returns their client and the message's URL.
async fn register_recipient(instance: &Instance, email: &str) -> (reqwest::Client, String) {
    let notification = instance.wait_for_mail(email, 1).await;
    let invite = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    let http = browser();
    let registered = register_form(&http, instance, &invite, "Pat Example", "+1 555 010 0199").await;
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

async fn download(instance: &Instance, http: &reqwest::Client, message: &str, index: usize) -> Vec<u8> {
    let response = http
        .get(instance.reachable(&format!("{message}/a/{index}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
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

/// A TCP relay between the CLI and the portal that the test controls: it
/// passes at most `allowed` bytes from the client, and `cut` ends every
/// connection, as a server going away does.
struct Relay {
    port: u16,
    upstream: Arc<std::sync::Mutex<u16>>,
    allowed: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: u16, allowed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Arc::new(std::sync::Mutex::new(upstream));
        let allowed = Arc::new(AtomicU64::new(allowed));
        let passed = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (upstream, allowed, passed, connections) =
                (upstream.clone(), allowed.clone(), passed.clone(), connections.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let to = *upstream.lock().unwrap();
                    let (allowed, passed) = (allowed.clone(), passed.clone());
                    let task = tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                            return;
                        };
                        let (mut client_read, mut client_write) = client.into_split();
                        let (mut server_read, mut server_write) = server.into_split();
                        let up = async {
                            let mut buffer = vec![0u8; 16 * 1024];
                            loop {
                                while passed.load(Ordering::SeqCst) >= allowed.load(Ordering::SeqCst) {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                let room = allowed.load(Ordering::SeqCst) - passed.load(Ordering::SeqCst);
                                let want = buffer.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                                let n = match client_read.read(&mut buffer[..want]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                passed.fetch_add(n as u64, Ordering::SeqCst);
                                if server_write.write_all(&buffer[..n]).await.is_err() {
                                    return;
                                }
                            }
                        };
                        let down = tokio::io::copy(&mut server_read, &mut client_write);
                        tokio::select! { () = up => {}, _ = down => {} }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            port,
            upstream,
            allowed,
            passed,
            connections,
            accept,
        }
    }

    /// Ends every open connection (the client sees them reset).
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// How many messages were sent (the store audits each send as it spools it).
async fn sends(instance: &Instance) -> usize {
    let audit = instance.store().audit_log().recent_audit(1000).await.unwrap();
    audit.iter().filter(|(_, action, _)| action == "message.send").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_after_the_server_is_stopped_mid_way_and_started_again() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let password = app_password(&instance, ADA).await;
    let folder = tempfile::tempdir().unwrap();
    let content = file_bytes(3 * 1024 * 1024, "resumed");
    let path = folder.path().join("cbct.dcm");
    std::fs::write(&path, &content).unwrap();

    // The relay lets ~1.2 MB through, then holds the rest.
    let relay = Relay::start(instance.running.addresses.portal.port(), 1_200_000).await;
    let mut child = drop_command(
        &instance,
        relay.port,
        &password,
        &[
            path.to_str().unwrap(),
            "--to",
            "pat@example.org",
            "--role",
            "patient",
            "--chunk-bytes",
            "262144",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();

    // Wait until the relay holds the upload mid-way: the chunks before the
    // held one were answered, so they are sealed on the server.
    for _ in 0..1200 {
        if relay.passed.load(Ordering::SeqCst) >= relay.allowed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(relay.passed.load(Ordering::SeqCst) >= relay.allowed.load(Ordering::SeqCst));

    // The server stops (the client's connection dies with it) and starts
    // again on the same folder and database, behind a new port.
    let port_before = instance.running.addresses.portal.port();
    relay.cut();
    let stopped = instance.stop().await;
    let listeners = Listeners {
        relay: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        submission: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        portal: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        imap: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        imap_tls: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let running = app::start(&stopped.config, listeners, stopped.clock.clone())
        .await
        .unwrap();
    let instance = Instance {
        dir: stopped.dir,
        running,
        clock: stopped.clock,
        config: stopped.config,
    };
    assert_ne!(instance.running.addresses.portal.port(), port_before);
    *relay.upstream.lock().unwrap() = instance.running.addresses.portal.port();
    relay.allowed.store(u64::MAX, Ordering::SeqCst);

    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let status = tokio::time::timeout(Duration::from_mins(2), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let resumed_at: u64 = stderr
        .split("going on from byte ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the client did not resume: {stderr}"));
    assert!(
        resumed_at > 0 && resumed_at < content.len() as u64,
        "resumed at {resumed_at}: {stderr}"
    );

    let (http, message) = register_recipient(&instance, "pat@example.org").await;
    assert!(
        download(&instance, &http, &message, 0).await == content,
        "the resumed file differs"
    );
}

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

/// Uploads `content` through the API as `name`; returns its location.
async fn api_upload(instance: &Instance, password: &str, name: &str, content: &[u8]) -> String {
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
