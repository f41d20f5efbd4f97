//! The Outlook add-in as the portal serves it: the manifest with `public_url`
//! filled in (still valid against Microsoft's schemas), its scripts under their
//! own CSP, and the contacts API it asks about recipients — for the caller's
//! practice only, by session cookie or app password.

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::Value;
use store::accounts::Role;

use super::harness::{Instance, browser, set_password, sign_in};
use super::secure_send::{ada_sends, canary, send_via_relay};

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_is_served_for_this_portal_and_validates() {
    let instance = Instance::start().await;
    let response = browser().get(instance.url("/addin/manifest.xml")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, CONTENT_TYPE).starts_with("application/xml"));
    let manifest = response.text().await.unwrap();
    let public_url = &instance.config.public_url;
    assert!(
        manifest.contains(&format!("<AppDomain>{public_url}</AppDomain>")),
        "{manifest}"
    );
    assert!(manifest.contains(&format!("{public_url}/addin/commands.js")));
    assert!(!manifest.contains("https://localhost:8443/"), "placeholder left in");

    let file = instance.dir.path().join("manifest.xml");
    std::fs::write(&file, &manifest).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/addin-manifest/validate.sh");
    let output = std::process::Command::new(script)
        .arg(&file)
        .output()
        .expect("run validate.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the served manifest does not validate:\n{text}"
    );
    assert!(text.contains("validates"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addin_files_get_the_addin_csp_and_the_portal_keeps_its_own() {
    let instance = Instance::start().await;
    let http = browser();
    for (path, content_type) in [
        ("/addin/commands.js", "text/javascript"),
        ("/addin/taskpane.js", "text/javascript"),
        ("/addin/commands.html", "text/html"),
        ("/addin/taskpane.html", "text/html"),
        ("/addin/taskpane.css", "text/css"),
        ("/addin/icon-80.png", "image/png"),
    ] {
        let response = http.get(instance.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(&response, CONTENT_TYPE).starts_with(content_type), "{path}");
        let csp = header(&response, CONTENT_SECURITY_POLICY).to_owned();
        assert!(
            csp.contains("script-src 'self' https://appsforoffice.microsoft.com"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'self' https://*.office.com"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    }
    let script = http
        .get(instance.url("/addin/commands.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains(&format!("var PORTAL = \"{}\";", instance.config.public_url)));
    let page = http
        .get(instance.url("/addin/taskpane.html"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("https://appsforoffice.microsoft.com/lib/1/hosted/office.js"));
    assert!(!page.contains("<script>"), "no inline script");
    let icon = http
        .get(instance.url("/addin/icon-16.png"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(icon.starts_with(b"\x89PNG\r\n\x1a\n"));

    for missing in ["/addin/nope.js", "/addin/..%2FCargo.toml", "/addin/manifest.xml.bak"] {
        let response = http.get(instance.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let signin = http.get(instance.url("/signin")).send().await.unwrap();
    let csp = header(&signin, CONTENT_SECURITY_POLICY);
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    // Portal pages load scripts only from the portal itself (the passkey script),
    // never inline and never from Office's CDN.
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("appsforoffice"),
        "{csp}"
    );
}

async fn contacts(
    http: &reqwest::Client,
    instance: &Instance,
    addresses: &str,
    auth: Option<(&str, &str)>,
) -> (StatusCode, String, Value) {
    let mut request = http.get(instance.url(&format!("/api/contacts?addresses={addresses}")));
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = header(&response, CONTENT_TYPE).to_owned();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, content_type, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_api_tells_a_practice_its_known_contacts_and_nobody_else() {
    let instance = Instance::start().await;
    let ada = instance.practice_with_doctor().await;
    let store = instance.store();
    store
        .accounts()
        .add_practice_user(
            "sam@smiles.example",
            "Sam Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    ada_sends(&instance, "pat@example.org", &canary(), b"x", Some("patient")).await;
    instance.wait_for_mail("pat@example.org", 1).await;
    let asked = "pat@example.org,SAM@smiles.example,stranger@example.net";
    let expected = serde_json::json!({"contacts": [
        {"address": "pat@example.org", "relationship": "patient", "label": "Patient"},
        {"address": "sam@smiles.example", "relationship": "staff_in_practice", "label": "Staff in my practice"},
    ]});

    // No credentials: a JSON problem, 401.
    let anonymous = browser();
    let (status, content_type, problem) = contacts(&anonymous, &instance, asked, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 401);

    // The session cookie of a signed-in practice user.
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let http = browser();
    let signed_in = sign_in(&http, &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    assert_eq!(signed_in.url().path(), "/inbox");
    let (status, content_type, body) = contacts(&http, &instance, asked, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body, expected);

    // Basic with an app password, as the add-in sends where cookies are blocked.
    let password = store
        .auth()
        .create_app_password(&ada, "Outlook add-in", "test")
        .await
        .unwrap();
    let (status, _, body) = contacts(&anonymous, &instance, asked, Some(("ada@smiles.example", &password))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, expected);
    let (status, _, _) = contacts(&anonymous, &instance, asked, Some(("ada@smiles.example", "wrong-one"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, problem) = contacts(
        &anonymous,
        &instance,
        "not-an-address",
        Some(("ada@smiles.example", &password)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // A doctor of another practice learns nothing about Smiles Dental's contacts,
    // not even that the addresses have accounts.
    store
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    let (bob, _) = store
        .accounts()
        .add_practice_user(
            "bob@other.example",
            "Dr Bob",
            Role::Doctor,
            "other.example",
            true,
            false,
        )
        .await
        .unwrap();
    let bob_password = store.auth().create_app_password(&bob, "Outlook", "test").await.unwrap();
    let (status, _, body) = contacts(&anonymous, &instance, asked, Some(("bob@other.example", &bob_password))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"contacts": []}));

    // A recipient (not a practice user) may not ask at all.
    let pat = store
        .accounts()
        .user_by_email("pat@example.org")
        .await
        .unwrap()
        .unwrap();
    let pat_password = store.auth().create_app_password(&pat, "Phone", "test").await.unwrap();
    let (status, _, problem) = contacts(&anonymous, &instance, asked, Some(("pat@example.org", &pat_password))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_for_several_recipients_in_one_header_as_the_addin_sends_them() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let message = MessageBuilder::new()
        .from(("Dr Ada Lovelace", "ada@smiles.example"))
        .to(vec!["pat@example.org", "doc@other.example"])
        .subject("Follow-up")
        .header("X-Sealpost-Secure", Raw::new("1"))
        .header(
            "X-Sealpost-Role",
            Raw::new("pat@example.org patient, doc@other.example doctor_other_practice"),
        )
        .header("X-Sealpost-Notice", Raw::new("=?UTF-8?B?UmFwcGVsIDogY29udHLDtGxl?="))
        .text_body(format!("Results: {}", canary()))
        .write_to_vec()
        .unwrap();
    send_via_relay(
        &instance,
        "ada@smiles.example",
        &["pat@example.org", "doc@other.example"],
        &message,
    )
    .await
    .expect("accepted with 250");
    // Both are notified at once: neither waits for the sender to choose a role.
    for rcpt in ["pat@example.org", "doc@other.example"] {
        let mail = instance.wait_for_mail(rcpt, 1).await;
        let parsed = mail_parser::MessageParser::default().parse(&mail).unwrap();
        assert!(
            parsed.body_text(0).unwrap().contains("Rappel : contrôle"),
            "the decoded note"
        );
    }
    let ada = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let known = instance
        .store()
        .mail()
        .known_contacts(&ada, &["doc@other.example".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        known[0].relationship,
        store::accounts::Relationship::DoctorOtherPractice
    );
}
