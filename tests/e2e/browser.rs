//! Browser tests: each flow in `tests/browser/<flow>.mjs` drives Debian's headless
//! Chromium (through playwright-core) against a real instance and asserts what a
//! person sees. The Rust side prepares data, answers the flow's questions (links
//! from mails, two-step codes from the dev SMS outbox) and checks its exit status. Screenshots go to
//! `target/debug/browser-screenshots/`, or `docs/screenshots/` with
//! `SEALPOST_UPDATE_SCREENSHOTS=1`. Every page a flow shows is checked against WCAG
//! 2.1 AA with axe-core at phone and desktop width (`tests/browser/a11y.mjs`); a flow
//! that checked none fails. Adding a flow: one `.mjs` file and a test here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::harness::{
    Instance, TEST_PHONE, browser, latest_code, link_in, register_form, set_password, sign_in, sms_sent,
};
use super::secure_send::{ada_sends, canary, secure_message, send_via_relay};

const PATIENT: &str = "pat@example.org";
const PASSWORD: &str = "Correct-Horse-42";
/// The subject and attachment name of the message in the screenshots.
const SUBJECT: &str = "Your lab results";
const ATTACHMENT_NAME: &str = "lab-report.pdf";
/// The phone Pat registers with; two-step codes go there.
const PAT_PHONE: &str = "+12015550199";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where screenshots go: the docs with `SEALPOST_UPDATE_SCREENSHOTS=1`, else
/// beside the test binary (`target/debug/browser-screenshots`).
fn screenshot_dir() -> PathBuf {
    if std::env::var_os("SEALPOST_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    }
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    profile.join("browser-screenshots")
}

/// Fails (never skips) when the browser or the Node packages are missing.
fn require_tools() -> PathBuf {
    let chromium =
        std::env::var_os("SEALPOST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "browser tests need Chromium at {}: apt-get install chromium fonts-liberation (see .ci/run), \
         or set SEALPOST_CHROMIUM",
        chromium.display()
    );
    for package in ["playwright-core", "axe-core"] {
        assert!(
            browser_dir().join("node_modules").join(package).is_dir(),
            "browser tests need {package}: run `npm ci` in tests/browser (test.sh does)"
        );
    }
    chromium
}

/// Runs `tests/browser/{flow}.mjs` with `SEALPOST_<NAME>` variables from `vars`,
/// answering each `ask WHAT` line it prints with `answer(WHAT)`. Panics with the
/// flow's output unless it finishes with `flow ok`. Returns its output.
pub async fn run_flow(flow: &str, vars: &[(&str, String)], mut answer: impl AsyncFnMut(&str) -> String) -> String {
    let chromium = require_tools();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(format!("{flow}.mjs"))
        .current_dir(browser_dir())
        .env("SEALPOST_CHROMIUM", chromium)
        .env("SEALPOST_SCREENSHOTS", screenshot_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(format!("SEALPOST_{name}"), value);
    }
    let mut child = command.spawn().expect("node (Node.js) to start");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let run = async {
        let mut output = String::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            output.push_str(&line);
            output.push('\n');
            if let Some(what) = line.strip_prefix("ask ") {
                let reply = answer(what).await;
                stdin.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
            }
        }
        (output, child.wait().await.unwrap())
    };
    let (output, status) = tokio::time::timeout(Duration::from_mins(2), run)
        .await
        .unwrap_or_else(|_| panic!("browser flow {flow} did not finish within 120 s"));
    let errors = errors.await.unwrap();
    assert!(
        status.success() && output.lines().any(|l| l == "flow ok"),
        "browser flow {flow} failed ({status}); screenshots in {}\nstdout:\n{output}\nstderr:\n{errors}",
        screenshot_dir().display()
    );
    assert!(
        output.lines().any(|l| l.starts_with("a11y ")),
        "browser flow {flow} checked no page for accessibility (t.heading or t.a11y)\nstdout:\n{output}"
    );
    output
}

fn hex_sha256(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    store::crypto::sha256(bytes).iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// An instance where Dr Ada has written to Pat; returns the canary and the
/// invitation link. The canary is in the subject, body and attachment name,
/// except `for_screenshots`: then only the body has it, under the subject
/// [`SUBJECT`] and the file name [`ATTACHMENT_NAME`] a person would see.
async fn ada_writes_to_pat(instance: &Instance, attachment: &[u8], for_screenshots: bool) -> (String, String) {
    instance.practice_with_doctor().await;
    let canary = canary();
    if for_screenshots {
        let message = String::from_utf8(secure_message(PATIENT, &canary, attachment, Some("patient"))).unwrap();
        let subject_line = format!("Subject: [secure] Lab results {canary}\r\n");
        let file_name = format!("report-{canary}.pdf");
        assert!(message.contains(&subject_line) && message.contains(&file_name));
        let message = message
            .replace(&subject_line, &format!("Subject: [secure] {SUBJECT}\r\n"))
            .replace(&file_name, ATTACHMENT_NAME);
        send_via_relay(instance, "ada@smiles.example", &[PATIENT], message.as_bytes())
            .await
            .expect("accepted with 250");
    } else {
        ada_sends(instance, PATIENT, &canary, attachment, Some("patient")).await;
    }
    let notification = instance.wait_for_mail(PATIENT, 1).await;
    let invite = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    (canary, invite)
}

/// Pat, registered with a password and a phone for two-step codes, has a
/// message from Dr Ada; returns the canary.
pub async fn pat_is_registered(instance: &Instance) -> String {
    let (canary, invite) = ada_writes_to_pat(instance, b"%PDF-1.4 test", false).await;
    let http = super::harness::browser();
    let page = register_form(&http, instance, &invite, "Pat Example", PAT_PHONE).await;
    assert_eq!(page.status(), 200);
    instance.wait_for_mail(PATIENT, 2).await; // the set-password link
    set_password(instance, PATIENT, PASSWORD).await;
    // The first sign-in sets up the phone (another browser: the flows' is new).
    let home = sign_in(&http, instance, PATIENT, PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    canary
}

/// Answers a flow's `ask code`: the newest code texted to Pat's phone.
pub async fn texted_code(instance: &Instance) -> String {
    latest_code(instance, Some(PAT_PHONE)).await
}

/// The variables every flow about Pat gets.
pub fn pat_vars(instance: &Instance, canary: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PORTAL", instance.config.public_url.clone()),
        ("EMAIL", PATIENT.to_owned()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("CANARY", canary.to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_registration_reading_and_signing_out() {
    let instance = Instance::start().await;
    let attachment: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    let (canary, invite) = ada_writes_to_pat(&instance, &attachment, true).await;
    let mut vars = pat_vars(&instance, &canary);
    vars.push(("INVITE", invite));
    vars.push(("SUBJECT", SUBJECT.to_owned()));
    vars.push(("ATTACHMENT_NAME", ATTACHMENT_NAME.to_owned()));
    vars.push(("ATTACHMENT_SHA256", hex_sha256(&attachment)));
    run_flow("registration", &vars, async |what| match what {
        "set_password_link" => {
            let mail = instance.wait_for_mail(PATIENT, 2).await;
            link_in(&mail, &format!("{}/password/", instance.config.public_url))
        }
        "code" => texted_code(&instance).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let texts = sms_sent(&instance);
    assert_eq!(texts.len(), 1, "one code, to the phone Pat registered: {texts:?}");
    assert_eq!(texts[0].0, PAT_PHONE);
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    for action in [
        "account.register",
        "password.set",
        "two_step.enrolled",
        "message.view",
        "attachment.download",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_in_with_password_and_texted_code_then_remembered() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    let before = sms_sent(&instance).len();
    run_flow("signin", &pat_vars(&instance, &canary), async |what| {
        assert_eq!(what, "code");
        texted_code(&instance).await
    })
    .await;
    // One code for the first sign-in; none for the remembered browser.
    assert_eq!(sms_sent(&instance).len(), before + 1);
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    for action in ["signin.failure", "signin.success", "two_step.device_remembered"] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_recovery_by_email_link_and_phone_code() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    // Past the 10 minutes in which registration's set-password mail stops another.
    instance.clock.advance(11 * 60);
    let before = instance.outbox_for(PATIENT).len();
    run_flow("recovery", &pat_vars(&instance, &canary), async |what| match what {
        "reset_link" => {
            let mail = instance.wait_for_mail(PATIENT, before + 1).await;
            link_in(&mail, &format!("{}/password/", instance.config.public_url))
        }
        "code" => texted_code(&instance).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    assert!(audit.iter().any(|(_, a, _)| a == "password.reset_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_manage_users_edit_reinvite_two_step_and_staff_get_404() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    // Ada's first sign-in (elsewhere) sets up her phone; the flow's is a new device.
    let home = sign_in(&browser(), &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            store::accounts::Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    ada_sends(
        &instance,
        "nurse@example.org",
        &canary(),
        b"x",
        Some("staff_in_practice"),
    )
    .await;
    let first_invite = link_in(
        &instance.wait_for_mail("nurse@example.org", 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    // A message to someone unknown, without a role: Ada is asked who they are.
    let mails_to_ada = instance.outbox_for("ada@smiles.example").len();
    ada_sends(&instance, "newdoc@other.example", &canary(), b"x", None).await;
    let roles_link = link_in(
        &instance.wait_for_mail("ada@smiles.example", mails_to_ada + 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("MANAGER_PASSWORD", "Doctor-Pass-77".to_owned()),
        ("ROLES_LINK", roles_link),
    ];
    run_flow("manage_users", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        "staff_password" => {
            set_password(&instance, "robert@smiles.example", "Maple-Tree-88").await;
            "Maple-Tree-88".to_owned()
        }
        other => panic!("unexpected ask {other}"),
    })
    .await;
    // The corrected address got an invitation; the nurse a second, new link.
    let mail = instance.wait_for_mail("robert@smiles.example", 1).await;
    link_in(&mail, &format!("{}/password/", instance.config.public_url));
    let second_invite = link_in(
        &instance.wait_for_mail("nurse@example.org", 2).await,
        &format!("{}/m/", instance.config.public_url),
    );
    assert_ne!(first_invite, second_invite);
    let bob = instance
        .store()
        .accounts()
        .user_by_email("robert@smiles.example")
        .await
        .unwrap()
        .expect("Bob under his corrected address");
    assert_eq!(bob.phone, "+12015550155", "stored in E.164");
    assert!(
        instance
            .store()
            .accounts()
            .user_by_email("bob@smiles.example")
            .await
            .unwrap()
            .is_none()
    );
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    for action in [
        "manage.user_edit",
        "manage.reinvite",
        "manage.two_step_off",
        "manage.two_step_on",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}
